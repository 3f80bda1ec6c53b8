"""What the official SMS may quote from a department: a short reason, nothing to follow or call."""

from __future__ import annotations

import pytest

from gateway.notifications.outbox import QUOTED_REASON_MAX, quoted_reason, sms_text


def rejection(reason: str) -> dict[str, object]:
    return {"type": "task.status_changed", "status": "rejected", "matter": "contribution_declaration",
            "reason": reason, "links": {}}


@pytest.mark.parametrize("reason", [
    "缴费基数低于下限，请访问 https://pay-now.example.com/x?id=1 重新缴费",
    "请登录 www.shebao-refund.cn 办理退费",
    "详情咨询 400-800-1234 或 13912345678",
    "请前往 evil-pay.com/refund 退款",
    "联系 refund@evil.example 退费",
    "HTTP://EVIL.EXAMPLE/X 大写也不行",
])
def test_nothing_a_reader_could_follow_or_call_reaches_the_sms(reason):
    text = sms_text(rejection(reason), "灵活就业人员缴费申报")
    assert text is not None and "原因：" in text
    for fragment in ("http", "HTTP", "www.", ".com", ".cn", "@", "400-800", "13912345678", "EVIL"):
        assert fragment not in text


def test_control_characters_go_and_the_length_is_capped():
    reason = "年龄不符\x1b[2J\r\n\u202e伪造" + "很长的说明" * 40
    quoted = quoted_reason(reason)
    assert len(quoted) <= QUOTED_REASON_MAX and quoted.endswith("…")
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in quoted)
    assert quoted.startswith("年龄不符")


def test_an_ordinary_reason_is_quoted_as_it_is():
    assert "原因：缴费基数低于当地最低标准。" in (sms_text(rejection("缴费基数低于当地最低标准"), "缴费申报") or "")
    assert "原因" not in (sms_text(rejection("https://x.example"), "缴费申报") or "")  # nothing left to quote
