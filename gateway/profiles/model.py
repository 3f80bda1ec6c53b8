"""A region profile as data: matters, their form sections, rules, materials and time limits.

The YAML files under ``profiles/`` are parsed into these frozen models. Section fields are written in the YAML as
JSON Schema fragments (draft 2020-12) so that what the platform renders, what the gateway validates and what the
catalogue publishes are one and the same text; ``section_schema.py`` turns a matter's fragment into the full schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

Channel = Literal["online", "window"]
Department = Literal["hrss", "medical", "tax", "housing_fund", "e_license"]
# 附件2 证件类型 (居民身份证, 港澳台居民居住证, 其他) and the documents the seeds name under 其他: travel permits,
# 护照, 外国人永久居留身份证. ``other`` carries a free description (``id_description``).
IdType = Literal[
    "resident_id", "hmt_residence_permit", "hmt_travel_permit", "foreign_permanent_residence", "passport", "other"
]
ELicense = Literal["id_card", "household_register"]
_BOTH_CHANNELS: tuple[Channel, ...] = ("online", "window")
_ID_DOCUMENTS: tuple[IdType, ...] = ("resident_id", "hmt_residence_permit")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeLimits(_Frozen):
    """Promised working days per channel; 0 = finished the same (working) day."""

    online: int = Field(ge=0)
    window: int = Field(ge=0)

    def for_channel(self, channel: Channel) -> int:
        return self.online if channel == "online" else self.window


class Prerequisite(_Frozen):
    """The matter needs one of ``any_of`` selected in the same case, or (if allowed) already held.

    "Already held" is the applicant's statement in the section field ``held_field`` (a list of matter codes); the
    gateway adds that field to the section schema itself, so profiles cannot forget or misspell it.
    """

    any_of: list[str] = Field(min_length=1)
    or_already_held: bool = False
    held_field: str = "already_enrolled"


class Condition(_Frozen):
    """True when the section value at ``field`` (dotted, ``*`` for every array row) is one of ``in``."""

    field: str
    in_: list[Any] = Field(alias="in", min_length=1)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Material(_Frozen):
    code: str
    name_zh: str
    name_en: str
    # False: needed only in the situation described by ``when_zh`` (checked by the clerk or ``when``).
    required: bool = True
    when_zh: str | None = None
    when_en: str | None = None
    when: Condition | None = None
    # An e-license that proves the same thing: online applicants never upload it (证件免交).
    satisfied_by: ELicense | None = None
    proxy_only: bool = False  # needed only when someone applies for the applicant (委托代办)
    channels: list[Channel] = Field(default_factory=lambda: list(_BOTH_CHANNELS))
    spec: dict[str, Any] | None = None  # e.g. the card photo's pixel size and byte range

    def uploaded(self, channel: Channel) -> bool:
        return channel in self.channels and not (channel == "online" and self.satisfied_by is not None)


class UnderRetirementAge(_Frozen):
    check: Literal["under_retirement_age"]


class MinimumAge(_Frozen):
    check: Literal["min_age"]
    years: int = Field(ge=0, le=100)


class HouseholdRegistration(_Frozen):
    """Household registration (户籍) in the profile's region, as declared (``applicant.household_division_code``) and
    re-checked against the retrieved household register; HK/Macau/Taiwan permit holders: residence instead."""

    check: Literal["household_registration"]


class HouseholdOrResidence(_Frozen):
    """户籍地或居住地参保: the declared household or residence division lies in the region."""

    check: Literal["household_or_residence"]


class Statement(_Frozen):
    """An applicant's statement in the section: boolean ``field`` must equal ``must_be`` (e.g. not a student)."""

    check: Literal["statement"]
    field: str
    must_be: bool
    code: str
    message_zh: str
    message_en: str


Eligibility = Annotated[
    UnderRetirementAge | MinimumAge | HouseholdRegistration | HouseholdOrResidence | Statement,
    Field(discriminator="check"),
]


class ChannelLimit(_Frozen):
    """Section values only accepted on some channels (e.g. a change of name only at the window)."""

    field: str
    in_: list[Any] = Field(alias="in", min_length=1)
    channels: list[Channel] = Field(min_length=1)
    reason_zh: str
    reason_en: str

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class DateOrder(_Frozen):
    """``earlier`` <= ``later`` (both dotted paths; ``*`` pairs rows of the same array)."""

    rule: Literal["date_order"]
    earlier: str
    later: str


class DateNotFuture(_Frozen):
    rule: Literal["date_not_future"]
    field: str


class DateNotPast(_Frozen):
    rule: Literal["date_not_past"]
    field: str


class ValuesDiffer(_Frozen):
    rule: Literal["values_differ"]
    first: str
    second: str


class RowRule(_Frozen):
    """Applies to the rows (``*``) whose ``when`` holds, e.g. the change rows whose item is the ID number."""

    when: Condition
    field: str


class IdNumberValue(RowRule):
    """The value at ``field`` is a valid resident ID number (GB 11643), e.g. the new number of a change."""

    rule: Literal["id_number_value"]


class ForbiddenValue(RowRule):
    """The value at ``field`` must not be one of ``in`` where ``when`` holds."""

    rule: Literal["forbidden_value"]
    in_: list[Any] = Field(alias="in", min_length=1)
    code: str
    message_zh: str
    message_en: str

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


SectionRule = Annotated[
    DateOrder | DateNotFuture | DateNotPast | ValuesDiffer | IdNumberValue | ForbiddenValue,
    Field(discriminator="rule"),
]


class Cutoff(_Frozen):
    """A yearly day after which the notice bites (e.g. 6月30日前缴纳): a case created later gets a warning."""

    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    when: Condition | None = None  # only when the section says so (e.g. 大额 selected)
    code: str
    warning_zh: str
    warning_en: str


class Notice(_Frozen):
    """A 须知 of the seed's form, verbatim, and what of it is time-sensitive as data."""

    text_zh: str
    source: str  # where in the seed
    cutoff: Cutoff | None = None
    benefits_from_month: int | None = Field(default=None, ge=1)  # 缴费后第N个月才能享受待遇


class Placeholder(_Frozen):
    """A value the seed does not give: kept in the profile until the department confirms it."""

    value: str  # what and where, e.g. "matters.contribution_declaration: contribution_base minimum 4000"
    seed_zh: str  # the seed sentence that leaves it open
    note: str = ""


class MatterSpec(_Frozen):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name_zh: str
    name_en: str
    department: str  # a built-in Department or that of an installed adapter: checked by the loader
    adapter: str
    operation: str
    prerequisite: Prerequisite | None = None
    time_limits: TimeLimits
    # JSON Schema fragment of the section: an object schema's keywords (properties, required, if/then, ...).
    section: dict[str, Any] = Field(default_factory=dict)
    rules: list[SectionRule] = Field(default_factory=list)
    eligibility: list[Eligibility] = Field(default_factory=list)
    channel_limits: list[ChannelLimit] = Field(default_factory=list)
    materials: list[Material] = Field(default_factory=list)
    # ID types this matter accepts; None = every type of the profile's ``applicant_id_types``.
    id_types: list[IdType] | None = None
    notices: list[Notice] = Field(default_factory=list)
    statutory_working_days: int | None = Field(default=None, ge=0)

    def accepts(self, id_type: str, profile: Profile) -> bool:
        return id_type in (self.id_types if self.id_types is not None else profile.applicant_id_types)


class Proxy(_Frozen):
    """委托代办: who may act for the applicant and what they bring."""

    allowed: bool = True
    id_types: list[IdType] = Field(default_factory=lambda: list(_ID_DOCUMENTS))
    materials: list[Material] = Field(default_factory=list)


class Profile(_Frozen):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name_zh: str
    name_en: str
    division_code: str = Field(pattern=r"^\d{6}$")
    female_original_retirement_age: Literal[50, 55]
    promised_working_days: int | None = Field(default=None, ge=0)
    statutory_working_days: int | None = Field(default=None, ge=0)
    # How a case's statutory limit follows from its matters: "sum_of_matters" (六(一): 各联办事项法定办结时限之和).
    statutory_formula: Literal["sum_of_matters"] | None = None
    certificate: str | None = None
    applicant_id_types: list[IdType] = Field(min_length=1)
    mutually_exclusive: list[tuple[str, str]] = Field(default_factory=list)
    proxy: Proxy = Field(default_factory=Proxy)
    common_materials: list[Material] = Field(default_factory=list)
    matters: list[MatterSpec] = Field(min_length=1)
    placeholders: list[Placeholder] = Field(default_factory=list)
    # Compiled section schemas and validators, filled lazily by section_schema.py (a cache, not data).
    _compiled: dict[str, Any] = PrivateAttr(default_factory=dict)

    def matter(self, code: str) -> MatterSpec:
        for matter in self.matters:  # a handful of matters: a scan is cheaper than keeping an index in a frozen model
            if matter.code == code:
                return matter
        raise KeyError(code)

    def has_matter(self, code: str) -> bool:
        return any(m.code == code for m in self.matters)

    def in_region(self, division_code: str) -> bool:
        return division_code.startswith(self.division_prefix)

    def statutory_days(self, matters: list[str]) -> int | None:
        """The case's statutory limit from its own matters, per ``statutory_formula``; None when the seed has none."""
        if self.statutory_formula == "sum_of_matters":
            return sum(self.matter(code).statutory_working_days or 0 for code in matters)
        return self.statutory_working_days

    @property
    def division_prefix(self) -> str:
        """Leading digits every division code of the region shares: "450000" -> "45", "360400" -> "3604"."""
        prefix = self.division_code
        while prefix.endswith("00") and len(prefix) > 2:
            prefix = prefix[:-2]
        return prefix
