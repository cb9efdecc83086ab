"""A demo month, driven only through Kafka: members join across the three plans, claims go
from filing to approval, a publicity round opens and closes, and one sharing period runs."""

from __future__ import annotations

import random
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from mutualaid.client import PlatformClient
from mutualaid.contracts import Command
from mutualaid.contracts.billing import PaymentInstruction, RunSharingPeriod
from mutualaid.contracts.claims import FileClaim, RecordInvestigation, ReviewClaim
from mutualaid.contracts.common import Document
from mutualaid.contracts.envelope import CloudEvent
from mutualaid.contracts.membership import JoinPlan
from mutualaid.contracts.publicity import ClosePublicityRound, OpenPublicityRound
from mutualaid.identity import synthetic_id

REGIONS = ("110101", "310104", "440305", "330106", "510107", "420102", "610113", "370202")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍"
CHRONIC = ("hypertension", "diabetes")
CLAIM_PLAN = (("critical_illness", "malignant_tumour"), ("elderly_cancer", "malignant_tumour"),
              ("chronic_cancer", "leukaemia"), ("critical_illness", "acute_myocardial_infarction"))

Say = Callable[[str], None]


@dataclass(frozen=True)
class MonthConfig:
    members: int = 3000
    claims: int = 6
    tag: str = "demo"
    seed: int = 2020
    sharing_date: date = date(2020, 6, 14)
    publicity_date: date = date(2020, 6, 7)
    timeout: float = 300.0


@dataclass
class MonthResult:
    joined: int
    join_rejections: int
    approved_cases: list[str]
    announcements: list[CloudEvent]
    completed: CloudEvent
    instructions: list[PaymentInstruction] = field(default_factory=list)


def _person(rng: random.Random, seq: int, on: date, min_age: int, max_age: int
            ) -> tuple[str, str]:
    age_days = rng.randint(min_age * 366 + 1, max_age * 365 + 300)
    birth = on - timedelta(days=age_days)
    national_id = synthetic_id(REGIONS[seq % len(REGIONS)], birth, seq // len(REGIONS) % 1000)
    name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
    return national_id, name


def members_for(cfg: MonthConfig) -> tuple[list[JoinPlan], list[JoinPlan]]:
    """Payers first (they must exist before they add family), then family members."""
    rng = random.Random(cfg.seed)
    payers: list[JoinPlan] = []
    family: list[JoinPlan] = []
    seq = 0
    used: set[str] = set()

    def person(on: date, lo: int, hi: int) -> tuple[str, str]:
        nonlocal seq
        while True:
            seq += 1
            national_id, name = _person(rng, seq, on, lo, hi)
            if national_id not in used:
                used.add(national_id)
                return national_id, name

    while len(payers) + len(family) < cfg.members:
        joined = date(2019, 7, 1) + timedelta(days=rng.randint(0, 240))
        payer_id = f"{cfg.tag}-m{len(payers) + len(family):06d}"
        plan = rng.choices(("critical_illness", "elderly_cancer", "chronic_cancer"),
                           (80, 10, 10))[0]
        lo, hi = (60, 69) if plan == "elderly_cancer" else (22, 58)
        nid, name = person(joined, lo, hi)
        payers.append(JoinPlan(
            member_id=payer_id, payer_id=payer_id, plan=plan, national_id=nid, name=name,
            relation="self", payer_credit_score=rng.randint(650, 900), health_declaration=True,
            chronic_conditions=(rng.choice(CHRONIC),) if plan == "chronic_cancer" else (),
            joined_on=joined))
        for relation in rng.choices(("spouse", "child", "parent"), k=rng.choice((0, 0, 1, 2))):
            if len(payers) + len(family) >= cfg.members:
                break
            lo, hi, fplan = {"spouse": (22, 58, "critical_illness"),
                             "child": (1, 17, "critical_illness"),
                             "parent": (60, 69, "elderly_cancer")}[relation]
            nid, name = person(joined, lo, hi)
            family.append(JoinPlan(
                member_id=f"{cfg.tag}-m{len(payers) + len(family):06d}", payer_id=payer_id,
                plan=fplan, national_id=nid, name=name, relation=relation,
                health_declaration=True, joined_on=joined))
    return payers, family


def claims_for(cfg: MonthConfig, joined: Sequence[JoinPlan]) -> list[list[Command]]:
    """Each claim as its ordered steps: file, investigate, review, final review."""
    rng = random.Random(cfg.seed + 1)
    steps: list[list[Command]] = []
    for n in range(cfg.claims):
        plan, illness = CLAIM_PLAN[n % len(CLAIM_PLAN)]
        candidates = [m for m in joined if m.plan == plan and m.relation != "child"] or [
            m for m in joined if m.plan == "critical_illness"]
        member = candidates[rng.randrange(len(candidates))]
        joined = [m for m in joined if m.member_id != member.member_id]
        case_id = f"{cfg.tag}-case{n + 1:03d}"
        day = cfg.publicity_date - timedelta(days=7)
        doc = Document(kind="discharge_summary", sha256=f"{rng.getrandbits(256):064x}")
        steps.append([
            FileClaim(case_id=case_id, member_id=member.member_id, illness_code=illness,
                      diagnosed_on=day - timedelta(days=2), hospital="上海市第一人民医院",
                      documents=(doc,)),
            RecordInvestigation(case_id=case_id, investigator="华安公估", verified=True,
                                summary="hospital records verified", investigated_on=day,
                                documents=(doc,)),
            ReviewClaim(case_id=case_id, stage="review", reviewer="reviewer-01", approved=True,
                        reviewed_on=day + timedelta(days=1)),
            ReviewClaim(case_id=case_id, stage="final", reviewer="reviewer-02", approved=True,
                        reviewed_on=day + timedelta(days=2)),
        ])
    return steps


def handled_count(metrics_port: int, type_name: str) -> int:
    """How many events of a type a service has handled, read from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "mutualaid_messages":
            return int(sum(s.value for s in family.samples if s.name.endswith("_total")
                           and s.labels.get("type") == type_name
                           and s.labels.get("outcome") == "ok"))
    return 0


async def send_all(client: PlatformClient, commands: Sequence[Command], *, what: str,
                   timeout: float, say: Say) -> tuple[list[str], list[str]]:
    """Send commands, wait for every one's outcome; returns (succeeded, rejected) ids."""
    ids = [await client.send(c) for c in commands]
    await client.flush()
    last = [-1]

    def progress() -> None:
        done = sum(1 for i in ids if client.caused_by(i))
        if done != last[0] and (done - last[0] >= max(1, len(ids) // 10) or done == len(ids)):
            say(f"  {what}: {done}/{len(ids)} answered")
            last[0] = done

    await client.wait_until(lambda: all(client.caused_by(i) for i in ids), timeout=timeout,
                            what=f"outcomes of {len(ids)} {what}", progress=progress)
    progress()
    rejected = [i for i in ids
                if any(e.type.endswith("CommandRejected") for e in client.caused_by(i))]
    refused = set(rejected)
    return [i for i in ids if i not in refused], rejected


async def wait_handled(port: int, type_name: str, count: int, *, service: str, timeout: float,
                       client: PlatformClient) -> None:
    await client.wait_until(lambda: handled_count(port, type_name) >= count, timeout=timeout,
                            what=f"{service} to handle {count} x {type_name}")


async def run_month(client: PlatformClient, cfg: MonthConfig, ports: dict[str, int],
                    say: Say = print) -> MonthResult:
    payers, family = members_for(cfg)
    say(f"1/6 {len(payers)} payers join, then {len(family)} family members")
    ok_p, rej_p = await send_all(client, payers, what="payer joins", timeout=cfg.timeout,
                                 say=say)
    ok_f, rej_f = await send_all(client, family, what="family joins", timeout=cfg.timeout,
                                 say=say)
    joined = len(ok_p) + len(ok_f)
    say(f"2/6 billing, claims and publicity take in {joined} joins")
    for service in ("billing", "claims", "publicity"):
        await wait_handled(ports[service], "membership.MemberJoined", joined, service=service,
                           timeout=cfg.timeout, client=client)
    members = [*payers, *family]
    steps = claims_for(cfg, members)
    say(f"3/6 {len(steps)} claims: filed, investigated, reviewed, final-reviewed")
    for stage in range(4):
        ok, rej = await send_all(client, [s[stage] for s in steps],
                                 what=type(steps[0][stage]).__name__, timeout=cfg.timeout,
                                 say=say)
        if rej:
            raise RuntimeError(f"claim step rejected: {[client.caused_by(i) for i in rej]}")
    await wait_handled(ports["publicity"], "claims.CaseReadyForPublicity", len(steps),
                       service="publicity", timeout=cfg.timeout, client=client)
    say(f"4/6 publicity round {cfg.publicity_date}: published, objection window, closed")
    await send_all(client, [OpenPublicityRound(round_date=cfg.publicity_date)],
                   what="round opening", timeout=cfg.timeout, say=say)
    await send_all(client, [ClosePublicityRound(round_date=cfg.publicity_date)],
                   what="round closing", timeout=cfg.timeout, say=say)
    case_ids = [s[0].case_id for s in steps]  # type: ignore[attr-defined]
    await client.wait_until(
        lambda: {e.subject for e in client.of_type("claims.CaseApproved")} >= set(case_ids),
        timeout=cfg.timeout, what="every case approved")
    await wait_handled(ports["billing"], "claims.CaseApproved", len(case_ids),
                       service="billing", timeout=cfg.timeout, client=client)
    say(f"5/6 sharing period {cfg.sharing_date}")
    run_id = await client.send(RunSharingPeriod(sharing_date=cfg.sharing_date))
    outcome = await wait_sharing_run(client, run_id, timeout=cfg.timeout)
    completed = next((e for e in outcome if e.type == "billing.SharingPeriodCompleted"), None)
    if completed is None:
        raise RuntimeError(f"sharing run did not complete: {outcome[-1].data}")
    announcements = [e for e in outcome if e.type == "billing.SharingAnnounced"]
    batches = [e for e in outcome if e.type == "billing.PaymentInstructionBatch"]
    instructions = [PaymentInstruction.model_validate(i) for b in batches
                    for i in b.data["instructions"]]
    say("6/6 done")
    return MonthResult(joined, len(rej_p) + len(rej_f), case_ids, announcements, completed,
                       instructions)


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def notice_table(result: MonthResult) -> str:
    rows = [("plan", "cases", "benefits", "fee", "members", "per member", "+1 fen",
             "member debits", "subsidy")]
    for e in sorted(result.announcements, key=lambda e: e.data["plan"]):
        d = e.data
        rows.append((d["plan"], str(d["cases"]), yuan(d["benefits_fen"]), yuan(d["fee_fen"]),
                     f"{d['members_sharing']:,}", yuan(d["base_share_fen"]),
                     f"{d['members_paying_one_fen_more']:,}", yuan(d["member_debits_fen"]),
                     yuan(d["subsidy_fen"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=False))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    debits = sum(i.amount_fen for i in result.instructions if i.kind == "debit")
    credits = sum(i.amount_fen for i in result.instructions if i.kind == "credit")
    subsidy = sum(e.data["subsidy_fen"] for e in result.announcements)
    owed = sum(e.data["benefits_fen"] + e.data["fee_fen"] for e in result.announcements)
    lines += ["", f"sharing date {result.completed.data['sharing_date']}  (amounts in CNY)",
              f"payment instructions: {sum(i.kind == 'debit' for i in result.instructions):,} "
              f"debits totalling {yuan(debits)}, "
              f"{sum(i.kind == 'credit' for i in result.instructions)} credits totalling "
              f"{yuan(credits)}",
              f"money equation: debits {yuan(debits)} + subsidy {yuan(subsidy)} = "
              f"{yuan(debits + subsidy)}; benefits + fee = {yuan(owed)}  "
              f"{'HOLDS' if debits + subsidy == owed else 'BROKEN'}"]
    return "\n".join(lines)


def now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


RUN_ENDS = ("billing.SharingPeriodCompleted", "billing.SharingRunFailed",
            "billing.CommandRejected")


async def wait_sharing_run(client: PlatformClient, run_id: str, *, timeout: float
                           ) -> list[CloudEvent]:
    """Every event of a sharing run: until it completed, failed or was rejected, and then
    until every instruction it counted has been read (debits come from the workers on
    another topic, so they may be read after the run's last event)."""
    def ended() -> bool:
        return any(e.type in RUN_ENDS for e in client.caused_by(run_id))

    def instructions() -> int:
        return sum(len(e.data["instructions"]) for e in client.caused_by(run_id)
                   if e.type == "billing.PaymentInstructionBatch")

    await client.wait_until(ended, timeout=timeout, what="the sharing run")
    done = next((e for e in client.caused_by(run_id)
                 if e.type == "billing.SharingPeriodCompleted"), None)
    if done is not None:
        expected = sum(p["debit_instructions"] + p["credit_instructions"]
                       for p in done.data["plans"])
        await client.wait_until(lambda: instructions() >= expected, timeout=timeout,
                                what=f"{expected} payment instructions")
    return client.caused_by(run_id)
