"""Masking, password hashes, the operators file and session cookies: pure functions, no gateway."""

from __future__ import annotations

import json
import time

import pytest

from gateway.console.masking import mask_field, scrub_text
from gateway.console.operators import OperatorsFileError, authenticate, hash_password, load_operators, verify_password
from gateway.console.sessions import SessionSigner


def test_personal_fields_are_masked_by_what_they_hold():
    assert mask_field("id_number", "450103199005171239") == "4501**********1239"
    assert mask_field("name", "韦样例") == "韦*例" and mask_field("name", "韦例") == "韦*"
    assert mask_field("phone", "13912345678") == "139****5678"
    assert mask_field("birth_date", "1990-05-17") == "1990-**-**"
    assert mask_field("scheme", "combined_accounts") == "combined_accounts"  # a code, not a person
    assert "19900517" not in mask_field("anything", "45010319900517123X")
    assert "6222021234567890" not in mask_field("bank", "6222021234567890")
    assert (scrub_text("证件号 45010319900517123X 手机 13912345678 不符")
            == "证件号 4501**********123X 手机 139****5678 不符")


def test_passwords_verify_only_against_their_own_hash():
    stored = hash_password("correct horse", n=2**14)
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", stored) and not verify_password("correct hors", stored)
    assert not verify_password("correct horse", "scrypt$x$y$z$a$b") and not verify_password("x", "plain")


def test_the_operators_file_is_checked_entry_by_entry(tmp_path):
    path = tmp_path / "operators.json"
    good = {"id": "op1", "name": "韦", "role": "operator", "password_hash": hash_password("pw", n=2**14)}
    path.write_text(json.dumps([good]))
    operators = load_operators(path)
    assert authenticate(operators, "op1", "pw") == operators["op1"] and operators["op1"].may_act
    assert authenticate(operators, "op1", "nope") is None and authenticate(operators, "other", "pw") is None
    for bad, message in (({**good, "role": "admin"}, "role must be viewer or operator"),
                         ({**good, "password_hash": "pw"}, "scrypt hash"),
                         ({**good, "password": "pw"}, "unknown key")):
        path.write_text(json.dumps([bad]))
        with pytest.raises(OperatorsFileError, match=message):
            load_operators(path)
    path.write_text(json.dumps([good, good]))
    with pytest.raises(OperatorsFileError, match="listed twice"):
        load_operators(path)


def test_a_session_cookie_opens_only_unaltered_unexpired_and_under_its_key():
    signer = SessionSigner(b"k" * 32, ttl_s=60)
    cookie, session = signer.issue("op1")
    assert signer.open(cookie) == session
    payload, mac = cookie.split(".")
    assert signer.open(payload + "." + mac[:-2] + "AA") is None
    assert SessionSigner(b"j" * 32, ttl_s=60).open(cookie) is None
    expired, _ = SessionSigner(b"k" * 32, ttl_s=-1).issue("op1")
    assert signer.open(expired) is None and session.expires_at > time.time()
    assert signer.open("") is None and signer.open("no-dot") is None and signer.open("é.x") is None


def test_the_console_is_mounted_only_when_turned_on(tmp_path):
    from fastapi.testclient import TestClient

    from gateway.api.app import create_app
    from gateway.settings import Settings

    operators = tmp_path / "operators.json"
    operators.write_text("[]")
    cases = {"no operators file": ({}, False), "operators file": ({"operators_file": operators}, True),
             "turned off": ({"operators_file": operators, "console": False}, False)}
    for name, (values, mounted) in cases.items():
        app = create_app(Settings(var_dir=tmp_path / "var", **values), "redis://127.0.0.1:1/0")
        # The sign-in page needs no services: the app is not started (no Redis behind this one).
        assert TestClient(app).get("/console/login").status_code == (200 if mounted else 404), name
        # Never in the public contract (the OpenAPI document is built from the routes in the schema).
        assert not any(getattr(route, "include_in_schema", False) and getattr(route, "path", "").startswith(
            "/console") for route in app.routes), name


def test_gateway_up_writes_private_demo_operators_whose_printed_passwords_sign_in(tmp_path):
    from gateway.cli.main import _demo_operators

    path = _demo_operators(tmp_path, 8080)
    passwords = json.loads((tmp_path / "secrets" / "console-demo-passwords.json").read_text())
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets" / "console-demo-passwords.json").stat().st_mode & 0o777 == 0o600
    operators = load_operators(path)
    assert {o.role for o in operators.values()} == {"operator", "viewer"}
    for operator_id, password in passwords.items():
        assert authenticate(operators, operator_id, password) is operators[operator_id]
    assert _demo_operators(tmp_path, 8080) == path and load_operators(path) == operators  # kept across restarts


def test_the_operators_hash_command_prints_a_hash_that_verifies():
    from typer.testing import CliRunner

    from gateway.cli.main import app

    result = CliRunner().invoke(app, ["operators", "hash"], input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    printed = result.output.strip().splitlines()[-1]
    assert verify_password("s3cret-pass", printed) and "s3cret-pass" not in result.output


def test_the_demo_submit_is_there_only_in_development_with_the_demo_caller_the_gateway_knows(tmp_path):
    from gateway.console.demo import DEMO_ISSUER, demo_caller
    from gateway.security.applicant_identity import write_demo_identity
    from gateway.security.callers import write_demo_callers
    from gateway.settings import Settings

    var = tmp_path / "var"
    dev = Settings(var_dir=var, identity_issuer=DEMO_ISSUER)
    assert demo_caller(dev, {"demo-platform"}) is None  # `gateway up` has not written the demo caller yet
    caller = write_demo_callers(var / "demo-callers.json")
    assert demo_caller(dev, {"demo-platform"}) is None  # nor the demo identity key
    _, key = write_demo_identity(var / "identity", DEMO_ISSUER)
    found = demo_caller(dev, {"demo-platform"})
    assert found is not None and (found.app_id, found.secret, found.identity_key) == (caller.app_id, caller.secret, key)
    assert demo_caller(dev, {"another-platform"}) is None  # the gateway does not accept it
    assert demo_caller(Settings(var_dir=var, identity_issuer="real-idp"), {"demo-platform"}) is None
    assert demo_caller(Settings(var_dir=var, identity_issuer=DEMO_ISSUER, env="production"), {"demo-platform"}) is None


def test_the_one_form_body_is_typed_by_the_section_schemas_and_holds_only_the_chosen_matters():
    from gateway.console.form import case_body

    schema = {"properties": {"tier": {"oneOf": [{"const": 100}, {"const": 200}]}, "long_term": {"type": "boolean"},
                             "types": {"type": "array", "items": {"enum": ["a", "b"]}}, "count": {"type": "integer"},
                             "place": {"type": "string"}}}
    document = {"profile": "p", "matters": [{"code": "m1", "section_schema": schema},
                                            {"code": "m2", "section_schema": schema}]}
    posted = {"matters": ["m1"], "m1.tier": ["200"], "m1.types": ["a", "b"], "m1.count": ["x7"], "m1.place": [""],
              "m2.tier": ["100"], "applicant.name": [" 韦样例 "], "applicant.phone": [""]}
    body = case_body(document, posted)
    assert body["matters"] == ["m1"] and list(body["sections"]) == ["m1"]
    # An unparsable number goes as typed, for the API to refuse in its own words; an empty field is left out.
    assert body["sections"]["m1"] == {"tier": 200, "long_term": False, "types": ["a", "b"], "count": "x7"}
    assert body["applicant"] == {"name": "韦样例", "id_type": "resident_id"}
    assert (body["channel"], body["delivery"], body["profile"]) == ("online", "online", "p")


def test_a_trace_url_without_its_trace_id_placeholder_refuses_to_start(tmp_path):
    from gateway.bootstrap import ConfigurationError
    from gateway.console.views import console_router
    from gateway.settings import Settings

    for template in ("http://jaeger:16686/trace/", "javascript:alert('{trace_id}')"):
        with pytest.raises(ConfigurationError, match="GATEWAY_CONSOLE_TRACE_URL"):
            console_router(Settings(var_dir=tmp_path / "var", console_trace_url=template))
    console_router(Settings(var_dir=tmp_path / "var", console_trace_url="http://jaeger:16686/trace/{trace_id}"))
