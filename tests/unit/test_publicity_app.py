"""The publicity service is wired with its scheduler, its resources and its business metrics
(building an app connects to nothing)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from prometheus_client import generate_latest

import publicity.scheduler as scheduler
from publicity.app import build_app, definition
from publicity.resources import PublicityResources
from publicity.scheduler import china_today
from publicity.settings import PublicitySettings

pytestmark = pytest.mark.domain


def test_the_app_exposes_the_business_metrics_and_shares_them_with_the_handlers():
    rt = build_app(PublicitySettings()).runtime
    assert isinstance(rt.resources, PublicityResources)
    assert rt.resources.metrics is rt.service_metrics
    rt.service_metrics.objections.labels("filed").inc()
    text = generate_latest(rt.metrics.registry).decode()
    for name in ("mutualaid_publicity_objections_total{outcome=\"filed\"} 1.0",
                 "mutualaid_publicity_cases_published_total",
                 "mutualaid_publicity_rounds_total", "mutualaid_publicity_cases_decided_total",
                 "mutualaid_publicity_sharing_notices_total",
                 "mutualaid_publicity_scheduled_commands_total"):
        assert name in text, name


def test_each_app_counts_for_itself():
    first, second = build_app(PublicitySettings()).runtime, build_app(PublicitySettings()).runtime
    first.service_metrics.cases_published.inc(3)
    assert second.service_metrics.cases_published._value.get() == 0


def test_the_definition_runs_the_scheduler_in_the_background():
    (task,) = definition(today=lambda: date(2024, 5, 7)).background
    assert task.__name__ == "publicity_scheduler"


def test_today_is_the_date_in_china_standard_time(monkeypatch: pytest.MonkeyPatch):
    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):  # 2024-05-06 16:30 UTC is already the 7th in Beijing
            return datetime(2024, 5, 6, 16, 30, tzinfo=timezone.utc).astimezone(tz)

    monkeypatch.setattr(scheduler, "datetime", Clock)
    assert china_today() == date(2024, 5, 7)
