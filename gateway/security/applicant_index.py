"""The applicant index: which cases one person's ID number opened, without the number itself in Redis or the logs.

The index key is `HMAC-SHA256(look-up key, normalised ID number)`; the look-up key is derived with HKDF-SHA256 from
the audit key (GATEWAY_AUDIT_KEY or var/secrets/audit.key), a sub-key of its own (`info` below) that signs nothing
else. The audit key, not the PII keyring, because `gateway keys rotate` replaces PII keys while the audit key stays
for the life of the audit chains: the index stays valid across PII key rotations. A new audit key would need the
index rebuilt, as the audit chains would need re-signing.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.domain.identity_numbers import (
    IdNumberError,
    parse_document_number,
    parse_foreign_permanent_residence,
    parse_id_number,
)
from gateway.security.signing import hmac_hex

_INFO = b"flex-gateway/lookup/id-number"
MAC_PREFIX_SHOWN = 8  # hex characters of the MAC logged with a look-up: enough to correlate, too few to matter


def normalised_id_number(raw: str) -> str:
    """The number as the gateway stores it, for any document type it accepts; IdNumberError when malformed.

    Digits (with perhaps a final X) are a resident ID, residence permit or (leading 9) the 2023 foreigner's permanent
    residence card, whose length and check character must be right, unless 8 or 10 digits (a Taiwan travel permit).
    Anything else is a travel permit, passport or other document number, checked against the widest document format.
    """
    number = parse_document_number(raw, "other") if raw.strip() else ""
    if not number:
        raise IdNumberError("applicant.id_number.length")
    if number[:-1].isdigit() and number[-1] in "0123456789X" and len(number) not in (8, 10):
        if number[0] == "9" and len(number) == 18:
            return parse_foreign_permanent_residence(number)[0]
        return parse_id_number(number).number
    return number


class ApplicantIndex:
    def __init__(self, audit_key: bytes) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(audit_key)

    def mac(self, id_number: str) -> str:
        """The index MAC of a number already normalised (as stored on a case, or by normalised_id_number)."""
        return hmac_hex(self._key, id_number.encode())
