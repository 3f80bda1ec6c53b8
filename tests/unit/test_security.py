"""PII encryption, caller files and request signatures, alone (no I/O beyond temp files)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re

import pytest
from cryptography.exceptions import InvalidTag

from gateway.security.callers import CallersFileError, RateLimit, load_callers
from gateway.security.pii import PiiCipher
from gateway.security.signing import caller_request, sign_caller_request


def test_our_signature_is_the_one_the_platform_computes():
    """Computed here from the README's definition alone, apart from our signer."""
    body = '{"profile": "guangxi", "applicant": {"name": "韦样例"}}'.encode()
    signed = "\n".join(["POST", "/v1/cases?x=1", "1700000000", "n-1", hashlib.sha256(body).hexdigest()])
    expected = hmac.new(b"s", signed.encode(), hashlib.sha256).hexdigest()
    assert sign_caller_request("s", "POST", "/v1/cases?x=1", "1700000000", "n-1", body) == expected


@pytest.mark.parametrize("name", ["aes-gcm", "sm4-gcm"])
def test_pii_round_trips_and_detects_tampering_and_a_moved_value(name):
    cipher = PiiCipher(os.urandom(32), name)
    sealed = cipher.seal_json({"name": "韦样例", "id_number": "450103199005171239"}, "case-1:applicant")
    assert "450103199005171239" not in sealed and sealed.startswith(f"v2:k0:{name}:")
    assert cipher.open_json(sealed, "case-1:applicant")["name"] == "韦样例"
    with pytest.raises(InvalidTag):
        cipher.open_json(sealed, "case-2:applicant")  # a value copied to another case does not open
    head, _, blob = sealed.rpartition(":")
    flipped = blob[:-4] + ("AAAA" if blob[-4:] != "AAAA" else "BBBB")
    with pytest.raises((InvalidTag, ValueError)):
        cipher.open_json(f"{head}:{flipped}", "case-1:applicant")


def test_switching_the_pii_cipher_keeps_stored_values_readable():
    key = os.urandom(32)
    old = PiiCipher(key, "aes-gcm").seal_json({"a": 1}, "x")
    new_cipher = PiiCipher(key, "sm4-gcm")
    assert new_cipher.open_json(old, "x") == {"a": 1}
    assert new_cipher.seal_json({"b": 2}, "x").startswith("v2:k0:sm4-gcm:")
    with pytest.raises(ValueError):
        PiiCipher(os.urandom(16), "sm4-gcm")


def test_callers_files_in_json_and_yaml_and_their_refusals(tmp_path):
    json_file = tmp_path / "callers.json"
    json_file.write_text('[{"app_id": "p", "secret": "s"}, {"app_id": "w", "secret": "t", "kind": "window"}]')
    callers = load_callers(json_file)
    assert callers["p"].kind == "platform" and callers["w"].kind == "window"
    yaml_file = tmp_path / "callers.yaml"
    yaml_file.write_text("callers:\n  - {app_id: p, secret: s, name: 平台}\n")
    assert load_callers(yaml_file)["p"].name == "平台"
    for bad in ('{"app_id": "p"}', '[{"app_id": "p"}]', '[{"app_id": "p", "secret": "s", "kind": "robot"}]'):
        json_file.write_text(bad)
        with pytest.raises(CallersFileError):
            load_callers(json_file)


def test_only_kind_grants_the_window_role_and_each_alias_is_refused_by_name(tmp_path):
    path = tmp_path / "callers.json"
    for alias, value in (("type", "window"), ("role", "window"), ("channel", "window"), ("window", True)):
        path.write_text(json.dumps([{"app_id": "a", "secret": "s", alias: value}]))
        with pytest.raises(CallersFileError, match=f"{alias} is not a callers-file key; say kind"):
            load_callers(path)


def test_per_caller_rights_quotas_and_webhooks_are_read_and_checked_at_load(tmp_path):
    path = tmp_path / "callers.yaml"
    path.write_text("- {app_id: p, secret: s, profiles: [guangxi], matters: [employee_medical_enrolment],\n"
                    "   rate_limit: {per_second: 2.5, burst: 5}, max_open_cases: 3,\n"
                    "   webhook_url: 'https://p.example/events', webhook_secret: own}\n"
                    "- {app_id: q, secret: t}\n")
    callers = load_callers(path, known_profiles=["guangxi", "jiujiang"], known_matters=["employee_medical_enrolment"])
    p, q = callers["p"], callers["q"]
    assert p.profiles == {"guangxi"} and p.matters == {"employee_medical_enrolment"}
    assert p.rate_limit == RateLimit(2.5, 5) and p.max_open_cases == 3
    assert (p.webhook_url, p.webhook_secret) == ("https://p.example/events", "own")
    assert q.profiles is None and q.matters is None and q.rate_limit is None and q.max_open_cases is None
    refused = {
        "profiles: guangxi": "profiles must be a non-empty list",
        "profiles: []": "profiles must be a non-empty list",
        "profiles: [shanghai]": "unknown profiles: shanghai",
        "matters: [flying]": "unknown matters: flying",
        "rate_limit: {per_second: 0, burst: 5}": "rate_limit must be",
        "rate_limit: {per_second: 1, burst: 1.5}": "rate_limit must be",
        "rate_limit: {per_second: 1}": "rate_limit must be",
        "max_open_cases: 0": "max_open_cases must be",
        "max_open_cases: true": "max_open_cases must be",
        "webhook_url: 'ftp://x'": "webhook_url must be an http(s) URL",
        "webhook_url: 'https://x.example'": "webhook_url and webhook_secret go together",
        "webhook_secret: alone": "webhook_url and webhook_secret go together",
        "quota: 3": "unknown key(s) quota",
    }
    for entry, reason in refused.items():
        path.write_text(f"- {{app_id: p, secret: s, {entry}}}\n")
        with pytest.raises(CallersFileError, match=re.escape(reason)):
            load_callers(path, known_profiles=["guangxi"], known_matters=["employee_medical_enrolment"])
    path.write_text("- {app_id: p, secret: s}\n- {app_id: p, secret: t}\n")
    with pytest.raises(CallersFileError, match="listed twice"):
        load_callers(path)


def test_a_window_callers_signature_covers_its_operator_and_a_platform_callers_is_unchanged():
    body = b"{}"
    plain = sign_caller_request("s", "POST", "/v1/cases", "1700000000", "n-1", body)
    readme = "\n".join(["POST", "/v1/cases", "1700000000", "n-1", hashlib.sha256(body).hexdigest()])
    assert plain == hmac.new(b"s", readme.encode(), hashlib.sha256).hexdigest()  # the README's definition
    clerk = sign_caller_request("s", "POST", "/v1/cases", "1700000000", "n-1", body, "clerk-1")
    other_clerk = sign_caller_request("s", "POST", "/v1/cases", "1700000000", "n-1", body, "clerk-2")
    assert clerk != plain and clerk != other_clerk
    assert caller_request("POST", "/v1/cases", "1", "n", body, "clerk-1").endswith(b"\nclerk-1")
