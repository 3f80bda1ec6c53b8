"""The platform's own smoke client (../shared/contract/smoke.py, written independently of this code) against
`gateway up` started from this checkout. Collected only where ../shared/contract is present (tests/conftest.py)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO.parent / "shared" / "contract" / "smoke.py"


def test_platform_contract_smoke_passes(tmp_path):
    env = dict(os.environ, GW_GATEWAY=str(Path(sys.executable).parent / "gateway"), GW_MAIN=str(REPO),
               GATEWAY_VAR_DIR=str(tmp_path / "var"))
    result = subprocess.run([sys.executable, str(SMOKE)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "contract smoke passed" in result.stdout
