"""The whole life of a case through Kafka alone (SPEC §4-§7): a disputed case judged by an
open-mode jury of more than 1,000 votes, approved and shared by billing; a case rejected at
review, appealed and refused by a drawn panel; the waiting period and its accident
exception."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta, timezone

import pytest
from devstack.platform import Platform
from devstack.scenario import (
    MonthConfig, claims_for, members_for, send_all, wait_handled, wait_sharing_run)

from testkit import running_platform

from mutualaid.client import PlatformClient
from mutualaid.contracts.billing import RunSharingPeriod
from mutualaid.contracts.claims import (
    AppealClaim, FileClaim, ReportCaseHistory, ReviewClaim)
from mutualaid.contracts.jury import CastVote, CloseVoting, QualifyJuror
from mutualaid.contracts.membership import JoinPlan
from mutualaid.contracts.publicity import ClosePublicityRound, FileObjection, OpenPublicityRound
from mutualaid.identity import synthetic_id

pytestmark = pytest.mark.e2e

CST = timezone(timedelta(hours=8))
ROUND = date(2020, 6, 7)
SHARING = date(2020, 6, 14)
TIMEOUT = 120


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Platform]:
    with running_platform(kafka_bootstrap, tmp_path_factory.mktemp("case-life-logs")) as p:
        yield p


@pytest.fixture(scope="module")
async def client(platform: Platform) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(platform.bootstrap, source="tests/case-life") as c:
        yield c


def quiet(_: str) -> None:
    pass


async def ok(client: PlatformClient, commands: list, what: str) -> list[str]:
    done, refused = await send_all(client, commands, what=what, timeout=TIMEOUT, say=quiet)
    assert not refused, [client.caused_by(i)[0].data for i in refused]
    return done


async def first_outcome(client: PlatformClient, command: object) -> object:
    command_id = await client.send(command)  # type: ignore[arg-type]
    await client.wait_until(lambda: bool(client.caused_by(command_id)), timeout=TIMEOUT,
                            what=f"the outcome of {type(command).__name__}")
    return client.caused_by(command_id)


@pytest.fixture(scope="module")
async def jurors(client: PlatformClient, platform: Platform) -> list[JoinPlan]:
    """1,300 members join; every adult qualifies as a juror on 2020-06-01."""
    payers, family = members_for(MonthConfig(members=1300, tag="cl", seed=4))
    await ok(client, payers, "payer joins")
    await ok(client, family, "family joins")
    # Each service reads membership's events on its own schedule: wait until all have them.
    for service in ("claims", "publicity", "jury", "billing"):
        await wait_handled(platform.ports[service], "membership.MemberJoined",
                           len(payers) + len(family), service=service, timeout=TIMEOUT,
                           client=client)
    adults = [m for m in [*payers, *family] if m.relation != "child"]
    await ok(client, [QualifyJuror(member_id=m.member_id, exam_score=90,
                                   qualified_on=date(2020, 6, 1)) for m in adults],
             "juror qualifications")
    return adults


def steps_for(member: JoinPlan, case_id: str) -> list:
    (steps,) = claims_for(MonthConfig(claims=1, tag=case_id), [member])
    return [s.model_copy(update={"case_id": case_id}) for s in steps]


async def test_a_disputed_case_goes_to_an_open_jury_is_approved_and_shared(
        client: PlatformClient, platform: Platform, jurors: list[JoinPlan]) -> None:
    claimant = next(m for m in jurors if m.plan == "critical_illness" and m.relation == "self")
    family = {m.member_id for m in jurors if m.payer_id == claimant.member_id}
    objector = next(m for m in jurors if m.member_id not in family | {claimant.member_id})
    await ok(client, steps_for(claimant, "cl-dispute"), "claim steps")
    await wait_handled(platform.ports["publicity"], "claims.CaseReadyForPublicity", 1,
                       service="publicity", timeout=TIMEOUT, client=client)
    await ok(client, [OpenPublicityRound(round_date=ROUND)], "round opening")
    await ok(client, [FileObjection(objection_id="obj-1", case_id="cl-dispute",
                                    member_id=objector.member_id,
                                    reason="the diagnosis predates joining",
                                    filed_on=ROUND + timedelta(days=1))], "objection")
    await wait_handled(platform.ports["jury"], "publicity.ObjectionFiled", 1, service="jury",
                       timeout=TIMEOUT, client=client)
    await ok(client, [ClosePublicityRound(round_date=ROUND)], "round closing")
    await client.wait_until(lambda: any(e.subject == "cl-dispute" for e in
                                        client.of_type("jury.JuryCaseOpened")),
                            timeout=TIMEOUT, what="the jury case")
    opened = next(e for e in client.of_type("jury.JuryCaseOpened") if e.subject == "cl-dispute")
    assert opened.data["mode"] == "open" and opened.data["origin"] == "dispute"
    closes_at = datetime.fromisoformat(opened.data["voting_closes_at"])

    voters = [m for m in jurors if m.member_id not in family | {claimant.member_id,
                                                               objector.member_id}]
    assert len(voters) >= 1000
    cast_at = closes_at - timedelta(hours=12)
    ballots = [CastVote(case_id="cl-dispute", juror_id=m.member_id, approve=i % 3 != 0,
                        cast_at=cast_at) for i, m in enumerate(voters)]
    await ok(client, ballots, "votes")
    refused = await first_outcome(client, CastVote(case_id="cl-dispute",
                                                   juror_id=objector.member_id, approve=False,
                                                   cast_at=cast_at))
    assert refused[0].data["reason_code"] == "EXCLUDED"  # type: ignore[index]
    verdict = await first_outcome(client, CloseVoting(case_id="cl-dispute",
                                                      closed_at=closes_at + timedelta(hours=1)))
    (decided,) = [e for e in verdict if e.type == "jury.JuryVerdict"]  # type: ignore[attr-defined]
    in_favour = sum(1 for b in ballots if b.approve)
    assert (decided.data["approved"], decided.data["votes_for"],
            decided.data["votes_against"]) == (True, in_favour, len(ballots) - in_favour)

    await client.wait_until(lambda: any(e.subject == "cl-dispute" for e in
                                        client.of_type("claims.CaseApproved")),
                            timeout=TIMEOUT, what="the case approved after the verdict")
    await wait_handled(platform.ports["billing"], "claims.CaseApproved", 1, service="billing",
                       timeout=TIMEOUT, client=client)
    run = await wait_sharing_run(client, await client.send(RunSharingPeriod(
        sharing_date=SHARING)), timeout=TIMEOUT)
    notice = next(e for e in run if e.type == "billing.SharingAnnounced"  # type: ignore[attr-defined]
                  and e.data["plan"] == "critical_illness")
    assert notice.data["case_ids"] == ["cl-dispute"]
    assert notice.data["member_debits_fen"] + notice.data["subsidy_fen"] == \
        notice.data["benefits_fen"] + notice.data["fee_fen"]

    history = await first_outcome(client, ReportCaseHistory(case_id="cl-dispute"))
    steps = [entry["event_type"] for entry in history[0].data["entries"]]  # type: ignore[index]
    assert steps[0] == "claims.ClaimFiled" and steps[-1] == "claims.CaseApproved"
    assert {"claims.ClaimInvestigated", "claims.ClaimReviewed", "publicity.CasePublished",
            "publicity.CaseDisputed", "jury.JuryCaseOpened", "jury.JuryVerdict"} <= set(steps)
    reviews = [e["detail"] for e in history[0].data["entries"]  # type: ignore[index]
               if e["event_type"] == "claims.ClaimReviewed"]
    assert {(r["stage"], r["reviewer"], r["rule_version"]) for r in reviews} == {
        ("review", "reviewer-01", "2020-01-01"), ("final", "reviewer-02", "2020-01-01")}


async def test_an_appeal_of_a_review_rejection_is_refused_by_a_drawn_panel(
        client: PlatformClient, jurors: list[JoinPlan]) -> None:
    claimant = next(m for m in reversed(jurors)
                    if m.plan == "critical_illness" and m.relation == "self")
    filed, investigated, *_ = steps_for(claimant, "cl-appeal")
    await ok(client, [filed, investigated], "claim filed and investigated")
    refusal = await first_outcome(client, ReviewClaim(
        case_id="cl-appeal", stage="review", reviewer="reviewer-03", approved=False,
        reason_code="RECORDS_INCONSISTENT", note="admission date differs",
        reviewed_on=date(2020, 6, 2)))
    assert [e.type for e in refusal] == ["claims.ClaimReviewed", "claims.CaseRejected"]  # type: ignore[attr-defined]
    await ok(client, [AppealClaim(case_id="cl-appeal", reason="hospital corrected the record",
                                  appealed_on=date(2020, 6, 3))], "appeal")
    await client.wait_until(lambda: any(e.subject == "cl-appeal" for e in
                                        client.of_type("jury.PanelDrawn")),
                            timeout=TIMEOUT, what="the panel draw")
    panel = next(e for e in client.of_type("jury.PanelDrawn") if e.subject == "cl-appeal")
    seated = panel.data["juror_ids"]
    assert len(seated) == 11 and claimant.member_id not in seated
    opened = next(e for e in client.of_type("jury.JuryCaseOpened") if e.subject == "cl-appeal")
    assert (opened.data["mode"], opened.data["origin"]) == ("panel", "appeal")
    closes_at = datetime.fromisoformat(opened.data["voting_closes_at"])
    outsider = next(m.member_id for m in jurors if m.member_id not in seated
                    and m.payer_id != claimant.member_id and m.member_id != claimant.member_id)
    not_seated = await first_outcome(client, CastVote(
        case_id="cl-appeal", juror_id=outsider, approve=True,
        cast_at=closes_at - timedelta(hours=1)))
    assert not_seated[0].data["reason_code"] == "NOT_ON_PANEL"  # type: ignore[index]
    await ok(client, [CastVote(case_id="cl-appeal", juror_id=j, approve=i < 3,
                               cast_at=closes_at - timedelta(hours=1))
                      for i, j in enumerate(seated)], "panel votes")
    verdict = await first_outcome(client, CloseVoting(case_id="cl-appeal",
                                                      closed_at=closes_at + timedelta(hours=1)))
    (decided,) = [e for e in verdict if e.type == "jury.JuryVerdict"]  # type: ignore[attr-defined]
    assert (decided.data["approved"], decided.data["votes_for"],
            decided.data["votes_against"], decided.data["mode"]) == (False, 3, 8, "panel")
    await client.wait_until(
        lambda: any(e.subject == "cl-appeal" and e.data["reason_code"] == "JURY_REJECTED"
                    for e in client.of_type("claims.CaseRejected")),
        timeout=TIMEOUT, what="the appeal refused")
    again = await first_outcome(client, AppealClaim(case_id="cl-appeal", reason="once more",
                                                    appealed_on=date(2020, 6, 20)))
    assert again[0].data["reason_code"] == "NOT_APPEALABLE"  # type: ignore[index]


async def test_the_waiting_period_refuses_an_illness_but_not_an_accident(
        client: PlatformClient, platform: Platform, jurors: list[JoinPlan]) -> None:
    newcomer = JoinPlan(member_id="cl-new", payer_id="cl-new", plan="critical_illness",
                        national_id=synthetic_id("510107", date(1991, 2, 3), 77), name="周新",
                        relation="self", payer_credit_score=720, health_declaration=True,
                        joined_on=date(2020, 5, 1))
    assert (await first_outcome(client, newcomer))[0].type == "membership.MemberJoined"  # type: ignore[index]
    joined = len(client.of_type("membership.MemberJoined"))
    await wait_handled(platform.ports["claims"], "membership.MemberJoined", joined,
                       service="claims", timeout=TIMEOUT, client=client)
    claim = FileClaim(case_id="cl-wait", member_id="cl-new", illness_code="malignant_tumour",
                      diagnosed_on=date(2020, 6, 1), hospital="华西医院")
    refused = await first_outcome(client, claim)
    assert refused[0].data["reason_code"] == "WAITING_PERIOD"  # type: ignore[index]
    accident = await first_outcome(client, claim.model_copy(update={
        "case_id": "cl-accident", "illness_code": "severe_third_degree_burns",
        "is_accident": True}))
    (filed,) = accident
    assert filed.type == "claims.ClaimFiled" and filed.data["is_accident"] is True  # type: ignore[attr-defined]
