"""``GET /v1/profiles`` and ``GET /v1/profiles/{profile}``: what the platform renders its one form from.

Everything comes from the profile; ``section_schema`` is the very schema the gateway validates with.
"""

from __future__ import annotations

from typing import Any

from gateway.profiles.loader import ProfileRegistry
from gateway.profiles.model import Material, MatterSpec, Profile
from gateway.profiles.section_schema import section_schema


def catalogue(profile: Profile) -> dict[str, Any]:
    return {
        "profile": profile.code,
        "name_zh": profile.name_zh,
        "name_en": profile.name_en,
        "matters": [_matter(profile, m) for m in profile.matters],
        "rules": _rules(profile),
    }


def catalogue_index(registry: ProfileRegistry) -> dict[str, Any]:
    profiles = [registry.get(code) for code in registry.codes()]
    return {
        "profiles": [
            {"code": p.code, "name_zh": p.name_zh, "name_en": p.name_en, "matters": [m.code for m in p.matters]}
            for p in profiles
        ]
    }


def _matter(profile: Profile, matter: MatterSpec) -> dict[str, Any]:
    return {
        "code": matter.code,
        "name_zh": matter.name_zh,
        "name_en": matter.name_en,
        "department": matter.department,
        "section_schema": section_schema(profile, matter),
        "materials": [_material(m) for m in matter.materials],
        "time_limits": matter.time_limits.model_dump(),
        "statutory_working_days": matter.statutory_working_days,
        "id_types": list(matter.id_types if matter.id_types is not None else profile.applicant_id_types),
        # 须知 verbatim, with what is time-sensitive as data (cut-off day, 第N个月享受待遇) for the platform to show.
        "notices": [n.model_dump(mode="json", by_alias=True, exclude_none=True) for n in matter.notices],
    }


def _material(material: Material) -> dict[str, Any]:
    data = material.model_dump(mode="json", by_alias=True, exclude_none=True)
    # Per channel, whether the applicant hands it in: online, what an e-license proves is never uploaded.
    data["upload"] = {channel: material.uploaded(channel) for channel in ("online", "window")}
    return data


def _rules(profile: Profile) -> dict[str, Any]:
    return {
        "applicant_id_types": list(profile.applicant_id_types),
        "female_original_retirement_age": profile.female_original_retirement_age,
        "mutually_exclusive": [list(pair) for pair in profile.mutually_exclusive],
        "prerequisites": {m.code: m.prerequisite.model_dump() for m in profile.matters if m.prerequisite is not None},
        "eligibility": {
            m.code: [check.model_dump() for check in m.eligibility] for m in profile.matters if m.eligibility
        },
        "channel_limits": {
            m.code: [limit.model_dump(by_alias=True) for limit in m.channel_limits]
            for m in profile.matters
            if m.channel_limits
        },
        "section_rules": {m.code: [rule.model_dump() for rule in m.rules] for m in profile.matters if m.rules},
        "proxy": {
            "allowed": profile.proxy.allowed,
            "id_types": list(profile.proxy.id_types),
            "required_fields": ["name", "id_type", "id_number", "relationship"],
            "materials": [_material(m) for m in profile.proxy.materials],
        },
        "common_materials": [_material(m) for m in profile.common_materials],
        "time_limits": {
            "promised_working_days": profile.promised_working_days,
            "statutory_working_days": profile.statutory_working_days,
            "statutory_formula": profile.statutory_formula,
        },
        "placeholders": [p.model_dump() for p in profile.placeholders],
        "certificate": profile.certificate,
    }
