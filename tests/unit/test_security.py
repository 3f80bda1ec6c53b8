"""Signed links, PII encryption, caller files and request signatures, alone (no I/O beyond temp files)."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.exceptions import InvalidTag

from gateway.security.callers import CallersFileError, load_callers, signature
from gateway.security.links import InvalidLink, LinkSigner
from gateway.security.pii import PiiCipher


def test_our_signature_is_the_one_the_platform_computes():
    """Computed here from the README's definition alone, apart from our signer."""
    body = '{"profile": "guangxi", "applicant": {"name": "韦样例"}}'.encode()
    signed = "\n".join(["POST", "/v1/cases?x=1", "1700000000", "n-1", hashlib.sha256(body).hexdigest()])
    expected = hmac.new(b"s", signed.encode(), hashlib.sha256).hexdigest()
    assert signature("s", "POST", "/v1/cases?x=1", "1700000000", "n-1", body) == expected


def test_links_round_trip_and_refuse_forgery_tampering_and_expiry():
    signer = LinkSigner(b"k" * 32, "http://gw.example/", ttl_s=60)
    token = signer.token("case-1", "contribution_declaration", "payment", now=1000)
    target = signer.verify(token, now=1059)
    assert (target.case_id, target.matter, target.step) == ("case-1", "contribution_declaration", "payment")
    assert signer.url("c", "m", "s").startswith("http://gw.example/h5/")
    with pytest.raises(InvalidLink) as expired:
        signer.verify(token, now=1061)
    assert expired.value.code == "link.expired"
    payload, mac = token.split(".")
    other = LinkSigner(b"x" * 32, "http://gw.example", ttl_s=60).token("case-1", "m", "payment", now=1000)
    for forged in (f"{payload}.{'0' * len(mac)}", other, f"{other.split('.')[0]}.{mac}", "garbage", ""):
        with pytest.raises(InvalidLink) as refused:
            signer.verify(forged, now=1001)
        assert refused.value.code == "link.forged"


@pytest.mark.parametrize("name", ["aes-gcm", "sm4-gcm"])
def test_pii_round_trips_and_detects_tampering_and_a_moved_value(name):
    cipher = PiiCipher(os.urandom(32), name)
    sealed = cipher.seal_json({"name": "韦样例", "id_number": "450103199005171239"}, "case-1:applicant")
    assert "450103199005171239" not in sealed and sealed.startswith(name + ":")
    assert cipher.open_json(sealed, "case-1:applicant")["name"] == "韦样例"
    with pytest.raises(InvalidTag):
        cipher.open_json(sealed, "case-2:applicant")  # a value copied to another case does not open
    kind, _, blob = sealed.partition(":")
    flipped = blob[:-4] + ("AAAA" if blob[-4:] != "AAAA" else "BBBB")
    with pytest.raises((InvalidTag, ValueError)):
        cipher.open_json(f"{kind}:{flipped}", "case-1:applicant")


def test_switching_the_pii_cipher_keeps_stored_values_readable():
    key = os.urandom(32)
    old = PiiCipher(key, "aes-gcm").seal_json({"a": 1}, "x")
    new_cipher = PiiCipher(key, "sm4-gcm")
    assert new_cipher.open_json(old, "x") == {"a": 1}
    assert new_cipher.seal_json({"b": 2}, "x").startswith("sm4-gcm:")
    with pytest.raises(ValueError):
        PiiCipher(os.urandom(16), "sm4-gcm")


def test_callers_files_in_json_and_yaml_and_their_refusals(tmp_path):
    json_file = tmp_path / "callers.json"
    json_file.write_text('[{"app_id": "p", "secret": "s"}, {"app_id": "w", "secret": "t", "kind": "window"}]')
    callers = load_callers(json_file)
    assert callers["p"].kind == "platform" and callers["w"].kind == "window"
    json_file.write_text('[{"app_id": "a", "secret": "s", "type": "window"}, {"app_id": "b", "secret": "s", '
                         '"window": true}, {"app_id": "c", "secret": "s", "channel": "window"}]')
    assert {c.kind for c in load_callers(json_file).values()} == {"window"}
    yaml_file = tmp_path / "callers.yaml"
    yaml_file.write_text("callers:\n  - {app_id: p, secret: s, name: 平台}\n")
    assert load_callers(yaml_file)["p"].name == "平台"
    for bad in ('{"app_id": "p"}', '[{"app_id": "p"}]', '[{"app_id": "p", "secret": "s", "kind": "robot"}]'):
        json_file.write_text(bad)
        with pytest.raises(CallersFileError):
            load_callers(json_file)
