"""Payment results over Kafka: two failed debits in a row lapse a payer's members; repeated
or unknown results change nothing; arrears paid later are settled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime

import pytest
from devstack.platform import Platform
from devstack.scenario import wait_handled, wait_sharing_run

from testkit import running_platform

from mutualaid.client import PlatformClient
from mutualaid.contracts.billing import (
    PaymentFailed, PaymentInstruction, RunSharingPeriod, SettleArrears)
from mutualaid.contracts.claims import CaseApproved
from mutualaid.contracts.envelope import encode, envelope
from mutualaid.contracts.membership import JoinPlan
from mutualaid.identity import synthetic_id

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Platform]:
    with running_platform(kafka_bootstrap, tmp_path_factory.mktemp("arrears-logs"),
                          services=("membership", "billing")) as p:
        yield p


@pytest.fixture(scope="module")
async def client(platform: Platform) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(platform.bootstrap, source="tests/arrears") as c:
        yield c


def join(member_id: str, payer_id: str, relation: str, seq: int) -> JoinPlan:
    return JoinPlan(member_id=member_id, payer_id=payer_id, plan="critical_illness",
                    national_id=synthetic_id("440305", date(1988, 3, 1 + seq), seq),
                    name="李四", relation=relation,  # type: ignore[arg-type]
                    payer_credit_score=700 if relation == "self" else None,
                    health_declaration=True, joined_on=date(2020, 1, 2))


async def publish(client: PlatformClient, event: object) -> None:
    ce = envelope(event, source="tests/arrears", correlationid=None)  # type: ignore[arg-type]
    await client.send_raw(event.topic(), encode(ce), key=ce.subject.encode())  # type: ignore[attr-defined]


async def outcome(client: PlatformClient, command_id: str) -> list:
    await client.wait_until(lambda: bool(client.caused_by(command_id)), timeout=60,
                            what=f"outcome of {command_id}")
    return client.caused_by(command_id)


async def share(client: PlatformClient, platform: Platform, day: date, case_id: str,
                cases_before: int) -> list[PaymentInstruction]:
    await publish(client, CaseApproved(case_id=case_id, member_id="ar-claimant",
                                       payer_id="ar-claimant", plan="critical_illness",
                                       benefit_fen=10_000_000, rule_version="2020-01-01",
                                       diagnosed_on=date(2020, 5, 1),
                                       approved_on=date(day.year, day.month, day.day - 3)))
    # Billing reads cases and commands from different topics: wait until it has the case.
    await wait_handled(platform.ports["billing"], "claims.CaseApproved", cases_before + 1,
                       service="billing", timeout=60, client=client)
    run = await client.send(RunSharingPeriod(sharing_date=day, plans=("critical_illness",)))
    events = await wait_sharing_run(client, run, timeout=60)
    notice = next(e for e in events if e.type == "billing.SharingAnnounced")
    assert notice.data["cases"] == 1 and notice.data["case_ids"] == [case_id]
    return [PaymentInstruction.model_validate(i) for e in events
            if e.type == "billing.PaymentInstructionBatch" for i in e.data["instructions"]]


async def test_two_failed_debits_in_a_row_lapse_the_payers_members(client: PlatformClient,
                                                                   platform: Platform) -> None:
    for cmd in (join("ar-payer", "ar-payer", "self", 1), join("ar-claimant", "ar-claimant",
                                                              "self", 2)):
        assert (await outcome(client, await client.send(cmd)))[0].type == \
            "membership.MemberJoined"
    child = await client.send(join("ar-child", "ar-payer", "child", 3))
    assert (await outcome(client, child))[0].type == "membership.MemberJoined"
    await client.wait_until(lambda: len(client.of_type("membership.MemberJoined")) >= 3,
                            timeout=30, what="joins")

    first = await share(client, platform, date(2020, 6, 14), "ar-case-1", 0)
    debit_1 = next(i for i in first if i.kind == "debit" and i.account_id == "ar-payer")
    assert {line.member_id for line in debit_1.lines} == {"ar-payer", "ar-child"}
    failed_at = datetime(2020, 6, 15, 9, tzinfo=UTC)
    await publish(client, PaymentFailed(instruction_id=debit_1.instruction_id,
                                        reason="insufficient funds", failed_at=failed_at))
    # the same failure reported again, and a result for an instruction nobody sent
    await publish(client, PaymentFailed(instruction_id=debit_1.instruction_id,
                                        reason="insufficient funds", failed_at=failed_at))
    await publish(client, PaymentFailed(instruction_id="no-such-instruction", reason="x",
                                        failed_at=failed_at))

    second = await share(client, platform, date(2020, 6, 28), "ar-case-2", 1)
    debit_2 = next(i for i in second if i.kind == "debit" and i.account_id == "ar-payer")
    assert debit_2.instruction_id != debit_1.instruction_id
    await publish(client, PaymentFailed(instruction_id=debit_2.instruction_id,
                                        reason="card expired",
                                        failed_at=datetime(2020, 6, 29, 9, tzinfo=UTC)))

    await client.wait_until(
        lambda: {e.data["member_id"] for e in client.of_type("membership.MemberLapsed")}
        >= {"ar-payer", "ar-child"}, timeout=60, what="the payer's members to lapse")
    (reached,) = client.of_type("billing.PayerArrearsLimitReached")
    assert reached.data["payer_id"] == "ar-payer"
    assert sorted(reached.data["failed_periods"]) == [debit_1.period_id, debit_2.period_id]
    assert reached.data["reached_on"] == "2020-06-29"
    lapsed = {e.data["member_id"] for e in client.of_type("membership.MemberLapsed")}
    assert "ar-claimant" not in lapsed

    owed = debit_1.amount_fen + debit_2.amount_fen
    wrong = await client.send(SettleArrears(payer_id="ar-payer", amount_fen=owed - 1,
                                            settled_on=date(2020, 7, 1)))
    assert (await outcome(client, wrong))[0].data["reason_code"] == "AMOUNT_MISMATCH"
    settle = await client.send(SettleArrears(payer_id="ar-payer", amount_fen=owed,
                                             settled_on=date(2020, 7, 1)))
    (settled,) = await outcome(client, settle)
    assert settled.type == "billing.ArrearsSettled"
    assert sorted(settled.data["period_ids"]) == sorted([debit_1.period_id, debit_2.period_id])
    again = await client.send(SettleArrears(payer_id="ar-payer", amount_fen=owed,
                                            settled_on=date(2020, 7, 2)))
    assert (await outcome(client, again))[0].data["reason_code"] == "NO_ARREARS"
