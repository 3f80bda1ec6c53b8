"""Materials that travel with a case (一套材料): `attachments` and, at a window, `materials_received`.

An attachment is `{material, matter?, filename, content_type, sha256, data_base64}`. The profile's materials list
says which materials a case may carry (common, per selected matter, the proxy's), their content types, how many and
how large; the SHA-256 is checked against the content. A material marked `must_attach` is refused when its
condition holds and it neither came as an attachment nor was received at the counter (window cases only), unless
an e-license satisfies it (免提交). Each department then gets the attachments of its matter (`for_matter`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.domain.materials import materials_for
from gateway.domain.validation import Application, Problem
from gateway.profiles.model import Material, Profile

CASE_LIMIT_BYTES = 20 * 1024 * 1024  # every attachment of one case together, decoded
_MAX_FILENAME = 200
_FIELDS = {"material", "matter", "filename", "content_type", "sha256", "data_base64"}


@dataclass
class Materials:
    attachments: list[dict[str, Any]] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # material codes handed in at the counter
    errors: list[Problem] = field(default_factory=list)

    def fail(self, code: str, path: str, zh: str, en: str) -> None:
        self.errors.append(Problem(code, path, zh, en))


def _offered(profile: Profile, application: Application) -> dict[tuple[str | None, str], Material]:
    """(matter or None for common/proxy, material code) -> the material, for what this case may carry."""
    offered: dict[tuple[str | None, str], Material] = {(None, m.code): m for m in profile.common_materials}
    if application.agent is not None:
        offered |= {(None, m.code): m for m in profile.proxy.materials}
    for matter in application.matters:
        offered |= {(matter, m.code): m for m in profile.matter(matter).materials}
    return offered


def _find(offered: dict[tuple[str | None, str], Material], code: str,
          matter: str | None) -> tuple[str | None, Material] | None:
    if matter is not None:
        found = offered.get((matter, code))
        return (matter, found) if found else None
    matches = [(m, material) for (m, c), material in offered.items() if c == code]
    return matches[0] if matches else None


def _one(raw: Any, path: str, offered: dict[tuple[str | None, str], Material], out: Materials) -> int:
    """Check one attachment and keep it; the decoded size (0 when refused)."""
    if not isinstance(raw, dict) or not {"material", "filename", "content_type", "sha256", "data_base64"} <= set(raw):
        out.fail("attachments.invalid", path, "附件应包含 material、filename、content_type、sha256、data_base64",
                 "an attachment needs material, filename, content_type, sha256 and data_base64")
        return 0
    unknown = set(raw) - _FIELDS
    if unknown:
        out.fail("attachments.invalid", path, f"附件含未知字段：{'、'.join(sorted(unknown))}",
                 f"unknown attachment fields: {', '.join(sorted(unknown))}")
        return 0
    matter = raw.get("matter")
    found = _find(offered, str(raw["material"]), str(matter) if matter else None)
    if found is None:
        out.fail("attachments.material_unknown", f"{path}.material", "该材料不属于本申请所选事项的材料清单",
                 "this material is not on the materials list of the selected matters")
        return 0
    owner, material = found
    if raw["content_type"] not in material.content_types:
        out.fail("attachments.content_type", f"{path}.content_type",
                 f"该材料只接受以下格式：{'、'.join(material.content_types)}",
                 f"this material accepts only: {', '.join(material.content_types)}")
        return 0
    filename = str(raw["filename"])
    if not filename or len(filename) > _MAX_FILENAME or "/" in filename or "\\" in filename:
        out.fail("attachments.filename", f"{path}.filename", "文件名应为1至200个字符且不含路径",
                 "the file name must be 1 to 200 characters without a path")
        return 0
    try:
        data = base64.b64decode("".join(str(raw["data_base64"]).split()), validate=True)
    except (binascii.Error, ValueError):
        out.fail("attachments.data", f"{path}.data_base64", "附件内容不是有效的base64",
                 "the content is not valid base64")
        return 0
    if len(data) > material.max_bytes:
        out.fail("attachments.too_large", f"{path}.data_base64",
                 f"该材料单个文件不超过{material.max_bytes // 1024}KB",
                 f"a file of this material may not exceed {material.max_bytes // 1024} KB")
        return 0
    digest = hashlib.sha256(data).hexdigest()
    if digest != str(raw["sha256"]).lower():
        out.fail("attachments.sha256_mismatch", f"{path}.sha256", "附件的SHA-256与内容不符",
                 "the SHA-256 does not match the content")
        return 0
    out.attachments.append({"material": material.code, "matter": owner, "filename": filename,
                            "content_type": raw["content_type"], "sha256": digest,
                            "data_base64": base64.b64encode(data).decode()})
    return len(data)


def read_materials(body: Mapping[str, Any], profile: Profile, application: Application) -> Materials:
    """The case's attachments and counter receipts, checked against the profile's materials list."""
    out = Materials()
    offered = _offered(profile, application)
    raw_list = body.get("attachments", [])
    if not isinstance(raw_list, list):
        out.fail("attachments.invalid", "attachments", "attachments 应为数组", "'attachments' must be an array")
        raw_list = []
    total = sum(_one(raw, f"attachments[{i}]", offered, out) for i, raw in enumerate(raw_list))
    if total > CASE_LIMIT_BYTES:
        out.fail("attachments.case_too_large", "attachments", f"附件合计不超过{CASE_LIMIT_BYTES // 1024 // 1024}MB",
                 f"all attachments together may not exceed {CASE_LIMIT_BYTES // 1024 // 1024} MB")
    for (matter, code), material in offered.items():
        count = sum(1 for a in out.attachments if a["material"] == code and a["matter"] == matter)
        if count > material.max_count:
            out.fail("attachments.too_many", "attachments", f"材料「{material.name_zh}」最多{material.max_count}个文件",
                     f"at most {material.max_count} files of '{material.name_en}'")
    received = body.get("materials_received", [])
    if received and application.channel != "window":
        out.fail("materials_received.window_only", "materials_received", "只有窗口申请可登记窗口收取的材料",
                 "only a window case can declare materials received at the counter")
    elif not isinstance(received, list) or not all(isinstance(c, str) for c in received):
        out.fail("materials_received.invalid", "materials_received", "materials_received 应为材料代码数组",
                 "'materials_received' must be an array of material codes")
    else:
        out.received = sorted(set(received))
        for code in out.received:
            if not any(c == code for _m, c in offered):
                out.fail("materials_received.unknown", "materials_received", "该材料不属于本申请所选事项的材料清单",
                         "this material is not on the materials list of the selected matters")
    _missing(profile, application, out)
    return out


def _missing(profile: Profile, application: Application, out: Materials) -> None:
    """A `must_attach` material whose condition holds, brought neither as an attachment nor to the counter."""
    brought = {a["material"] for a in out.attachments} | set(out.received)
    for item in materials_for(profile, application):
        matter = item["matter"]
        material = next((m for m in (profile.matter(matter).materials if matter else []) if m.code == item["code"]),
                        None)
        if material is None or not material.must_attach or item["satisfied_by"] or item["code"] in brought:
            continue
        out.fail("attachments.required", "attachments", f"缺少材料「{material.name_zh}」",
                 f"the material '{material.name_en}' is missing")


def for_matter(attachments: Sequence[Mapping[str, Any]], matter: str) -> list[dict[str, Any]]:
    """What the department of `matter` gets: that matter's materials and the common ones (ID, proxy papers)."""
    return [dict(a) for a in attachments if a["matter"] in (matter, None)]
