"""One case through a whole gateway with tracing on, in a process of its own (a tracer provider is set once per
process): `python -m tests.support.traced_case REDIS_URL FOLDER`. Spans go to stdout (OTEL_TRACES_EXPORTER=console),
logs (the mocks' included) to stderr, and the last stdout line is `RESULT {json}`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from gateway.observability.logging import configure_logging
from tests.support.harness import applicant, start_gateway

ARCHIVE_SECTION = {"archive_from": "广西大学", "archive_to": "南宁市人才服务中心", "person_category": "graduate",
                   "is_graduate": True, "transfer_reason": "graduation",
                   "education": [{"degree": "bachelor", "degree_nature": "full_time", "graduation_date": "2025-06-30",
                                  "school": "广西大学"}]}


def main(redis_url: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    configure_logging("INFO", json_output=True)  # the gateway's JSON lines on stdout, between the spans
    logging.getLogger().handlers[0].setStream(sys.stderr)  # the mocks' (stdlib) lines on stderr
    logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(name)s %(message)s"))
    gw = start_gateway(folder, redis_url, mock_names=("hrss", "sms"))
    try:
        person = applicant()
        body = {"profile": "guangxi", "channel": "online", "applicant": person, "delivery": "online",
                "matters": ["archive_transfer"], "sections": {"archive_transfer": ARCHIVE_SECTION}}
        response = gw.submit(body)
        if response.status_code != 202:
            raise SystemExit(f"case refused: {response.status_code} {response.text}")
        case_id = response.json()["id"]
        case = gw.wait_terminal(case_id)
        gw.wait_events(lambda es: any(e["case_id"] == case_id and e.get("status") == case["status"] for e in es))
    finally:
        gw.stop()
    print("RESULT " + json.dumps({"case_id": case_id, "status": case["status"], "applicant": person}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
