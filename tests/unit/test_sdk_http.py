"""The SDK's shared HTTP helpers alone: signed-callback verification and the JSON post with its fault mapping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request, Response

from gateway.sdk import (
    AdapterContext,
    AdapterSettings,
    DepartmentTimeout,
    DepartmentUnavailable,
    InvalidCallback,
    hmac_hex,
    post_json,
    verify_signed_callback,
)
from mocks.serving import RunningServer, free_port, start_in_thread

SECRET = "unit-secret"
BODY = b'{"requestId": "GW1"}'
TS, SIG = "X-Unit-Timestamp", "X-Unit-Signature"


RID = "X-Request-Id"


def signed(timestamp: str, body: bytes = BODY, secret: str = SECRET, *, adapter: str = "unit",
           request_id: str = "GW1") -> dict[str, str]:
    """The contract written out: HMAC over adapter name, request id, timestamp and body, one per line."""
    message = adapter.encode() + b"\n" + request_id.encode() + b"\n" + timestamp.encode() + b"\n" + body
    return {TS: timestamp, RID: request_id, SIG: hmac_hex(secret, message)}


def verify(headers: dict[str, str], body: bytes = BODY, **kwargs: float) -> None:
    verify_signed_callback(headers, body, adapter="unit", request_id="GW1", secret=SECRET, timestamp_header=TS,
                           signature_header=SIG, department="unit", **kwargs)


def now() -> str:
    return str(int(time.time()))


# ---- verify_signed_callback

def test_a_genuine_callback_passes_whatever_the_header_case():
    verify(signed(now()))
    verify({key.lower(): value for key, value in signed(now()).items()})
    verify({key.upper(): value.upper() for key, value in signed(now()).items()})


@pytest.mark.parametrize("drop", [TS, SIG, RID])
def test_a_missing_header_is_refused_by_its_name(drop):
    headers = {key: value for key, value in signed(now()).items() if key != drop}
    with pytest.raises(InvalidCallback, match=f"unit callback without {TS} / {SIG} / {RID}"):
        verify(headers)
    with pytest.raises(InvalidCallback, match="without"):
        verify({**headers, drop: ""})


def test_forgeries_are_refused():
    timestamp = now()
    for headers, body in [
        (signed(timestamp, secret="someone-else"), BODY),
        (signed(timestamp), BODY + b" "),  # body altered after signing
        ({**signed(timestamp), TS: str(int(timestamp) + 1)}, BODY),  # timestamp altered after signing
        ({TS: timestamp, RID: "GW1", SIG: "0" * 64}, BODY),
        ({**signed(timestamp), SIG: "é" * 64}, BODY),  # not even ASCII: refused, not an exception
        (signed(timestamp, adapter="other"), BODY),  # a signature made for another adapter
        (signed(timestamp, secret=""), BODY),
    ]:
        with pytest.raises(InvalidCallback, match="unit callback signature does not verify"):
            verify(headers, body)


@pytest.mark.parametrize("timestamp", ["yesterday", "nan", "inf", "-inf", "0x10"])
def test_a_signed_timestamp_that_is_not_a_number_is_refused(timestamp):
    with pytest.raises(InvalidCallback, match="unit callback timestamp is not a number"):
        verify(signed(timestamp))


@pytest.mark.parametrize("offset", [-301, 301, -3600, 86400])
def test_a_stale_or_future_timestamp_is_refused_even_when_signed(offset):
    with pytest.raises(InvalidCallback, match=r"unit callback timestamp is -?\d+ s off \(limit 300 s\)"):
        verify(signed(str(int(time.time()) - offset)))


def test_the_age_limit_is_the_adapters_to_set():
    timestamp = str(int(time.time()) - 200)
    verify(signed(timestamp))
    with pytest.raises(InvalidCallback, match="limit 60 s"):
        verify(signed(timestamp), max_age_s=60)
    verify(signed(str(int(time.time()) - 3000)), max_age_s=3600)
    verify(signed(f"{time.time():.3f}"))  # fractional seconds are a number too


def test_a_callback_signed_for_another_request_is_refused():
    with pytest.raises(InvalidCallback, match="X-Request-Id is not the request id of its body"):
        verify(signed(now(), request_id="GW2"))  # genuine, but for another task
    with pytest.raises(InvalidCallback, match="X-Request-Id is not the request id of its body"):
        verify({**signed(now()), RID: "GW2"})


def test_an_unset_secret_verifies_nothing():
    with pytest.raises(InvalidCallback, match="signature does not verify"):
        verify_signed_callback(signed(now(), secret=""), BODY, adapter="unit", request_id="GW1", secret="",
                               timestamp_header=TS, signature_header=SIG, department="unit")


# ---- post_json

def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/ok")
    async def ok(request: Request) -> dict[str, object]:
        return {"echo": await request.json(), "header": request.headers.get("x-extra")}

    @app.post("/refused")
    async def refused() -> Response:
        return Response(status_code=422, content=b'{"code": "R1"}', media_type="application/json")

    @app.post("/down")
    async def down() -> Response:
        return Response(status_code=503, content=b"maintenance")

    @app.post("/hang")
    async def hang() -> dict[str, str]:
        await asyncio.sleep(5)
        return {"late": "yes"}

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    running = start_in_thread(_app())
    yield running
    running.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # The shared client would wait a minute: post_json must apply the settings' time-out itself.
    async with httpx.AsyncClient(timeout=60.0) as client:
        yield client


def _ctx(http: httpx.AsyncClient, base_url: str, timeout_s: float = 5.0) -> AdapterContext:
    return AdapterContext(name="unit", settings=AdapterSettings(base_url=base_url + "/", timeout_s=timeout_s),
                          http=http, logger=structlog.get_logger("unit"))


async def test_a_200_is_returned_with_the_json_and_headers_sent(server, http):
    response = await post_json(_ctx(http, server.url), "/ok", {"a": [1, "二"]}, what="unit ok",
                               headers={"X-Extra": "yes"})
    assert response.status_code == 200
    assert response.json() == {"echo": {"a": [1, "二"]}, "header": "yes"}


async def test_a_4xx_is_the_adapters_to_read(server, http):
    response = await post_json(_ctx(http, server.url), "/refused", {}, what="unit refused")
    assert response.status_code == 422 and response.json() == {"code": "R1"}


async def test_a_5xx_is_department_unavailable(server, http):
    with pytest.raises(DepartmentUnavailable, match="unit down answered HTTP 503"):
        await post_json(_ctx(http, server.url), "/down", {}, what="unit down")


async def test_a_refused_connection_is_department_unavailable(http):
    closed = f"http://127.0.0.1:{free_port()}"  # bound then released: nothing listens there
    with pytest.raises(DepartmentUnavailable, match="unit closed unreachable: ConnectError"):
        await post_json(_ctx(http, closed), "/ok", {}, what="unit closed")


async def test_the_settings_time_out_is_department_timeout(server, http):
    started = time.monotonic()
    with pytest.raises(DepartmentTimeout, match="unit hang timed out"):
        await post_json(_ctx(http, server.url, timeout_s=0.3), "/hang", {}, what="unit hang")
    assert time.monotonic() - started < 2
