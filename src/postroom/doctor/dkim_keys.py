"""The size of a DKIM public key (the ``p=`` tag), read from its DER encoding without a crypto library.

DKIM publishes RSA keys as a SubjectPublicKeyInfo (or, from some signers, a bare PKCS#1 RSAPublicKey); the modulus
length is the key size that receivers judge (RFC 8301: at least 1024 bits, 2048 recommended).
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["rsa_key_bits"]

_SEQUENCE, _INTEGER, _BIT_STRING = 0x30, 0x02, 0x03


def _read(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """One DER element at ``offset``: (tag, content, offset after it)."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:  # long form: the low bits say how many length octets follow
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[offset : offset + length], offset + length


def _modulus_bits(rsa_public_key: bytes) -> int:
    tag, body, _ = _read(rsa_public_key, 0)
    if tag != _SEQUENCE:
        raise ValueError("not an RSA public key")
    tag, modulus, _ = _read(body, 0)
    if tag != _INTEGER:
        raise ValueError("not an RSA public key")
    return int.from_bytes(modulus, "big").bit_length()


def rsa_key_bits(p_tag: str) -> int:
    """Bits of the RSA modulus in a DKIM ``p=`` value; ValueError if it is not an RSA key."""
    try:
        der = base64.b64decode("".join(p_tag.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("p= is not valid base64") from None
    tag, body, _ = _read(der, 0)
    if tag != _SEQUENCE:
        raise ValueError("not a public key")
    first_tag, _, after = _read(body, 0)
    if first_tag == _INTEGER:  # PKCS#1 RSAPublicKey: SEQUENCE { modulus, exponent }
        return _modulus_bits(der)
    # SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING { RSAPublicKey } }
    tag, bits, _ = _read(body, after)
    if tag != _BIT_STRING or not bits:
        raise ValueError("not a public key")
    return _modulus_bits(bits[1:])  # the first octet counts unused bits
