"""Redis over TLS with AUTH: a redis-server of the machine's own (Debian's, built with TLS) started for the test."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.exceptions

from gateway.settings import Settings
from gateway.store import keys
from gateway.store.connection import connect
from mocks.serving import free_port
from tests.support.harness import applicant, start_gateway
from tests.support.tls import TestCA

PASSWORD = "s3cret-" + uuid.uuid4().hex


@dataclass(frozen=True)
class TlsRedis:
    port: int
    ca: Path

    def url(self, password: str = PASSWORD) -> str:
        return f"rediss://:{password}@127.0.0.1:{self.port}/0"


@pytest.fixture
def tls_redis(tmp_path) -> Iterator[TlsRedis]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    ca = TestCA(tmp_path)
    server = ca.issue("redis", server=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key), "--tls-ca-cert-file", str(ca.cert),
         "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = redis.Redis.from_url(TlsRedis(port, ca.cert).url(), ssl_ca_certs=str(ca.cert))
    deadline = time.monotonic() + 15
    while True:
        try:
            probe.ping()
            break
        except (redis.exceptions.ConnectionError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("redis-server with TLS did not start") from None
            time.sleep(0.05)
    probe.close()
    yield TlsRedis(port, ca.cert)
    process.terminate()
    process.wait(10)


async def test_connect_over_tls_with_the_ca_setting_and_password(tls_redis):
    client = connect(tls_redis.url(), Settings(redis_ca_file=tls_redis.ca))
    assert await client.ping() and await client.set("k", "v") and await client.get("k") == "v"
    await client.aclose()
    wrong = connect(tls_redis.url("wrong-password"), Settings(redis_ca_file=tls_redis.ca))
    with pytest.raises(redis.exceptions.AuthenticationError):
        await wrong.ping()
    await wrong.aclose()
    unverified = connect(tls_redis.url(), Settings())  # the system CAs do not know the server's certificate
    with pytest.raises(redis.exceptions.ConnectionError):
        await unverified.ping()
    await unverified.aclose()


def test_a_whole_case_over_rediss_with_auth(tmp_path, tls_redis):
    # The harness's own clients take the CA from the URL; the gateway takes it from GATEWAY_REDIS_CA_FILE.
    url = tls_redis.url() + f"?ssl_ca_certs={tls_redis.ca}"
    gw = start_gateway(tmp_path, url, mock_names=("medical", "e_license", "sms"), redis_ca_file=tls_redis.ca)
    try:
        section = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
        response = gw.submit({"profile": "guangxi", "channel": "online", "applicant": applicant(),
                              "delivery": "online", "matters": ["employee_medical_enrolment"],
                              "sections": {"employee_medical_enrolment": section}})
        assert response.status_code == 202, response.text
        case = gw.wait_terminal(response.json()["id"])
        assert case["tasks"][0]["status"] == "completed"
        assert gw.redis().exists(keys.case(case["id"]))  # stored in the TLS Redis
    finally:
        gw.stop()
