"""PII encryption, caller files and request signatures, alone (no I/O beyond temp files)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from gateway.security.callers import CallersFileError, load_callers
from gateway.security.pii import PiiCipher
from gateway.security.signing import sign_caller_request

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "shared" / "contract"))
import platform_client  # noqa: E402  - the platform's own signer, written apart from ours


def test_our_signature_is_the_one_the_platform_computes():
    body = '{"profile": "guangxi", "applicant": {"name": "韦样例"}}'.encode()
    headers = platform_client.sign("POST", "/v1/cases?x=1", body, app_id="a", secret="s", ts=1700000000,
                                   nonce="n-1")
    assert headers["X-Signature"] == sign_caller_request("s", "POST", "/v1/cases?x=1", "1700000000", "n-1", body)


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
