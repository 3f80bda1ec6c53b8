"""Rules across matters (exclusions, prerequisites, accepted ID types) and eligibility, exactly as the seeds word them.

户籍 is what the applicant declares (``applicant.household_division_code``): the household register arrives as an
e-license only after intake, and then it decides (``register_refusals``, called by the engine). Nothing is guessed
from the ID number's division code (people move) or from a typed address.
"""

from __future__ import annotations

import datetime
from typing import Any

from gateway.domain.identity_numbers import age_on
from gateway.domain.paths import holds
from gateway.domain.retirement import Sex, has_reached_retirement, retirement_month
from gateway.domain.validation.people import Identity
from gateway.domain.validation.report import Report
from gateway.profiles.model import (
    HouseholdOrResidence,
    HouseholdRegistration,
    MatterSpec,
    MinimumAge,
    Profile,
    Statement,
    UnderRetirementAge,
)


def selection_rules(
    profile: Profile, matters: list[str], index: dict[str, int], sections: dict[str, dict[str, Any]], report: Report
) -> None:
    selected = set(matters)
    for first, second in profile.mutually_exclusive:
        if first in selected and second in selected:
            a, b = profile.matter(first), profile.matter(second)
            report.add("matters.mutually_exclusive", f"matters.{max(index[first], index[second])}",
                       f"“{a.name_zh}”和“{b.name_zh}”不可同时选办", f"'{first}' and '{second}' cannot both be selected")
    for code in matters:
        prerequisite = profile.matter(code).prerequisite
        if prerequisite is None or selected.intersection(prerequisite.any_of):
            continue
        held = sections.get(code, {}).get(prerequisite.held_field)
        if prerequisite.or_already_held and isinstance(held, list) and set(prerequisite.any_of).intersection(held):
            continue
        names = "、".join(profile.matter(c).name_zh for c in prerequisite.any_of)
        report.add("matters.prerequisite_missing", f"matters.{index[code]}",
                   f"办理“{profile.matter(code).name_zh}”须同时选办或已办理以下事项之一：{names}",
                   f"'{code}' needs one of {', '.join(prerequisite.any_of)} selected in this case or already held")


def accepted_id_types(profile: Profile, matters: list[str], index: dict[str, int], id_type: str | None,
                      report: Report) -> None:
    """Each matter states the ID types it takes (e.g. a foreigner's permanent residence ID: resident medical only)."""
    if id_type is None:
        return
    for code in matters:
        matter = profile.matter(code)
        if not matter.accepts(id_type, profile):
            report.add("matters.id_type_not_accepted", f"matters.{index[code]}",
                       f"“{matter.name_zh}”不能以该类证件办理",
                       f"'{code}' does not accept the ID type '{id_type}'")


def eligibility(profile: Profile, matters: list[str], applicant: dict[str, Any], ident: Identity,
                sections: dict[str, dict[str, Any]], report: Report, *, register_follows: bool = False) -> None:
    years, _months = age_on(ident.birth_date, report.today)
    for code in matters:
        matter = profile.matter(code)
        for check in matter.eligibility:
            if isinstance(check, UnderRetirementAge):
                _retirement(profile, matter, ident, report)
            elif isinstance(check, MinimumAge) and years < check.years:
                report.add("applicant.age.under_minimum", "applicant.id_number",
                           f"办理“{matter.name_zh}”须年满{check.years}周岁",
                           f"'{code}' requires age {check.years} or over")
            elif isinstance(check, HouseholdRegistration | HouseholdOrResidence):
                _place(profile, matter, check, applicant, ident, report, register_follows=register_follows)
            elif isinstance(check, Statement):
                value = sections.get(code, {}).get(check.field)
                if isinstance(value, bool) and value != check.must_be:
                    report.add(check.code, f"sections.{code}.{check.field}", check.message_zh, check.message_en)


def _retirement(profile: Profile, matter: MatterSpec, ident: Identity, report: Report) -> None:
    female_age = profile.female_original_retirement_age
    sex: Sex = "male" if ident.sex == "male" else "female"
    if has_reached_retirement(ident.birth_date, sex, report.today, female_original_age=female_age):
        year, month = retirement_month(ident.birth_date, sex, female_original_age=female_age)
        report.add("applicant.age.over_retirement", "applicant.id_number",
                   f"申请人已于{year}年{month}月达到法定退休年龄，不能办理“{matter.name_zh}”",
                   f"The applicant reached the statutory retirement age in {year}-{month:02d}; "
                   f"'{matter.code}' is not possible")


def _place(profile: Profile, matter: MatterSpec, check: HouseholdRegistration | HouseholdOrResidence,
           applicant: dict[str, Any], ident: Identity, report: Report, *, register_follows: bool = False) -> None:
    """四.3(2) 具有广西户籍…在户籍地参加 (permit holders: 在广西居住); 四.4(2) 应在户籍地或居住地参保."""
    household = applicant.get("household_division_code")
    residence = applicant.get("residence_division_code")
    # Who has no 户籍 on the mainland (HK/Macau/Taiwan permit, foreigner) enrols where they live.
    lives_here_only = ident.permit_region is not None or ident.id_type in ("foreign_permanent_residence", "passport")
    if isinstance(check, HouseholdOrResidence) or lives_here_only:
        declared = [c for c in ((residence,) if lives_here_only else (household, residence)) if c]
        by_residence = lives_here_only or (residence and not household)
        field = "residence_division_code" if by_residence else "household_division_code"
        where_zh = "居住地" if lives_here_only else "户籍地或居住地"
    else:
        declared = [household] if household else []
        field, where_zh = "household_division_code", "户籍地"
    if not declared and register_follows and not lives_here_only:
        return  # the household register, retrieved next, decides (register_refusals)
    if not declared:
        report.add("field.required", f"applicant.{field}", f"办理“{matter.name_zh}”须填写{where_zh}行政区划代码",
                   f"'{matter.code}' needs 'applicant.{field}'")
    elif not any(profile.in_region(code) for code in declared):
        report.add("eligibility.household_registration", f"applicant.{field}",
                   f"办理“{matter.name_zh}”须在{profile.name_zh}{where_zh}参保",
                   f"'{matter.code}' requires the {field.split('_')[0]} in {profile.name_en}")


def register_refusals(profile: Profile, matters: list[str], applicant: dict[str, Any],
                      register_division: str | None) -> dict[str, str]:
    """After the e-license step, 户籍 as it stands: the retrieved household register decides over what was declared;
    without one, the declaration (which intake left open when a register was to follow). Each matter whose 户籍
    rule fails, with the reason for the applicant."""
    ident = Identity(id_type=str(applicant.get("id_type", "resident_id")), number=str(applicant.get("id_number", "")),
                     birth_date=datetime.date.fromisoformat(str(applicant["birth_date"])),
                     sex=str(applicant.get("sex", "")), permit_region=None)
    registered = dict(applicant, household_division_code=register_division) if register_division else applicant
    source = "居民户口簿电子证照显示户籍不在" if register_division else "未取得居民户口簿电子证照，申请所填户籍地不在"
    refusals = {}
    for code in matters:
        matter = profile.matter(code)
        for check in matter.eligibility:
            if isinstance(check, HouseholdRegistration | HouseholdOrResidence):
                report = Report(today=datetime.date.today())
                _place(profile, matter, check, registered, ident, report)
                if report.errors:
                    refusals[code] = f"{source}{profile.name_zh}：{report.errors[0].message_zh}"
    return refusals


def notice_warnings(profile: Profile, matters: list[str], sections: dict[str, dict[str, Any]],
                    today: datetime.date, report: Report) -> None:
    """A time-sensitive 须知 whose yearly cut-off has passed today: the case carries it as a warning."""
    for code in matters:
        for notice in profile.matter(code).notices:
            cutoff = notice.cutoff
            if cutoff is None or (cutoff.when is not None and not holds(cutoff.when, sections.get(code, {}))):
                continue
            if (today.month, today.day) > (cutoff.month, cutoff.day):
                report.warn(cutoff.code, f"sections.{code}", cutoff.warning_zh, cutoff.warning_en)
