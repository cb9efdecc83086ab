"""Personal data stays in membership (SPEC §3): a full flow runs (the demo month: joins,
claims through review, publicity, the sharing run), then a few more commands that handle
personal data on other paths (refused joins, an import with refusals, a member who leaves and
has their data erased, a case history), and every record of every topic the services wrote
is searched for any clear name or national ID number the test sent, as is every line of every
service's log.

What is walked: every topic on the broker except the command topics and ``payments.results``
(what callers send, which holds the clear data by design): the five ``<service>.events``,
``billing.payment-instructions``, billing's internal topics, and the DLQs. The DLQs keep the
original bytes of a command that could not be read, which may hold personal data (operators'
access to them is restricted like access to the members table, docs/membership.md), so this
flow must not put anything there: the test asserts they are empty.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from devstack.platform import SERVICES, Platform
from devstack.scenario import MonthConfig, MonthResult, members_for, run_month

from testkit import running_platform

from mutualaid.client import PlatformClient
from mutualaid.contracts.claims import ReportCaseHistory
from mutualaid.contracts.membership import (
    EraseMember, ImportMembers, JoinPlan, LeavePlan, NewMember)
from mutualaid.identity import mask_id, mask_name, synthetic_id

pytestmark = pytest.mark.e2e

CONFIG = MonthConfig(members=60, claims=3, tag="pii", seed=77, timeout=120)
TIMEOUT = 60.0


@dataclass
class People:
    """Every clear name and ID number the test sent: none may leave membership."""

    names: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    def add(self, member: NewMember) -> None:
        self.names.add(member.name)
        self.ids.add(member.national_id.upper())

    def leaks(self, text: str) -> list[str]:
        """Names as written; ID numbers also without their check character (an ID cut
        short is still the number) and with a lower-case x."""
        found = [n for n in self.names if n in text]
        upper = text.upper()
        found += [i for i in self.ids if i[:17] in upper]
        return found


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Platform]:
    with running_platform(kafka_bootstrap, tmp_path_factory.mktemp("pii-logs")) as p:
        yield p


@pytest.fixture(scope="module")
async def client(platform: Platform) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(platform.bootstrap, source="tests/pii") as c:
        yield c


@dataclass
class Flow:
    month: MonthResult
    people: People
    commands: list[str]


@pytest.fixture(scope="module")
async def flow(client: PlatformClient, platform: Platform) -> Flow:
    people = People()
    payers, family = members_for(CONFIG)
    for m in (*payers, *family):
        people.add(m)
    month = await run_month(client, CONFIG, platform.ports, say=lambda _: None)

    # personal data on other paths: refusals (their messages must not repeat the number),
    # an import with refusals, a leaver whose data is erased, a case's history
    joined = date(2020, 3, 2)
    again = payers[0].model_copy(update={"member_id": "pii-again"})  # ALREADY_A_MEMBER
    good_id = synthetic_id("310104", date(1988, 5, 17), 901)
    wrong_check = good_id[:17] + ("0" if good_id[-1] != "0" else "1")  # ID_CHECKSUM
    refused = JoinPlan(member_id="pii-refused", payer_id="pii-refused",
                       plan="critical_illness", national_id=wrong_check, name="欧阳娜娜",
                       relation="self", payer_credit_score=700, health_declaration=True,
                       joined_on=joined)
    newcomer = NewMember(member_id="pii-import-1", payer_id="pii-import-1",
                         plan="critical_illness",
                         national_id=synthetic_id("440305", date(1990, 2, 3), 902),
                         name="司马相如", relation="self", payer_credit_score=720,
                         health_declaration=True, joined_on=joined)
    duplicate = NewMember(**{**newcomer.model_dump(), "member_id": "pii-import-2",
                             "name": "司马相如二"})
    bad = NewMember(**{**newcomer.model_dump(), "member_id": "pii-import-3",
                       "national_id": synthetic_id("330106", date(1991, 3, 4), 903)[:17] + "Y",
                       "name": "诸葛亮亮"})
    leaver = next(m for m in family if m.relation == "child")  # children never claim here
    for m in (again, refused, newcomer, duplicate, bad):
        people.add(m)
    commands = [
        await client.send(again), await client.send(refused),
        await client.send(ImportMembers(migration_id="pii-migration", import_id="pii-1",
                                        members=(newcomer, duplicate, bad))),
        await client.send(LeavePlan(member_id=leaver.member_id, left_on=joined)),
    ]
    await client.wait_until(lambda: all(client.caused_by(c) for c in commands),
                            timeout=TIMEOUT, what="the extra commands' outcomes")
    commands.append(await client.send(EraseMember(member_id=leaver.member_id,
                                                  requested_on=joined)))
    commands.append(await client.send(ReportCaseHistory(case_id=month.approved_cases[0])))
    await client.wait_until(lambda: all(client.caused_by(c) for c in commands),
                            timeout=TIMEOUT, what="the erasure and the case history")
    return Flow(month, people, commands)


async def read_everything(bootstrap: str) -> tuple[dict[str, list[bytes]], list[str]]:
    """Every record of every topic the services write, from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest",
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        every = sorted(await consumer.topics())
        produced = [t for t in every if not t.endswith(".commands") and t != "payments.results"]
        consumer.subscribe(produced)
        records: dict[str, list[bytes]] = {t: [] for t in produced}
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3.0:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, recs in batch.items():
                records[tp.topic] += [(r.key or b"") + b" " + (r.value or b"") + b" " + b" ".join(
                    v for _, v in r.headers or ()) for r in recs]
            if batch:
                quiet_since = time.monotonic()
        return records, every
    finally:
        await consumer.stop()


def texts(raw: bytes) -> list[str]:
    """The record as written, and as JSON with every escape decoded (a name may travel as
    \\u escapes)."""
    text = raw.decode("utf-8", errors="replace")
    out = [text]
    start = text.find("{")
    if start >= 0:
        try:
            out.append(json.dumps(json.loads(text[start:text.rfind("}") + 1]),
                                  ensure_ascii=False))
        except ValueError:
            pass
    return out


async def test_no_topic_carries_a_clear_name_or_id_number(flow: Flow,
                                                          platform: Platform) -> None:
    records, every = await read_everything(platform.bootstrap)
    assert {f"{s}.events" for s in SERVICES} | {"billing.payment-instructions"} <= set(records)
    dead = {t: len(r) for t, r in records.items() if t.endswith(".dlq") and r}
    assert not dead, f"the flow put messages in DLQs: {dead}"
    leaks: Counter[tuple[str, str]] = Counter()
    types: Counter[str] = Counter()
    masked_seen = 0
    for topic, values in records.items():
        for raw in values:
            seen = texts(raw)
            for text in seen:
                for leak in flow.people.leaks(text):
                    leaks[topic, leak] += 1
            if len(seen) > 1:
                types[json.loads(seen[1])["type"] if seen[1].startswith("{") else topic] += 1
            masked_seen += any(mask_id(i) in seen[-1] for i in flow.people.ids)
    assert not leaks, f"clear personal data on topics: {dict(leaks)}"
    # the walk saw the events that carry personal data in masked form, and the other paths
    for type_name in ("membership.MemberJoined", "membership.CommandRejected",
                      "membership.MembersImported", "membership.MemberLeft",
                      "membership.MemberErased", "claims.ClaimFiled",
                      "claims.CaseReadyForPublicity", "claims.CaseHistoryReported",
                      "publicity.CasePublished", "claims.CaseApproved",
                      "billing.SharingAnnounced", "billing.PaymentInstructionBatch"):
        assert types[type_name], f"no {type_name} was walked: {sorted(types)}"
    assert masked_seen >= CONFIG.members, masked_seen
    assert len(flow.people.names) >= CONFIG.members and len(flow.people.ids) >= CONFIG.members
    print(f"\npersonal data: {sum(len(v) for v in records.values())} records on "
          f"{len(records)} topics walked ({', '.join(sorted(records))}); "
          f"{len(flow.people.names)} names and {len(flow.people.ids)} ID numbers searched; "
          f"{masked_seen} records carried a masked ID")


def test_no_log_line_carries_a_clear_name_or_id_number(flow: Flow, platform: Platform) -> None:
    leaks: Counter[tuple[str, str]] = Counter()
    lines = 0
    for service, path in platform.logs.items():
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            lines += 1
            for text in texts(line.encode()):
                for leak in flow.people.leaks(text):
                    leaks[service, leak] += 1
    assert not leaks, f"clear personal data in service logs: {dict(leaks)}"
    assert lines > 100, lines
    print(f"\npersonal data: {lines} log lines of {len(platform.logs)} services searched")


def test_the_masked_forms_are_what_events_show(flow: Flow, client: PlatformClient) -> None:
    """The walk above would pass on a platform that published nothing: the masked forms of
    the people it searched for are there instead."""
    joined = {e.data["member_id"]: e.data for e in client.of_type("membership.MemberJoined")}
    payers, family = members_for(CONFIG)
    for m in (*payers, *family):
        assert joined[m.member_id]["masked_name"] == mask_name(m.name)
        assert joined[m.member_id]["masked_national_id"] == mask_id(m.national_id)
    assert flow.month.joined == CONFIG.members
