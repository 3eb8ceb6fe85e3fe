"""``postroom dkim generate`` and ``postroom dkim check``: make a key pair, store its private half, print the DNS
record; later, check that the DNS publishes the stored key before its selector starts signing (see README, "Key
rotation")."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

DNS_STRING_MAX = 255  # RFC 1035 §3.3: one <character-string> of a TXT record
RECORD_TTL = 3600
SOURCES = ("ssm", "secretsmanager")


def register(sub: Any) -> None:
    """Add the ``dkim`` command to the ``postroom`` CLI's subparsers."""
    dkim = sub.add_parser("dkim", help="DKIM keys for direct SMTP delivery")
    commands = dkim.add_subparsers(dest="dkim_command", required=True)

    generate = commands.add_parser(
        "generate", help="generate a key pair, store the private key, print the DNS TXT record to publish"
    )
    _key_arguments(generate)
    generate.add_argument("--algorithm", choices=("rsa", "ed25519"), default="rsa")
    generate.add_argument("--bits", type=int, default=2048, help="RSA key size (2048 or more; default 2048)")
    generate.add_argument("--store", choices=SOURCES, help="store the private key: SSM SecureString or Secrets Manager")
    generate.add_argument("--kms-key-id", help="KMS key for the stored key (default: the account's AWS managed key)")
    generate.add_argument("--out", type=Path, help="also (or instead) write the private key to this file (mode 600)")
    generate.set_defaults(func=_cmd_generate)

    check = commands.add_parser("check", help="check that DNS publishes the public half of a stored key")
    _key_arguments(check)
    check.add_argument("--source", choices=SOURCES, default=os.environ.get("POSTROOM_DKIM_KEY_SOURCE") or "ssm")
    check.add_argument("--nameserver", help="host:port of the DNS server to ask (default: the system resolver)")
    check.set_defaults(func=_cmd_check)


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", required=True, help="the sending domain (d=), e.g. shop.example")
    parser.add_argument("--selector", required=True, help="a new selector per key (s=), e.g. s2026a")
    parser.add_argument(
        "--prefix",
        default=os.environ.get("POSTROOM_DKIM_KEY_PREFIX") or "postroom/dkim",
        help="key name prefix, the stack's DkimKeyPrefix (default postroom/dkim)",
    )


def _cmd_generate(args: argparse.Namespace) -> int:
    from postroom.core.deliverability_settings import parse_dkim_selectors
    from postroom.deliver.dkim import DkimAlgorithm, generate_key, key_name

    if not args.store and not args.out:
        raise SystemExit("give --store ssm|secretsmanager and/or --out FILE: the private key is never printed")
    try:
        (domain, (selector,)), *_ = parse_dkim_selectors(f"{args.domain}={args.selector}").items()
        key, pem = generate_key(domain, selector, DkimAlgorithm(args.algorithm), bits=args.bits)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if args.out:
        _write_private(args.out, pem)
        print(f"private key written to {args.out}", file=sys.stderr)
    if args.store:
        name = key_name(args.store, args.prefix, domain, selector)
        _store(args.store, name, pem, args.kms_key_id, description=f"DKIM private key, {key.dns_name}")
        print(f"private key stored in {'SSM SecureString' if args.store == 'ssm' else 'Secrets Manager'} {name}",
              file=sys.stderr)  # fmt: skip
    print(f"; Publish this record, check it with `postroom dkim check`, then add {domain}={selector} to DkimSelectors.")
    print(zone_line(key.dns_name, key.dns_value))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from dkim.util import InvalidTagValueList, parse_tag_value

    from postroom.deliver.delivery_errors import DeliveryError
    from postroom.deliver.dkim import DkimKey, DkimKeyError, ParameterKeyStore
    from postroom.deliver.mx import MxResolver, parse_nameservers

    key: DkimKey
    try:
        # max_age=0: an operator checking a key wants what is stored now.
        key = ParameterKeyStore.create(args.source, args.prefix, max_age=0).get(args.domain.lower(), args.selector)
    except DkimKeyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    resolver = MxResolver(parse_nameservers(args.nameserver) if args.nameserver else None)
    try:
        records = resolver.txt(key.dns_name)
    except DeliveryError as error:
        records = []
        print(f"{key.dns_name}: {error}", file=sys.stderr)
    published = []
    for record in records:
        try:
            published.append(parse_tag_value(record).get(b"p", b"").replace(b" ", b""))
        except InvalidTagValueList:
            continue
    if key.public_key in published:
        print(f"ok: {key.dns_name} publishes the public key of {args.selector} ({key.algorithm.value})")
        return 0
    print(f"{key.dns_name} does not publish this key yet; expected:", file=sys.stderr)
    print(zone_line(key.dns_name, key.dns_value), file=sys.stderr)
    return 1


def zone_line(name: str, value: str) -> str:
    """A zone-file TXT record, split into 255-octet strings (2048-bit RSA keys need two)."""
    chunks = [value[i : i + DNS_STRING_MAX] for i in range(0, len(value), DNS_STRING_MAX)]
    return f"{name}. {RECORD_TTL} IN TXT ( " + " ".join(f'"{chunk}"' for chunk in chunks) + " )"


def _write_private(path: Path, pem: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite, never world-readable
    with os.fdopen(fd, "w") as file:
        file.write(pem)


def _store(source: str, name: str, pem: str, kms_key_id: str | None, *, description: str) -> None:
    from botocore.exceptions import ClientError

    from postroom.core import aws

    try:
        if source == "ssm":
            params: dict[str, Any] = {"Name": name, "Value": pem, "Type": "SecureString", "Overwrite": False}
            aws.client("ssm").put_parameter(Description=description, **params, **_kms("KeyId", kms_key_id))
        else:
            aws.client("secretsmanager").create_secret(
                Name=name, SecretString=pem, Description=description, **_kms("KmsKeyId", kms_key_id)
            )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"ParameterAlreadyExists", "ResourceExistsException"}:
            raise SystemExit(f"{name} already exists: rotate with a new selector instead of replacing a key") from None
        raise SystemExit(f"could not store {name}: {code or error}") from None


def _kms(parameter: str, key_id: str | None) -> dict[str, str]:
    return {parameter: key_id} if key_id else {}
