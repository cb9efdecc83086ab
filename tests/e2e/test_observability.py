"""Every metric the Grafana dashboards and the Prometheus alert rules name is exported by a
running service: the five services as processes on the real broker and Postgres, each
/metrics scraped once they report ready."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from devstack.platform import SERVICES, Platform
from observability import SYNTHETIC, dashboard_queries, exported_names, metric_names, rule_queries

from testkit import running_platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Platform]:
    with running_platform(kafka_bootstrap, tmp_path_factory.mktemp("service-logs")) as p:
        yield p


def scrape(platform: Platform, service: str) -> str:
    port = platform.ports[service]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.headers["content-type"].startswith("text/plain")
        return r.read().decode()


def scrape_when(platform: Platform, service: str, sample: str, timeout: float = 15.0) -> str:
    """/metrics once it has a sample line starting with ``sample`` (the business gauges are
    set by a background refresh shortly after start-up)."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(platform, service)
        if any(line.startswith(sample) for line in text.splitlines()):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"{service} /metrics has no {sample} sample after {timeout:.0f}s")
        time.sleep(0.3)


def test_every_metric_of_the_dashboards_and_rules_is_exported(platform: Platform) -> None:
    exported: dict[str, set[str]] = {s: exported_names(scrape(platform, s)) for s in SERVICES}
    everywhere = set().union(*exported.values())
    missing = {}
    for where, expr in dashboard_queries() + rule_queries():
        for name in metric_names(expr) - SYNTHETIC - everywhere:
            missing.setdefault(name, []).append(where)
    assert not missing, f"named but exported by no service: {missing}"
    # what every service exports, whatever it does
    for service, names in exported.items():
        for name in ("mutualaid_messages_total", "mutualaid_dlq_total",
                     "mutualaid_outbox_pending", "mutualaid_outbox_oldest_age_seconds",
                     "mutualaid_batch_seconds_bucket", "faststream_received_messages_total"):
            assert name in names, (service, name)


def test_business_gauges_have_values_after_start_up(platform: Platform) -> None:
    scrape_when(platform, "membership", 'mutualaid_members{plan="critical_illness"')
    scrape_when(platform, "jury", 'mutualaid_jury_votes{vote="approve"} 0.0')
    scrape_when(platform, "billing", 'mutualaid_billing_periods{status="failed"} 0.0')
    for service in SERVICES:
        scrape_when(platform, service, "mutualaid_outbox_oldest_age_seconds 0.0")
