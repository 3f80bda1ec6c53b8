"""E-licence identifiers as used in practice (GB/T 36901-36906): build them and validate what departments send.

`1.2.156.3005.2.<type code, 21>.<issuer USCC, 18>.<serial>.<version, 3 digits>.<check>`, the check character being
ISO 7064 MOD 37,36 over type code + issuer + serial + version. Validation is strict (upper case only, no trimming):
an identifier is a key that other systems look up byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stdnum.cn import uscc
from stdnum.iso7064 import mod_37_36

PREFIX = "1.2.156.3005.2."
_PATTERN = re.compile(
    re.escape(PREFIX)
    + r"(?P<type_code>[0-9A-Z]{21})\.(?P<issuer>[0-9A-Z]{18})\.(?P<serial>[0-9A-Z]+)\.(?P<version>[0-9]{3})"
    r"\.(?P<check>[0-9A-Z])"
)
_PART = re.compile(r"[0-9A-Z]+")


class InvalidIdentifier(ValueError):
    pass


@dataclass(frozen=True)
class LicenceIdentifier:
    type_code: str
    issuer: str  # unified social credit code of the issuing authority
    serial: str
    version: str
    check: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.type_code}.{self.issuer}.{self.serial}.{self.version}.{self.check}"


def check_char(type_code: str, issuer: str, serial: str, version: str) -> str:
    return mod_37_36.calc_check_digit(type_code + issuer + serial + version)


def build_identifier(type_code: str, issuer: str, serial: str, version: int = 1) -> str:
    """A new identifier; refuses parts that could not be read back unambiguously."""
    if len(type_code) != 21 or not _PART.fullmatch(type_code):
        raise InvalidIdentifier(f"type code must be 21 characters 0-9A-Z, not {type_code!r}")
    if not uscc.is_valid(issuer) or issuer != issuer.upper():
        raise InvalidIdentifier(f"issuer {issuer!r} is not a valid unified social credit code")
    if not _PART.fullmatch(serial):
        raise InvalidIdentifier(f"serial must be characters 0-9A-Z, not {serial!r}")
    if not 0 <= version <= 999:
        raise InvalidIdentifier(f"version must fit 3 digits, not {version}")
    ver = f"{version:03d}"
    return str(LicenceIdentifier(type_code, issuer, serial, ver, check_char(type_code, issuer, serial, ver)))


def parse_identifier(text: str) -> LicenceIdentifier:
    """Structure, MOD 37,36 check character and issuer USCC; InvalidIdentifier says which failed."""
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise InvalidIdentifier("not a licence identifier (1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>)")
    parts = LicenceIdentifier(**match.groupdict())
    if check_char(parts.type_code, parts.issuer, parts.serial, parts.version) != parts.check:
        raise InvalidIdentifier("licence identifier check character (ISO 7064 MOD 37,36) does not match")
    if not uscc.is_valid(parts.issuer):
        raise InvalidIdentifier("licence issuer is not a valid unified social credit code")
    return parts
