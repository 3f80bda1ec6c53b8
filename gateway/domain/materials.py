"""The materials an application needs (一套材料): common, per selected matter with its conditions, and the proxy's."""

from __future__ import annotations

from typing import Any

from gateway.domain.paths import holds
from gateway.domain.validation import Application
from gateway.profiles.model import Material, Profile


def materials_for(profile: Profile, application: Application) -> list[dict[str, Any]]:
    """The application's materials: common, per selected matter (conditions evaluated), and the proxy's.

    ``upload`` is False for what the channel does not take (online: what an e-license proves, 证件免交).
    """
    chosen: list[tuple[str | None, Material]] = [(None, m) for m in profile.common_materials]
    if application.agent is not None:
        chosen.extend((None, m) for m in profile.proxy.materials)
    for code in application.matters:
        section = application.sections.get(code, {})
        chosen.extend((code, m) for m in profile.matter(code).materials
                      if (m.when is None or holds(m.when, section)) and (application.agent or not m.proxy_only))
    result = []
    for matter, material in chosen:
        if application.channel not in material.channels and material.satisfied_by is None:
            continue
        result.append(
            {
                "matter": matter,
                "code": material.code,
                "name_zh": material.name_zh,
                "name_en": material.name_en,
                "required": material.required or material.when is not None,
                "when_zh": material.when_zh,
                "satisfied_by": material.satisfied_by,
                "upload": material.uploaded(application.channel),
                "spec": material.spec,
            }
        )
    return result
