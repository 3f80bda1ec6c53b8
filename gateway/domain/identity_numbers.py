"""Identity document numbers: resident ID (GB 11643-1999), HK/Macau/Taiwan residence permits, the foreigner's
permanent residence ID card, travel permits and passports; plus age arithmetic.

Layout: 6-digit division code, birth date YYYYMMDD, 3-digit sequence (odd = male), check character (MOD 11-2).
python-stdnum (``stdnum.cn.ric``) is used for the check digit cross-check and the division table, but NOT for
rejection by division code: it rejects real numbers whose county code did not exist in the holder's birth year
(e.g. 110115 大兴区, created 2001, for someone born 1980), and numbers are assigned where the holder was
registered, not where they were born. An unknown division is therefore only reported via ``division_known``.
"""

from __future__ import annotations

import calendar
import datetime
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from stdnum import numdb
from stdnum.cn import ric

__all__ = [
    "DOCUMENT_PATTERNS",
    "IdNumberError",
    "ResidentIdNumber",
    "age_on",
    "check_character",
    "parse_document_number",
    "parse_foreign_permanent_residence",
    "parse_id_number",
]

IdKind = Literal["resident_id", "hmt_residence_permit"]
Sex = Literal["male", "female"]
PermitRegion = Literal["hk", "macau", "taiwan"]

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_ASCII_DIGITS = frozenset("0123456789")

PERMIT_PREFIXES: dict[str, PermitRegion] = {"810000": "hk", "820000": "macau", "830000": "taiwan"}

# Nobody alive was born before this; an earlier year is a typo, not a centenarian.
_EARLIEST_BIRTH = datetime.date(1900, 1, 1)

_MESSAGES: dict[str, tuple[str, str]] = {
    "applicant.id_number.length": (
        "身份证号码应为18位",
        "The ID number must be 18 characters long",
    ),
    "applicant.id_number.format": (
        "身份证号码前17位应为数字，最后一位应为数字或X",
        "The first 17 characters must be digits and the last a digit or X",
    ),
    "applicant.id_number.checksum": (
        "身份证号码校验位不正确，请核对号码",
        "The check character does not match; please re-check the number",
    ),
    "applicant.id_number.birth_date": (
        "身份证号码中的出生日期无效",
        "The birth date in the ID number is not a valid date",
    ),
    "applicant.id_number.obsolete_15_digit": (
        "15位身份证号码已停止使用，请提供18位身份证号码",
        "15-digit ID numbers are obsolete; please provide the 18-character number",
    ),
    "applicant.id_number.foreign_permanent_residence": (
        "外国人永久居留身份证号码应为18位（9开头，末位为校验码）或15位（3个字母加12位数字）",
        "A foreigner's permanent residence ID number has 18 characters (starting with 9, ending with the check "
        "character) or 15 (3 letters and 12 digits)",
    ),
    "applicant.id_number.document_format": (
        "证件号码格式不正确",
        "The document number does not have the document's format",
    ),
    "applicant.id_number.permit_prefix": (
        "港澳台居民居住证号码应以810000、820000或830000开头",
        "A Hong Kong/Macau/Taiwan residence permit number must start with 810000, 820000 or 830000",
    ),
}


class IdNumberError(ValueError):
    """Rejected ID number; ``code`` is stable and safe to show to API clients."""

    def __init__(self, code: str, message_zh: str | None = None, message_en: str | None = None) -> None:
        default_zh, default_en = _MESSAGES[code]
        self.code = code
        self.message_zh = message_zh or default_zh
        self.message_en = message_en or default_en
        super().__init__(f"{code}: {self.message_en}")


@dataclass(frozen=True)
class ResidentIdNumber:
    number: str
    division_code: str
    birth_date: datetime.date
    sequence: str
    sex: Sex
    permit_region: PermitRegion | None
    division_known: bool


def check_character(first17: str) -> str:
    """GB 11643 check character for the first 17 digits."""
    if len(first17) != 17 or not set(first17) <= _ASCII_DIGITS:
        raise ValueError("check_character needs exactly 17 ASCII digits")
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def _normalise(raw: str) -> str:
    # NFKC folds full-width digits/letters typed with Chinese IMEs (１２３Ｘ) to ASCII.
    text = unicodedata.normalize("NFKC", raw)
    return "".join(text.split()).upper()


def _division_known(division: str) -> bool:
    if division in PERMIT_PREFIXES:
        # Fixed permit prefixes, not divisions; stdnum lacks 830000 and that must not raise a warning.
        return True
    # Known in any period counts: the per-birth-year check in stdnum is exactly the trap described above.
    parts = numdb.get("cn/loc").info(division)
    return any(props.get("county") for _part, props in parts)


def parse_id_number(
    raw: str,
    *,
    kind: IdKind = "resident_id",
    today: datetime.date | None = None,
) -> ResidentIdNumber:
    """Validate and decompose an ID number; raises IdNumberError.

    ``today`` exists for tests; the future-birth-date check uses the local date otherwise.
    """
    number = _normalise(raw)
    if len(number) == 15 and set(number) <= _ASCII_DIGITS:
        raise IdNumberError("applicant.id_number.obsolete_15_digit")
    if len(number) != 18:
        raise IdNumberError("applicant.id_number.length")
    first17, check = number[:17], number[17]
    if not set(first17) <= _ASCII_DIGITS or not (check in _ASCII_DIGITS or check == "X"):
        raise IdNumberError("applicant.id_number.format")
    if check != check_character(first17):
        raise IdNumberError("applicant.id_number.checksum")

    try:
        birth = ric.get_birth_date(number)
    except ValueError as exc:  # stdnum's InvalidComponent is a ValueError
        raise IdNumberError("applicant.id_number.birth_date") from exc
    if birth < _EARLIEST_BIRTH or birth > (today or datetime.date.today()):
        raise IdNumberError("applicant.id_number.birth_date")

    division = number[:6]
    permit_region = PERMIT_PREFIXES.get(division)
    if kind == "hmt_residence_permit" and permit_region is None:
        raise IdNumberError("applicant.id_number.permit_prefix")

    sequence = number[14:17]
    return ResidentIdNumber(
        number=number,
        division_code=division,
        birth_date=birth,
        sequence=sequence,
        sex="male" if int(sequence) % 2 else "female",
        permit_region=permit_region,
        division_known=_division_known(division),
    )


# Formats of documents whose number carries no birth date (the applicant then states birth date and sex).
DOCUMENT_PATTERNS: dict[str, re.Pattern[str]] = {
    # 港澳居民来往内地通行证 (H/M + 8 or 10 digits) and 台湾居民来往大陆通行证 (8 digits, older ones 10).
    "hmt_travel_permit": re.compile(r"^([HM]\d{8}(\d{2})?|\d{8}(\d{2})?)$"),
    "passport": re.compile(r"^[A-Z0-9]{5,17}$"),
    "other": re.compile(r"^[A-Z0-9()\-]{2,30}$"),
}
_OLD_FOREIGN_PR = re.compile(r"^[A-Z]{3}\d{12}$")


def parse_foreign_permanent_residence(
    raw: str, *, today: datetime.date | None = None
) -> tuple[str, datetime.date | None]:
    """(normalised number, birth date or None) of a 外国人永久居留身份证.

    2023 format: ``9`` + province (2) + nationality (3, numeric) + birth date (8) + sequence (3) + GB 11643 MOD 11-2
    check character. The older 15-character format (3 letters, 12 digits) is accepted; its birth date is the
    applicant's statement.
    """
    number = _normalise(raw)
    if _OLD_FOREIGN_PR.match(number):
        return number, None
    first17 = number[:17]
    if len(number) != 18 or number[0] != "9" or not set(first17) <= _ASCII_DIGITS:
        raise IdNumberError("applicant.id_number.foreign_permanent_residence")
    if number[17] != check_character(first17):
        raise IdNumberError("applicant.id_number.checksum")
    try:
        birth = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise IdNumberError("applicant.id_number.birth_date") from exc
    if birth < _EARLIEST_BIRTH or birth > (today or datetime.date.today()):
        raise IdNumberError("applicant.id_number.birth_date")
    return number, birth


def parse_document_number(raw: str, id_type: str) -> str:
    """The normalised number of a document without an embedded birth date; raises IdNumberError."""
    number = _normalise(raw)
    if not DOCUMENT_PATTERNS[id_type].match(number):
        raise IdNumberError("applicant.id_number.document_format")
    return number


def _anniversary_day(year: int, month: int, day: int) -> int:
    # Civil Code art. 202: with no corresponding day in the final month, the month's last day counts
    # (born 29 Feb -> 28 Feb in common years; born 31 Jan -> 28/29 Feb for the one-month mark).
    return min(day, calendar.monthrange(year, month)[1])


def age_on(birth: datetime.date, on: datetime.date) -> tuple[int, int]:
    """(full years, extra full months) of someone born on ``birth`` at the start of ``on``.

    A month is complete on its corresponding day (clamped to month end), so someone born 2000-02-29 is 1 year old on
    2001-02-28 and someone born 2000-01-31 is 0y1m on 2000-02-29.
    """
    if on < birth:
        raise ValueError("'on' is before the birth date")
    months = (on.year - birth.year) * 12 + (on.month - birth.month)
    if on.day < _anniversary_day(on.year, on.month, birth.day):
        months -= 1
    return divmod(months, 12)
