"""Personal values as the console shows them by default: enough to recognise a person, not to identify one."""

from __future__ import annotations

import re
from typing import Any

# ID numbers (15/18 characters) and mainland mobile numbers inside free text such as a department's reason.
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{4})\d{7,10}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")
# Values that are codes (divisions, tiers, enumerations), not about a person: shown as they are.
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LONG_DIGITS = re.compile(r"\d{7,}")  # ID, account and phone numbers hide in code-like strings


def mask_id_number(value: str) -> str:
    """4501**********1239: region prefix and last four, as on a receipt."""
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_name(value: str) -> str:
    """韦*例 for three characters, 韦* for two."""
    if len(value) <= 1:
        return "*"
    if len(value) == 2:
        return value[0] + "*"
    return value[0] + "*" * (len(value) - 2) + value[-1]


def mask_phone(value: str) -> str:
    """139****5678."""
    if len(value) < 8:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_other(value: str) -> str:
    if len(value) <= 2:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 2) + value[-1]


def scrub_text(text: str) -> str:
    """Free text with any ID or phone number in it masked."""
    text = _ID_IN_TEXT.sub(lambda m: m.group(1) + "*" * (len(m.group(0)) - 8) + m.group(2), text)
    return _PHONE_IN_TEXT.sub(lambda m: m.group(1) + "****" + m.group(2), text)


def mask_field(name: str, value: Any) -> Any:
    """One field of the applicant (or agent, or a section) masked by what it holds."""
    if isinstance(value, dict):
        return {k: mask_field(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_field(name, v) for v in value]
    if not isinstance(value, str):
        return value
    lowered = name.lower()
    if "id_number" in lowered or lowered.endswith("_no") or lowered == "identifier":
        return mask_id_number(value)
    if "phone" in lowered or "mobile" in lowered:
        return mask_phone(value)
    if lowered == "name" or lowered.endswith("_name"):
        return mask_name(value)
    if "birth" in lowered:
        return value[:4] + re.sub(r"\d", "*", value[4:])  # the year alone
    if _CODE.fullmatch(value) and not _LONG_DIGITS.search(value):
        return value
    return mask_other(value)
