"""A service refuses to start, with a message a human can act on, when its configuration or
rulebook is wrong; it never half-starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def start(service: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", service], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


def test_a_bad_rulebook_stops_the_service_at_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "rulebook.yaml"
    bad.write_text("versions:\n  - version: v1\n    effective_from: 2020-01-01\n"
                   "    plans: {critical_illness: {management_fee_bps: 12000}}\n")
    result = start("billing", BILLING_RULEBOOK_PATH=str(bad),
                   BILLING_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2
    assert "billing: refusing to start" in result.stderr
    assert str(bad) in result.stderr and "management_fee_bps" in result.stderr


def test_invalid_settings_stop_the_service_before_it_connects() -> None:
    result = start("claims", CLAIMS_KAFKA_SESSION_TIMEOUT_MS="2000",
                   CLAIMS_KAFKA_HEARTBEAT_INTERVAL_MS="1500")
    assert result.returncode == 2
    assert "heartbeat" in result.stderr


def test_the_service_prefix_wins_over_the_shared_setting() -> None:
    from membership.settings import MembershipSettings

    os.environ["HTTP_PORT"] = "9001"
    os.environ["MEMBERSHIP_HTTP_PORT"] = "9002"
    try:
        assert MembershipSettings().http_port == 9002
        del os.environ["MEMBERSHIP_HTTP_PORT"]
        assert MembershipSettings().http_port == 9001
    finally:
        os.environ.pop("HTTP_PORT", None)
        os.environ.pop("MEMBERSHIP_HTTP_PORT", None)
