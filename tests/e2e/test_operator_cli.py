"""The operator CLI against the real platform: the five services as processes on a private
broker and database, a small demo month (members join, claims are approved, 2020-06-14 is
shared), then ``python -m mutualaid.cli ...`` as subprocesses, as an operator would run it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from devstack.platform import Platform
from devstack.scenario import MonthConfig, MonthResult, members_for, run_month, wait_handled

from testkit import running_platform

from mutualaid.client import PlatformClient
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.envelope import encode, envelope

pytestmark = pytest.mark.e2e

MONTH = MonthConfig(members=40, claims=2, tag="cli", timeout=120)
LATE_CASE = "cli-case-late"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Platform]:
    # Few shards per period: a small roll, and the runs finish sooner.
    with running_platform(kafka_bootstrap, tmp_path_factory.mktemp("cli-logs"),
                          extra_env={"SHARD_TASKS": "8"}) as p:
        yield p


@pytest.fixture(scope="module")
async def client(platform: Platform) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(platform.bootstrap, source="tests/cli") as c:
        yield c


@pytest.fixture(scope="module")
async def month(client: PlatformClient, platform: Platform) -> MonthResult:
    result = await run_month(client, MONTH, platform.ports, say=lambda _: None)
    # One more approved case, for the next sharing day that the CLI runs.
    payer = next(p for p in members_for(MONTH)[0] if p.plan == "critical_illness")
    late = CaseApproved(case_id=LATE_CASE, member_id=payer.member_id,
                        payer_id=payer.member_id, plan="critical_illness",
                        benefit_fen=10_000_000, rule_version="2020-01-01",
                        diagnosed_on=date(2020, 6, 1), approved_on=date(2020, 6, 20))
    ce = envelope(late, source="tests/cli", correlationid=None)
    await client.send_raw(late.topic(), encode(ce), key=late.case_id.encode())
    await wait_handled(platform.ports["billing"], "claims.CaseApproved",
                       len(result.approved_cases) + 1, service="billing", timeout=60,
                       client=client)
    return result


async def cli(platform: Platform, *args: str, stdin: bytes | None = None,
              timeout: float = 60) -> Run:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "BILLING_DATABASE_URL")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mutualaid.cli", "--bootstrap", platform.bootstrap,
        "--database-url", platform.database_url, *args, env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    run = Run(proc.returncode or 0, out.decode(), err.decode())
    assert "Traceback" not in run.err, run.err
    return run


async def test_send_validates_sends_and_prints_the_outcome(platform: Platform,
                                                           month: MonthResult) -> None:
    payers, _ = members_for(MonthConfig(members=2, tag="cli-send", seed=11))
    data = payers[0].model_dump_json()
    joined, again, invalid = await asyncio.gather(
        cli(platform, "send", "membership", "JoinPlan", "--data", "-", stdin=data.encode()),
        cli(platform, "--json", "send", "membership", "JoinPlan", "--data", data),
        cli(platform, "send", "membership", "JoinPlan", "--data", '{"member_id": "x"}'))
    # The two joins race: one is admitted, the other refused MEMBER_ID_TAKEN.
    outcomes = {joined.code, again.code}
    assert outcomes == {0, 1}, (joined, again)
    if joined.code == 0:
        assert "membership.MemberJoined" in joined.out
        assert again.json["accepted"] is False
        (rejection,) = again.json["outcome"]
    else:
        assert "MEMBER_ID_TAKEN" in joined.out and "REJECTED" in joined.out
        assert again.json["accepted"] is True
        rejection = None
    if rejection is not None:
        assert rejection["type"] == "membership.CommandRejected"
        assert rejection["data"]["reason_code"] == "MEMBER_ID_TAKEN"
        assert rejection["correlationid"] == again.json["command"]["id"]
    assert invalid.code == 2 and "payer_id: Field required" in invalid.err


async def test_notice_status_and_reconcile_of_the_month(platform: Platform,
                                                        month: MonthResult) -> None:
    notice, status, reconcile, as_json = await asyncio.gather(
        cli(platform, "notice", "2020-06-14"),
        cli(platform, "billing", "status", "2020-06-14"),
        cli(platform, "billing", "reconcile", "2020-06-14"),
        cli(platform, "--json", "billing", "reconcile", "2020-06-14"))
    assert notice.code == 0 and "HOLDS" in notice.out
    for plan in ("critical_illness", "elderly_cancer", "chronic_cancer"):
        assert plan in notice.out and f"2020-06-14/{plan}" in status.out
    assert status.code == 0 and "completed" in status.out
    assert reconcile.code == 0, reconcile.out + reconcile.err
    assert "holds for every plan" in reconcile.out
    assert as_json.json["holds"] is True and len(as_json.json["periods"]) == 3
    members = sum(e.data["members_sharing"] for e in month.announcements)
    stored = sum(c["actual"] for p in as_json.json["periods"] for c in p["checks"]
                 if c["check"] == "charges stored = members sharing")
    assert stored == members == MONTH.members


async def test_billing_run_follows_a_sharing_day_to_its_notice(platform: Platform,
                                                               month: MonthResult) -> None:
    dry = await cli(platform, "--json", "billing", "dry-run", "2020-06-28",
                    "--plan", "critical_illness")
    assert dry.code == 0, dry.err
    (preview,) = dry.json["announced"]
    assert preview["dry_run"] is True and preview["case_ids"] == [LATE_CASE]

    run = await cli(platform, "billing", "run", "2020-06-28")
    assert run.code == 0, run.out + run.err
    assert "SHARING NOTICE" in run.out and "HOLDS" in run.out
    assert "100,000.00" in run.out  # the late case's benefit, in CNY
    assert "shards" in run.err and "100%" in run.err  # the progress bar, on stderr
    reconcile, again = await asyncio.gather(
        cli(platform, "billing", "reconcile", "2020-06-28"),
        cli(platform, "billing", "run", "2020-06-28"))
    assert reconcile.code == 0, reconcile.out
    assert again.code == 1 and "ALREADY_APPLIED" in again.out


async def test_case_prints_every_decision(platform: Platform, month: MonthResult) -> None:
    case_id = month.approved_cases[0]
    history, as_json, unknown = await asyncio.gather(
        cli(platform, "case", case_id), cli(platform, "--json", "case", case_id),
        cli(platform, "case", "no-such-case"))
    assert history.code == 0, history.err
    for step in ("claims.ClaimFiled", "claims.ClaimInvestigated", "claims.ClaimReviewed",
                 "claims.CaseApproved", "reviewer-02"):
        assert step in history.out, step
    assert as_json.json["state"] == "approved"
    reviews = [e for e in as_json.json["entries"] if e["event_type"] == "claims.ClaimReviewed"]
    assert [e["detail"]["stage"] for e in reviews] == ["review", "final"]
    assert unknown.code == 1 and "no case no-such-case" in unknown.err


async def test_dlq_list_and_replay(platform: Platform, client: PlatformClient,
                                   month: MonthResult) -> None:
    await client.send_raw("publicity.commands", b"{not a cloud event", key=b"cli-bad")
    await client.wait_until(lambda: any(d.topic == "publicity.dlq"
                                        for d in client.dead_letters), timeout=30,
                            what="the dead letter")
    listed, text = await asyncio.gather(cli(platform, "--json", "dlq", "list", "publicity"),
                                        cli(platform, "dlq", "list", "publicity"))
    (letter,) = listed.json["dead_letters"]
    assert letter["reason_code"] == "MALFORMED" and letter["source_topic"] == \
        "publicity.commands"
    assert letter["value"] == "{not a cloud event" and letter["key"] == "cli-bad"
    assert letter["ref"] in text.out and "MALFORMED" in text.out

    replay, missing = await asyncio.gather(
        cli(platform, "dlq", "replay", "publicity", "--offset", letter["ref"]),
        cli(platform, "dlq", "replay", "publicity", "--offset", "0:9999"))
    assert replay.code == 0 and f"replayed publicity.dlq {letter['ref']}" in replay.out
    # Still malformed: it comes back as a new dead letter, copied from the replayed record.
    await client.wait_until(lambda: sum(d.topic == "publicity.dlq"
                                        for d in client.dead_letters) >= 2, timeout=30,
                            what="the replayed message's dead letter")
    second = [d for d in client.dead_letters if d.topic == "publicity.dlq"][1]
    assert second.value == b"{not a cloud event"
    assert second.headers["dlq-source-offset"] != str(letter["source_offset"])
    assert missing.code == 2 and "no dead letter at 0:9999" in missing.err


async def test_tail_prints_events_and_stops_cleanly(platform: Platform,
                                                    month: MonthResult) -> None:
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mutualaid.cli", "--bootstrap", platform.bootstrap, "tail",
        "claims.events", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    joined, quiet, unknown = await asyncio.gather(
        cli(platform, "--json", "tail", "membership.events", "--from-beginning", "--type",
            "MemberJoined", "--limit", "3"),
        cli(platform, "tail", "billing.events", "--timeout", "1.5"),
        cli(platform, "tail", "no.such.topic", "--timeout", "1"))
    lines = [json.loads(line) for line in joined.out.splitlines()]
    assert len(lines) == 3 and {e["event"]["type"] for e in lines} == {
        "membership.MemberJoined"}
    assert quiet.code == 0 and quiet.out == ""  # nothing new, and nothing old either
    assert unknown.code == 2 and "no topic 'no.such.topic'" in unknown.err

    assert follower.stderr is not None
    assert b"tailing claims.events" in await asyncio.wait_for(follower.stderr.readline(), 30)
    follower.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = await asyncio.wait_for(follower.communicate(), 30)
    assert follower.returncode == 0 and b"Traceback" not in err
