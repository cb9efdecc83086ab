"""deploy/prometheus/ and deploy/grafana/ as files: the alert rules (with promtool where it is
installed), the dashboards' structure, and the metric names both use. That those names are
really exported is checked against running services in tests/e2e/test_observability.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
import yaml
from mutualaid.rulebook import load_rulebook
from observability import (DASHBOARDS, REPO, RULES, SYNTHETIC, dashboard_queries,
                           exported_names, metric_names, rule_queries)

pytestmark = pytest.mark.domain

PROMETHEUS = REPO / "deploy" / "prometheus"
#: What the issue asks the rules to cover.
REQUIRED_ALERTS = {"OutboxBacklogGrowing", "OutboxBacklogOld", "DeadLetterQueueNotEmpty",
                   "SharingRunFailed", "SharingRunSlow", "PlanBelowDissolutionThreshold",
                   "PaymentFailureRateHigh"}
BOARDS = {"overview.json": "mutualaid-overview", "billing-run.json": "mutualaid-billing-run",
          "case-pipeline.json": "mutualaid-case-pipeline"}


def promtool() -> str:
    """promtool from PATH or `make promtool` (.run/tools); skips the calling test without it:
    it comes from Debian's prometheus package, which not every machine has."""
    found = shutil.which("promtool") or next(
        (str(p) for p in [REPO / ".run" / "tools" / "promtool"] if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.skip("promtool is not installed (`make promtool` fetches it from Debian's "
                    "prometheus package); the rule files are only parsed here")
    return found


def rules() -> list[dict]:
    return [rule for path in sorted(RULES.glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


# --------------------------------------------------------------------------- promtool


def test_promtool_accepts_the_rules() -> None:
    tool = promtool()
    result = subprocess.run([tool, "check", "rules", *map(str, sorted(RULES.glob("*.yml")))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    """deploy/prometheus/tests/alerts_test.yml: each alert fires on its series and stays
    quiet on the others, with the labels and annotations operators will read."""
    tool = promtool()
    result = subprocess.run([tool, "test", "rules", "tests/alerts_test.yml"], cwd=PROMETHEUS,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Grafana shows a broken query only as an error on its panel: parse them all, as
    recording rules, with Prometheus's own parser."""
    tool = promtool()
    queries = dashboard_queries()
    rules_file = tmp_path / "dashboards.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)
    ]}]}))
    result = subprocess.run([tool, "check", "rules", str(rules_file)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout


def test_promtool_accepts_the_compose_prometheus_config() -> None:
    tool = promtool()
    result = subprocess.run([tool, "check", "config", "--syntax-only", "prometheus.yml"],
                            cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- rules


def test_the_rules_cover_what_operators_must_hear_about() -> None:
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    assert REQUIRED_ALERTS <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), name


def test_every_rule_has_a_unit_test() -> None:
    tests = yaml.safe_load((PROMETHEUS / "tests" / "alerts_test.yml").read_text())
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"]
              if case.get("exp_alerts")}
    assert tested == {r["alert"] for r in rules() if "alert" in r} - {
        "ConsumerHandlerErrors", "SharingRunTookLong"}


def test_the_dissolution_alert_uses_the_rulebooks_threshold() -> None:
    version = load_rulebook().version_on(date.today())
    thresholds = {p.dissolution_threshold_members for p in version.plans.values()}
    assert len(thresholds) == 1, "one threshold per plan: give the alert one rule per plan"
    (rule,) = [r for r in rules() if r.get("alert") == "PlanBelowDissolutionThreshold"]
    numbers = {int(n) for n in re.findall(r"\b\d{4,}\b", rule["expr"])}
    assert numbers == thresholds


# --------------------------------------------------------------------------- dashboards


def test_the_three_dashboards_are_well_formed() -> None:
    assert {p.name for p in DASHBOARDS.glob("*.json")} == set(BOARDS)
    for name, uid in BOARDS.items():
        board = json.loads((DASHBOARDS / name).read_text())
        assert board["uid"] == uid and board["title"] and "mutualaid" in board["tags"]
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (name, panel["title"])
            own = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                   for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not own & cells, f"{name}: {panel['title']} overlaps another panel"
            cells |= own
            if panel["type"] == "row":
                continue
            assert panel["targets"], (name, panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
            assert all(t["expr"].strip() for t in panel["targets"])


def test_dashboards_and_rules_name_only_platform_metrics() -> None:
    """A typo in a metric name reads as "no data" on a dashboard and as "never fires" in a
    rule; every name must be one of the platform's (checked live by the e2e test)."""
    used = set()
    for where, expr in dashboard_queries() + rule_queries():
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        for name in names - SYNTHETIC:
            assert name.startswith(("mutualaid_", "faststream_")), f"{where}: {name}"
        used |= names
    # the list: each has at least one panel or rule
    for needle in ("mutualaid_members", "mutualaid_claims_cases",
                   "mutualaid_publicity_objections_total", "mutualaid_jury_votes",
                   "mutualaid_billing_running_shards", "mutualaid_billing_last_period_duration_seconds",
                   "mutualaid_billing_last_period_debit_instructions",
                   "mutualaid_billing_last_period_member_debits_fen",
                   "mutualaid_billing_last_period_subsidy_fen", "mutualaid_billing_arrears_fen",
                   "mutualaid_outbox_pending", "mutualaid_outbox_oldest_age_seconds",
                   "mutualaid_dlq_total", "faststream_received_messages_total",
                   "faststream_received_processed_messages_duration_seconds_bucket"):
        assert needle in used, needle


def test_metric_names_are_read_out_of_promql() -> None:
    expr = ('histogram_quantile(0.95, sum by (service, le) (rate(mutualaid_batch_seconds_bucket'
            '{service="billing", role=~"worker|x"}[5m]))) / on (plan) group_left '
            'max(up{job="a"} offset 5m) > 1e3 and sum without (instance) (foo:bar) '
            'or vector(0)')
    assert metric_names(expr) == {"mutualaid_batch_seconds_bucket", "up", "foo:bar"}
    assert metric_names('max by (plan) (mutualaid_members{status="active"}) < 3300000') == {
        "mutualaid_members"}


def test_exported_names_follow_the_exposition_rules() -> None:
    text = ("# HELP a_total d\n# TYPE a_total counter\n# TYPE h histogram\n"
            "# TYPE g gauge\ng{x=\"1\"} 2.0\n# TYPE b_total counter\nb_total 0.0\n")
    assert exported_names(text) == {"a_total", "h_bucket", "h_sum", "h_count", "g", "b_total"}
