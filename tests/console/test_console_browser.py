"""The console in a real browser: Debian's Chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.support import (
    OPERATOR,
    VIEWER,
    dead_lettered_case,
    start_console_gateway,
    start_demo_console_gateway,
)
from tests.support.harness import RunningGateway, applicant
from tests.support.machine import apt_install

CHROMIUM = Path("/usr/bin/chromium")
# The README's screenshots are refreshed on request (GATEWAY_SCREENSHOTS=docs/console); otherwise they go to a
# temporary folder, so a test run leaves the checkout as it was.
SCREENSHOTS = Path(os.environ.get("GATEWAY_SCREENSHOTS") or tempfile.mkdtemp(prefix="gw-console-shots-"))
LAUNCH_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]


def ensure_chromium() -> None:
    """Debian's Chromium and a CJK font, installed once when the machine lacks them."""
    if CHROMIUM.exists() and shutil.which("fc-list") and "WenQuanYi" in subprocess.run(
            ["fc-list"], capture_output=True, text=True).stdout:
        return
    apt_install("chromium", "fonts-wqy-microhei")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def gw(redis_url: str, tmp_path: Path) -> Iterator[RunningGateway]:
    gateway = start_console_gateway(tmp_path, redis_url)
    yield gateway
    gateway.stop()


def signed_in_page(browser: Any, gw: RunningGateway, who: tuple[str, str], **context: Any) -> Any:
    page = browser.new_context(base_url=gw.base_url, locale="zh-CN", **context).new_page()
    page.goto("/console/")
    assert "/console/login" in page.url  # nobody is signed in yet
    page.get_by_label("账号").fill(who[0])
    page.get_by_label("密码").fill(who[1])
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/console/")
    return page


def test_an_operator_finds_a_dead_lettered_task_and_replays_it_until_it_completes(browser, gw):
    case_id = dead_lettered_case(gw)
    gw.faults("medical", error_rate=0.0)
    page = signed_in_page(browser, gw, OPERATOR, viewport={"width": 1280, "height": 900})
    page.get_by_test_id("dead-task").get_by_role("link", name=case_id).click()
    page.wait_for_url(f"**/console/cases/{case_id}")
    row = page.get_by_test_id("task-employee_medical_enrolment")
    assert "技术失败" in row.get_by_test_id("task-status").inner_text()
    # The confirmation opens on the page, from the keyboard.
    row.locator("summary", has_text="重放").focus()
    page.keyboard.press("Enter")
    row.get_by_test_id("confirm-replay").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**done=replayed")
    assert "已重放" in page.get_by_role("status").inner_text()
    deadline = time.monotonic() + 30
    while "已办结" not in page.get_by_test_id("task-employee_medical_enrolment").inner_text():
        assert time.monotonic() < deadline, "the replayed task did not complete"
        time.sleep(0.3)
        page.reload()
    assert page.get_by_test_id("case-status").inner_text().startswith("已办结")
    assert f"console:{OPERATOR[0]}" in page.get_by_test_id("timeline").inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "case-operator.png"), full_page=True)


def test_a_viewer_sees_no_replay_and_only_masked_fields_also_at_360_px_and_without_javascript(browser, gw):
    case_id = dead_lettered_case(gw)
    page = signed_in_page(browser, gw, VIEWER, viewport={"width": 360, "height": 780})
    page.goto(f"/console/cases/{case_id}")
    assert page.get_by_test_id("confirm-replay").count() == 0
    assert page.locator("summary", has_text="重放").count() == 0
    applicant = page.get_by_test_id("applicant").inner_text()
    assert "韦*例" in applicant and "139****5678" in applicant and "4501**********" in applicant
    assert "韦样例" not in page.content() and "13912345678" not in page.content()
    # Nothing is wider than the phone's screen but the tables, which scroll inside their own box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "case-viewer-360px.png"), full_page=True)
    # The health page refreshes its fragment by itself.
    page.goto("/console/health")
    first = page.get_by_test_id("checked-at").inner_text()
    deadline = time.monotonic() + 20
    while page.get_by_test_id("checked-at").inner_text() == first:
        assert time.monotonic() < deadline, "the health fragment was not refreshed"
        page.wait_for_timeout(250)
    # Reading needs no JavaScript.
    cookies = page.context.cookies()
    reader = browser.new_context(base_url=gw.base_url, java_script_enabled=False)
    reader.add_cookies(cookies)
    plain = reader.new_page()
    plain.goto(f"/console/cases/{case_id}")
    assert "技术失败" in plain.get_by_test_id("task-employee_medical_enrolment").inner_text()
    assert plain.get_by_test_id("timeline").locator("tbody tr").count() >= 3
    reader.close()


def test_the_one_form_applies_exclusions_and_prerequisites_as_matters_are_chosen(browser, gw):
    page = signed_in_page(browser, gw, VIEWER, viewport={"width": 1024, "height": 900})
    page.get_by_role("link", name="一表申请").click()
    page.wait_for_url("**/console/form/*")
    page.goto("/console/form/guangxi")
    resident, employee = page.get_by_test_id("matter-resident_pension_enrolment"), page.get_by_test_id(
        "matter-employee_pension_enrolment")
    assert employee.is_enabled()
    resident.check()
    assert employee.is_disabled()  # 城乡居民养老 greys out 灵活就业养老
    resident.uncheck()
    assert employee.is_enabled()
    # The declaration needs an enrolment beside it: flagged until one is chosen.
    page.get_by_test_id("matter-contribution_declaration").check()
    needs = page.locator("[data-matter=contribution_declaration] [data-role=needs-note]")
    assert "unmet" in (needs.get_attribute("class") or "")
    page.get_by_test_id("matter-employee_medical_enrolment").check()
    assert "unmet" not in (needs.get_attribute("class") or "")
    assert page.locator("[data-matter=employee_medical_enrolment] [data-section]").is_visible()
    assert page.locator("[data-matter=archive_transfer] [data-section]").is_hidden()
    resident.check()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "form-guangxi.png"), full_page=True)


@pytest.fixture
def demo_gw(redis_url: str, tmp_path: Path) -> Iterator[RunningGateway]:
    # The mock applicant does the H5 steps (pay, photo) half a second after each link, as under `gateway up`.
    gateway = start_demo_console_gateway(tmp_path, redis_url, applicant_delay="0.5")
    yield gateway
    gateway.stop()


def test_the_one_form_submits_three_matters_through_the_api_and_the_case_page_follows_them_to_completed(
        browser, demo_gw):
    gw = demo_gw
    page = signed_in_page(browser, gw, OPERATOR, viewport={"width": 1024, "height": 900})
    page.goto("/console/form/guangxi")
    person = applicant()
    for name in ("name", "id_number", "household_division_code"):
        page.locator(f'[name="applicant.{name}"]').fill(person[name])
    page.locator('[name="applicant.phone"]').fill("12345")  # not a phone number: the API says so
    matter = page.get_by_test_id
    matter("matter-employee_pension_enrolment").check()
    assert matter("matter-resident_pension_enrolment").is_disabled()  # 灵活就业养老 greys out 城乡居民养老
    matter("matter-employee_medical_enrolment").check()
    assert matter("matter-resident_medical_enrolment").is_disabled()
    page.locator('[name="employee_medical_enrolment.insured_place"]').select_option("450100")
    page.locator('[name="employee_medical_enrolment.insurance_types"][value="employee_basic_medical"]').check()
    page.locator('[name="employee_medical_enrolment.scheme"]').select_option("combined_accounts")
    matter("matter-social_security_card").check()
    page.locator('[name="social_security_card.bank"]').select_option("icbc")
    page.locator('[name="social_security_card.id_valid_long_term"]').check()
    page.locator('[name="social_security_card.id_valid_from"]').fill("2015-03-01")
    page.get_by_test_id("submit-form").click()
    # Refused by the API: its problems on the form in both languages, what was entered kept, nothing stored.
    errors = page.get_by_test_id("form-errors")
    errors.wait_for()
    assert "applicant.phone" in errors.inner_text() and "未能提交" in errors.inner_text()
    assert not list(gw.redis().scan_iter("gw:*:case"))
    assert page.locator('[name="applicant.name"]').input_value() == person["name"]
    assert matter("matter-social_security_card").is_checked()
    assert matter("matter-resident_pension_enrolment").is_disabled()
    page.locator('[name="applicant.phone"]').fill(person["phone"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "form-guangxi-filled.png"), full_page=True)
    page.get_by_test_id("submit-form").click()
    page.wait_for_url("**/console/cases/*")
    case_id = page.get_by_test_id("case-id").inner_text()
    assert len(list(gw.redis().scan_iter("gw:*:case"))) == 1
    tasks = page.locator("[data-testid^=task-]").filter(has=page.get_by_test_id("task-status"))
    assert tasks.count() == 3
    # The page follows the case by itself, in place: no reload, no navigation (a reload would drop this mark).
    page.evaluate("window.sameDocument = true")
    deadline = time.monotonic() + 60
    while not page.get_by_test_id("case-status").inner_text().startswith("已办结"):
        assert time.monotonic() < deadline, page.get_by_test_id("case-status").inner_text()
        page.wait_for_timeout(500)
    assert page.url.endswith(f"/console/cases/{case_id}") and page.evaluate("window.sameDocument === true")
    timeline = page.get_by_test_id("timeline").inner_text()
    assert "caller:demo-platform" in timeline
    page.screenshot(path=str(SCREENSHOTS / "case-from-form.png"), full_page=True)
def test_an_operator_signs_in_with_the_identity_service(browser, redis_url, tmp_path):
    """The OIDC flow as a browser runs it: the console's button, the provider's redirect back, the session page."""
    import httpx

    from mocks.oidc.app import create_app
    from mocks.serving import start_in_thread

    provider = start_in_thread(create_app())
    gateway = start_console_gateway(tmp_path, redis_url, console_oidc_issuer=provider.url,
                                    console_oidc_client_id="flex-gateway-console",
                                    console_oidc_client_secret="mock-console-secret", console_oidc_role_claim="roles")
    try:
        httpx.post(provider.url + "/_mock/user", json={"sub": "u-7007", "name": "农统一",
                                                       "claims": {"roles": ["operator"]}}).raise_for_status()
        page = browser.new_context(base_url=gateway.base_url, locale="zh-CN").new_page()
        page.goto("/console/health")
        page.get_by_test_id("oidc-sign-in").click()
        page.wait_for_url("**/console/health")
        assert "农统一 · 值班员 operator" in page.get_by_test_id("who").inner_text()
        page.close()
    finally:
        gateway.stop()
        provider.stop()
