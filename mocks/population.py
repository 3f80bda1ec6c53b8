"""The synthetic population behind every mock, keyed by the ID number like a payment provider's test cards.

The last digit of the 3-digit sequence (ID characters 15-17) decides who the person is, so tests and platform teams
can reach every situation on purpose (the table is also in docs/mock-population.md):
  0-6  an ordinary applicant: no prior enrolment, no social-security card, e-licenses found
  7    already enrolled in employee pension and employee medical insurance
  8    already holds a social-security card
  9    no e-license record found
Household registration follows the division code (45xxxx Guangxi, 36xxxx Jiangxi), except for people who moved:
an ID number of division 440304 (深圳市福田区) whose sequence starts with 5 has its household register in 450103
(南宁市青秀区). Every mock takes the household from ``Person.division_code``, so they all agree.
"""

from __future__ import annotations

from dataclasses import dataclass

# (ID number's division, first sequence digit) -> household division after a move.
_MOVED = {("440304", "5"): "450103"}
_PROVINCES = {"11": "北京市", "31": "上海市", "36": "江西省", "44": "广东省", "45": "广西壮族自治区"}


@dataclass(frozen=True)
class Person:
    id_number: str
    division_code: str  # of the household register (where the person is registered now)
    birth_date: str  # YYYY-MM-DD
    sex: str  # "1" male, "2" female (GB/T 2261.1)
    already_enrolled: bool
    holds_card: bool
    has_e_license: bool

    @property
    def province(self) -> str:
        return _PROVINCES.get(self.division_code[:2], "其他省份")


def person(id_number: str) -> Person:
    number = id_number.strip().upper()
    marker = number[16] if len(number) == 18 else "0"
    birth = f"{number[6:10]}-{number[10:12]}-{number[12:14]}" if len(number) == 18 else "1990-01-01"
    sex = "1" if len(number) == 18 and int(number[16]) % 2 else "2"
    return Person(
        id_number=number,
        division_code=_MOVED.get((number[:6], number[14:15]), number[:6]),
        birth_date=birth,
        sex=sex,
        already_enrolled=marker == "7",
        holds_card=marker == "8",
        has_e_license=marker != "9",
    )
