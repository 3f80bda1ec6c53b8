"""Console sign-in with the identity service: the mock OIDC provider on loopback, the whole flow over real HTTP."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gateway.console.operators import hash_password
from mocks.oidc.app import create_app
from mocks.serving import start_in_thread
from tests.console.support import OPERATOR, csrf_of, dead_lettered_case, sign_in, start_console_gateway
from tests.support.harness import start_gateway

CLIENT = ("flex-gateway-console", "mock-console-secret")


@pytest.fixture
def provider():
    server = start_in_thread(create_app())
    yield server
    server.stop()


@pytest.fixture
def gw(redis_url, tmp_path, provider):
    gateway = start_console_gateway(tmp_path, redis_url, console_oidc_issuer=provider.url,
                                    console_oidc_client_id=CLIENT[0], console_oidc_client_secret=CLIENT[1],
                                    console_oidc_role_claim="roles", console_oidc_roles={"gw-ops": "operator"})
    yield gateway
    gateway.stop()


def as_person(provider, sub: str, **claims) -> None:
    httpx.post(provider.url + "/_mock/user", json={"sub": sub, "name": "覃统一", "claims": claims}).raise_for_status()


def tamper(provider, **wrong) -> None:
    httpx.post(provider.url + "/_mock/tamper", json=wrong).raise_for_status()


def start(client: httpx.Client) -> str:
    """The provider's authorization URL the console sends the browser to (its flow cookie now in `client`)."""
    answer = client.get("/console/oidc/start", params={"next": "/console/health"})
    assert answer.status_code == 303
    return answer.headers["location"]


def at_provider(client: httpx.Client, authorize_url: str) -> str:
    """The person signs in at the provider: the redirect back to the console's callback."""
    answer = client.get(authorize_url)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def sign_in_with_provider(gw) -> httpx.Response:
    client = httpx.Client(base_url=gw.base_url, follow_redirects=True)
    return client.get("/console/oidc/start", params={"next": "/console/health"})


def test_the_login_page_offers_the_identity_service_and_passwords_still_work(gw):
    with httpx.Client(base_url=gw.base_url) as client:
        assert 'data-testid="oidc-sign-in"' in client.get("/console/login").text
    assert sign_in(gw, OPERATOR).get("/console/").status_code == 200


def test_a_successful_sign_in_gives_a_session_with_the_mapped_role(gw, provider):
    as_person(provider, "u-1001", roles=["staff", "gw-ops"])
    client = httpx.Client(base_url=gw.base_url)
    authorize = start(client)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [CLIENT[0]]
    assert query["redirect_uri"] == [f"{gw.base_url}/console/oidc/callback"]
    done = client.get(authorize, follow_redirects=True)  # provider -> callback, for real over HTTP
    assert done.status_code == 200 and 'url=/console/health' in done.text
    assert "gw_console_oidc" not in client.cookies  # the flow cookie is spent
    home = client.get("/console/")
    assert home.status_code == 200 and "覃统一" in home.text and "值班员 operator" in home.text
    # The role acts: the operator from the identity service replays a dead-lettered task, audited under its id.
    case_id = dead_lettered_case(gw)
    gw.faults("medical", error_rate=0.0)
    page = client.get(f"/console/cases/{case_id}")
    replay = client.post(f"/console/cases/{case_id}/replay", data={"csrf": csrf_of(page.text),
                                                                  "matter": "employee_medical_enrolment"},
                         follow_redirects=True)
    assert replay.status_code == 200 and "console:oidc:u-1001" in replay.text
    assert httpx.get(provider.url + "/_mock/stats").json() == {"authorized": 1, "tokens": 1}


def test_a_viewer_role_reads_but_cannot_act(gw, provider):
    as_person(provider, "u-2002", roles="viewer")
    response = sign_in_with_provider(gw)
    assert response.status_code == 200
    client = httpx.Client(base_url=gw.base_url, cookies=response.cookies)
    home = client.get("/console/")
    assert "查看员 viewer" in home.text
    refused = client.post("/console/cases/x/replay", data={"csrf": csrf_of(home.text), "matter": "m"})
    assert refused.status_code == 403


def test_an_unknown_role_is_refused(gw, provider):
    as_person(provider, "u-3003", roles=["admin", "auditor"])
    answer = sign_in_with_provider(gw)
    assert answer.status_code == 403 and "没有控制台角色" in answer.text and "gw_console" not in answer.cookies
    as_person(provider, "u-3004")  # no role claim at all
    assert sign_in_with_provider(gw).status_code == 403


def test_a_state_not_this_browsers_is_refused(gw, provider):
    as_person(provider, "u-1001", roles="operator")
    client = httpx.Client(base_url=gw.base_url)
    callback = at_provider(client, start(client))
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = client.get(f"{parts.path}?{urlencode({**query, 'state': 'attacker-state'})}")
    assert forged.status_code == 403 and "登录状态不符" in forged.text and "gw_console" not in forged.cookies
    # The genuine answer in another browser (no flow cookie) is refused too: the state is bound to the browser.
    other = httpx.Client(base_url=gw.base_url)
    assert other.get(callback).status_code == 403 and "gw_console" not in other.cookies


@pytest.mark.parametrize(("wrong", "message"), [
    ({"nonce": "another-sign-in"}, "nonce"),
    ({"aud": "another-client"}, "audience"),
    ({"exp_s": -300}, "expired"),
    ({"iss": "https://impostor.example"}, "invalid"),
    ({"kid": "unknown-key"}, "no key"),
])
def test_an_id_token_that_is_not_right_is_refused(gw, provider, wrong, message):
    as_person(provider, "u-1001", roles="operator")
    tamper(provider, **wrong)
    answer = sign_in_with_provider(gw)
    assert answer.status_code == 403 and message in answer.text and "gw_console" not in answer.cookies
    assert httpx.get(provider.url + "/_mock/stats").json()["tokens"] == 1  # refused after a real token exchange


def test_the_role_can_come_from_the_operators_file_by_subject(redis_url, tmp_path, provider):
    operators = tmp_path / "operators.json"
    operators.write_text(json.dumps([
        {"id": "op-wei", "name": "韦值班", "role": "operator", "password_hash": hash_password("pw-operator-1")},
        {"id": "lan-sso", "name": "蓝统一", "role": "viewer", "oidc_subject": "u-5005"},  # no password: SSO only
    ], ensure_ascii=False))
    gw = start_gateway(tmp_path, redis_url, operators_file=operators, console_oidc_issuer=provider.url,
                       console_oidc_client_id=CLIENT[0], console_oidc_client_secret=CLIENT[1])
    try:
        as_person(provider, "u-5005", roles="operator")  # a claim is ignored here: the file decides
        response = sign_in_with_provider(gw)
        client = httpx.Client(base_url=gw.base_url, cookies=response.cookies)
        assert "蓝统一 · 查看员 viewer" in client.get("/console/").text
        as_person(provider, "u-9999")
        assert sign_in_with_provider(gw).status_code == 403  # no entry names this subject
    finally:
        gw.stop()


def test_a_session_cookie_is_no_sign_in_flow_and_a_flow_cookie_no_session():
    from gateway.console.oidc import Flow
    from gateway.console.sessions import SessionSigner

    signer = SessionSigner(b"k" * 32, ttl_s=60)
    session_cookie, _ = signer.issue("op1", role="operator", name="x")
    flow = Flow.start("/console/")
    flow_cookie = signer.sign(flow.data())
    assert Flow.of(signer.verified(session_cookie)) is None and signer.open(flow_cookie) is None
    assert Flow.of(signer.verified(flow_cookie)) == flow


def test_an_operator_with_only_an_oidc_subject_cannot_sign_in_with_a_password(tmp_path):
    from gateway.console.operators import authenticate, load_operators

    path = tmp_path / "operators.json"
    path.write_text(json.dumps([{"id": "lan-sso", "role": "viewer", "oidc_subject": "u-5005"}]))
    operators = load_operators(path)
    assert operators["lan-sso"].oidc_subject == "u-5005"
    assert authenticate(operators, "lan-sso", "") is None and authenticate(operators, "lan-sso", "anything") is None
    path.write_text(json.dumps([{"id": "nobody", "role": "viewer"}]))  # neither a password nor a subject
    with pytest.raises(ValueError, match="password_hash"):
        load_operators(path)
