"""The five services as separate processes on the real broker and Postgres, driven only
through Kafka topics, as another platform service would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import date

import orjson
import pytest
from devstack.platform import SERVICES, Platform
from devstack.scenario import MonthConfig, MonthResult, members_for, run_month

from testkit import running_platform

from mutualaid.client import PlatformClient, command_event
from mutualaid.contracts.billing import RunSharingPeriod
from mutualaid.contracts.claims import FileClaim

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Platform]:
    with running_platform(kafka_bootstrap, tmp_path_factory.mktemp("service-logs")) as p:
        yield p


@pytest.fixture(scope="module")
async def client(platform: Platform) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(platform.bootstrap, source="tests/e2e") as c:
        yield c


@pytest.fixture(scope="module")
async def month(client: PlatformClient, platform: Platform) -> MonthResult:
    return await run_month(client, MonthConfig(members=80, claims=4, tag="e2e", timeout=120),
                           platform.ports, say=lambda _: None)


async def test_every_service_reports_healthy_and_serves_metrics(platform: Platform) -> None:
    for service in SERVICES:
        health = platform.health(service)
        assert health is not None and health["status"] == "ok", (service, health)
        assert health["checks"]["database"] is True and health["checks"]["broker"] is True
        port = platform.ports[service]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert "mutualaid_outbox_pending" in text and "faststream_received_messages" in text


async def test_the_month_approves_every_case_and_shares_it(month: MonthResult) -> None:
    assert month.joined == 80 and month.join_rejections == 0
    announced = {e.data["plan"]: e.data for e in month.announcements}
    assert set(announced) == {"critical_illness", "elderly_cancer", "chronic_cancer"}
    assert sum(a["cases"] for a in announced.values()) == len(month.approved_cases) == 4
    assert sum(a["members_sharing"] for a in announced.values()) == 80


async def test_the_money_equation_holds_to_the_fen_per_plan(month: MonthResult) -> None:
    debits: dict[str, int] = defaultdict(int)
    credits: dict[str, int] = defaultdict(int)
    lines: dict[str, list[int]] = defaultdict(list)
    for i in month.instructions:
        if i.kind == "debit":
            debits[i.period_id] += i.amount_fen
            assert i.amount_fen == sum(line.amount_fen for line in i.lines)
            lines[i.period_id] += [line.amount_fen for line in i.lines]
        else:
            credits[i.period_id] += i.amount_fen
    for notice in (e.data for e in month.announcements):
        period = notice["period_id"]
        fee = (notice["benefits_fen"] * 800 + 5000) // 10000  # 2020 rules: 8 %, half up
        assert notice["fee_fen"] == fee
        assert debits[period] + notice["subsidy_fen"] == notice["benefits_fen"] + fee
        assert credits[period] == notice["benefits_fen"]
        # 2020 rules have no cap and no operator window: every member pays their share
        base = notice["base_share_fen"]
        assert sorted(set(lines[period])) <= [base, base + 1]
        assert lines[period].count(base + 1) == notice["members_paying_one_fen_more"]
        assert len(lines[period]) == notice["members_sharing"]


async def test_events_carry_the_commands_correlation_id(client: PlatformClient,
                                                        month: MonthResult) -> None:
    approved = client.of_type("claims.CaseApproved")
    assert approved and all(e.correlationid for e in approved)
    for e in client.of_type("membership.MemberJoined"):
        assert e.subject == e.data["member_id"] and e.source == "mutualaid/membership"


async def test_a_duplicate_command_has_exactly_one_effect(client: PlatformClient,
                                                          month: MonthResult) -> None:
    payers, _ = members_for(MonthConfig(members=3, tag="dup", seed=7))
    command = payers[0]
    raw = command_event(command, source="tests/e2e", id="dup-join-1")
    for _ in range(3):
        await client.send_raw("membership.commands", raw, key=command.member_id.encode())
    retry_id = await client.send(command)  # same member, new command id: harmless
    await client.wait_until(lambda: bool(client.caused_by(retry_id)), timeout=60,
                            what="the retried join's outcome")
    joined = [e for e in client.of_type("membership.MemberJoined")
              if e.data["member_id"] == command.member_id]
    assert len(joined) == 1 and joined[0].correlationid == "dup-join-1"
    (retry,) = client.caused_by(retry_id)
    assert retry.type == "membership.CommandRejected"
    assert retry.data["reason_code"] == "MEMBER_ID_TAKEN"


async def test_malformed_messages_are_dead_lettered_and_the_consumer_keeps_going(
        client: PlatformClient, month: MonthResult) -> None:
    await client.send_raw("claims.commands", b"\x00 definitely not json")
    invalid = orjson.dumps({"specversion": "1.0", "id": "bad-claim-1", "source": "tests",
                            "type": "claims.FileClaim", "data": {"case_id": "c"}})
    await client.send_raw("claims.commands", invalid)
    after = await client.send(FileClaim(case_id="late-1", member_id="nobody",
                                        illness_code="malignant_tumour",
                                        diagnosed_on=date(2020, 6, 1), hospital="h"))
    await client.wait_until(lambda: bool(client.caused_by(after)), timeout=60,
                            what="the command after the bad ones")
    assert client.caused_by(after)[0].data["reason_code"] == "NOT_A_MEMBER"
    (rejected,) = client.caused_by("bad-claim-1")
    assert rejected.data["reason_code"] == "INVALID_DATA"
    await client.wait_until(lambda: len([d for d in client.dead_letters
                                         if d.topic == "claims.dlq"]) >= 2,
                            timeout=30, what="two claims DLQ entries")
    dlq = {d.headers["dlq-reason-code"]: d for d in client.dead_letters if d.topic == "claims.dlq"}
    assert dlq["MALFORMED"].value == b"\x00 definitely not json"
    assert dlq["INVALID_DATA"].value == invalid and dlq["INVALID_DATA"].headers["dlq-error"]


async def test_a_sharing_date_runs_once(client: PlatformClient, month: MonthResult) -> None:
    again = await client.send(RunSharingPeriod(sharing_date=date(2020, 6, 14)))
    await client.wait_until(lambda: bool(client.caused_by(again)), timeout=60,
                            what="the second run's outcome")
    (outcome,) = client.caused_by(again)
    assert outcome.type == "billing.CommandRejected"
    assert outcome.data["reason_code"] == "ALREADY_APPLIED"
    assert len(client.of_type("billing.SharingPeriodCompleted")) == 1


async def test_health_says_json(platform: Platform) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{platform.ports['billing']}/health") as r:
        assert r.headers["content-type"] == "application/json"
        assert json.loads(r.read())["service"] == "billing"


async def test_asyncapi_documents_what_a_service_writes_and_cannot_publish(
        platform: Platform) -> None:
    base = f"http://127.0.0.1:{platform.ports['billing']}"
    with urllib.request.urlopen(f"{base}/asyncapi.json") as r:
        spec = json.loads(r.read())
    addresses = {c["address"] for c in spec["channels"].values() if "address" in c}
    assert {"billing.events", "billing.payment-instructions", "billing.dlq",
            "billing.commands"} <= addresses
    assert "SharingAnnounced" in spec["components"]["schemas"]
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(urllib.request.Request(f"{base}/asyncapi/try", data=b"{}"))
    assert exc.value.code == 404


async def test_zz_sigterm_stops_a_service_gracefully(platform: Platform) -> None:
    # Runs last in this module: it stops jury for good.
    proc = platform.processes["jury"]
    proc.terminate()
    # uvicorn finishes the shutdown, then re-raises the signal it captured.
    assert proc.wait(timeout=30) in (0, -15)
    log = platform.logs["jury"].read_text()
    shutdown = log.split('"event": "Shutting down"')[-1]
    assert '"service stopped"' in shutdown and '"level": "error"' not in shutdown
