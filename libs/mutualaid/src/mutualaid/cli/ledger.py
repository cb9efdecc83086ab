"""Read billing's own tables, read-only, for ``billing status``, ``billing reconcile`` and
``notice``. This is an operator's tool: services talk to each other through Kafka only,
but the person responsible for billing's books may look at billing's schema directly.

The session is read-only (``default_transaction_read_only``): nothing here can write."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg

from .output import REFUSED, UNAVAILABLE, CliError, count, table, yuan

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/mutualaid"


def database_url(given: str | None) -> str:
    """``--database-url``, else ``BILLING_DATABASE_URL``, else ``DATABASE_URL`` (as the
    billing service resolves it), else the development default."""
    return (given or os.environ.get("BILLING_DATABASE_URL") or os.environ.get("DATABASE_URL")
            or DEFAULT_DATABASE_URL)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@asynccontextmanager
async def billing_db(url: str) -> AsyncIterator[asyncpg.Connection]:
    try:
        conn = await asyncpg.connect(url, timeout=10, server_settings={
            "default_transaction_read_only": "on", "application_name": "mutualaid-cli"})
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
            ValueError) as exc:
        raise CliError(f"cannot connect to the database {redact(url)} ({exc}). Set "
                       "--database-url, BILLING_DATABASE_URL or DATABASE_URL.",
                       UNAVAILABLE) from None
    try:
        yield conn
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError,
            asyncpg.UndefinedColumnError) as exc:
        raise CliError(f"billing's tables are not in {redact(url)} ({exc}): is it the "
                       "platform's database, and has billing started on it?",
                       UNAVAILABLE) from None
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
        raise CliError(f"lost the database {redact(url)} ({exc})", UNAVAILABLE) from None
    finally:
        await conn.close(timeout=5)


# -- status ---------------------------------------------------------------------------------

STATUS_SQL = """
SELECT p.period_id, p.plan, p.sharing_date, p.status, p.dry_run, p.cases, p.benefits_fen,
       p.fee_fen, p.total_fen, p.members_sharing, p.member_debits_fen, p.subsidy_fen,
       p.failure, p.run_id, r.started_at, p.completed_at,
       count(t.task_no) AS shards,
       count(t.task_no) FILTER (WHERE t.status = 'done') AS shards_done,
       count(t.task_no) FILTER (WHERE t.status = 'failed') AS shards_failed,
       COALESCE(sum(t.debit_instructions), 0)::bigint AS debit_instructions
FROM billing.periods p
LEFT JOIN billing.runs r ON r.run_id = p.run_id
LEFT JOIN billing.shard_tasks t ON t.period_id = p.period_id
WHERE ($1::date IS NULL OR p.sharing_date = $1)
GROUP BY p.period_id, r.started_at
ORDER BY p.sharing_date DESC, r.started_at DESC NULLS LAST, p.plan
LIMIT $2
"""


async def status(conn: asyncpg.Connection, on: date | None, limit: int) -> list[dict[str, Any]]:
    rows = [dict(r) for r in await conn.fetch(STATUS_SQL, on, limit)]
    for r in rows:
        started, completed = r.pop("started_at"), r["completed_at"]
        r["started_at"] = started
        r["seconds"] = (round((completed - started).total_seconds(), 3)
                        if started and completed else None)
    return rows


def status_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "no sharing periods"
    body = [(r["period_id"] if not r["dry_run"]
             else f"{r['sharing_date']}/{r['plan']} (dry run {(r['run_id'] or '')[:8]})",
             r["status"], f"{r['shards_done']}/{r['shards']}", count(r["members_sharing"]),
             r["cases"], yuan(r["benefits_fen"] + r["fee_fen"]), yuan(r["member_debits_fen"]),
             yuan(r["subsidy_fen"]), count(r["debit_instructions"]),
             "-" if r["seconds"] is None else f"{r['seconds']:.1f}s")
            for r in rows]
    text = table(("period", "status", "shards", "members", "cases", "benefits+fee",
                  "member debits", "subsidy", "debits", "took"), body, left=2)
    failures = [f"{r['period_id']}: {r['failure']}" for r in rows if r["failure"]]
    if failures:
        text += "\n\nfailed:\n" + "\n".join(f"  {f}" for f in failures)
    return text + "\n\n(amounts in CNY)"


# -- notice ---------------------------------------------------------------------------------

NOTICE_SQL = """
SELECT period_id, plan, sharing_date, roll_date, rule_version, cases, case_ids, benefits_fen,
       fee_fen, total_fen, members_sharing, base_share_fen,
       paying_one_fen_more AS members_paying_one_fen_more, member_debits_fen, subsidy_fen
FROM billing.periods
WHERE sharing_date = $1 AND status = 'completed' AND NOT dry_run
ORDER BY plan
"""


async def notices(conn: asyncpg.Connection, on: date) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(NOTICE_SQL, on)]


def notice_table(notices: Sequence[dict[str, Any]]) -> str:
    """The sharing notice: one line per plan and the money equation of the date. ``notices``
    are ``SharingAnnounced`` data or rows of the same names."""
    rows = [(n["plan"], n["cases"], yuan(n["benefits_fen"]), yuan(n["fee_fen"]),
             count(n["members_sharing"]), yuan(n["base_share_fen"]),
             count(n["members_paying_one_fen_more"]), yuan(n["member_debits_fen"]),
             yuan(n["subsidy_fen"])) for n in sorted(notices, key=lambda n: n["plan"])]
    text = table(("plan", "cases", "benefits", "fee", "members", "per member", "+1 fen",
                  "member debits", "subsidy"), rows)
    debits = sum(n["member_debits_fen"] or 0 for n in notices)
    subsidy = sum(n["subsidy_fen"] or 0 for n in notices)
    owed = sum(n["benefits_fen"] + n["fee_fen"] for n in notices)
    holds = "HOLDS" if debits + subsidy == owed else "BROKEN"
    return (f"{text}\n\n(amounts in CNY; per member: the equal share, which +1 fen members "
            f"pay one fen more of)\nmoney equation: member debits {yuan(debits)} + subsidy "
            f"{yuan(subsidy)} = {yuan(debits + subsidy)}; benefits + fee = {yuan(owed)}  "
            f"{holds}")


# -- reconcile ------------------------------------------------------------------------------

PERIODS_SQL = """
SELECT period_id, plan, status, benefits_fen, fee_fen, total_fen, members_sharing,
       base_share_fen, paying_one_fen_more, member_debits_fen, subsidy_fen
FROM billing.periods
WHERE sharing_date = $1 AND NOT dry_run AND ($2::text[] IS NULL OR plan = ANY($2))
ORDER BY plan
"""

#: One pass over the period's partition of charges ($1 period, $2 base share).
CHARGES_SQL = """
SELECT count(*) AS members,
       COALESCE(sum(member_pays_fen), 0)::bigint AS member_pays,
       COALESCE(sum(share_fen - member_pays_fen), 0)::bigint AS operator_pays,
       COALESCE(sum(share_fen), 0)::bigint AS shares,
       count(*) FILTER (WHERE share_fen = $2 + 1) AS plus_one,
       count(*) FILTER (WHERE share_fen <> $2 AND share_fen <> $2 + 1) AS other_shares,
       count(*) FILTER (WHERE member_pays_fen < 0 OR member_pays_fen > share_fen) AS bad_pays
FROM billing.charges WHERE period_id = $1
"""


@dataclass
class Check:
    name: str
    expected: Any
    actual: Any

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass
class PeriodCheck:
    period_id: str
    plan: str
    status: str
    checks: list[Check] = field(default_factory=list)
    note: str | None = None

    @property
    def holds(self) -> bool:
        return self.status == "completed" and all(c.ok for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {"period_id": self.period_id, "plan": self.plan, "status": self.status,
                "holds": self.holds, "note": self.note,
                "checks": [{"check": c.name, "expected": c.expected, "actual": c.actual,
                            "ok": c.ok} for c in self.checks]}


def period_checks(p: dict[str, Any], c: dict[str, Any]) -> list[Check]:
    """The money rule of one period, from its stored figures ``p`` and the aggregate ``c``
    of its per-member charges."""
    owed = p["benefits_fen"] + p["fee_fen"]
    n = c["members"]
    # With nobody on the roll the operator carries the whole total (docs/billing.md).
    operator = c["operator_pays"] + (p["total_fen"] if n == 0 else 0)
    return [
        Check("total = benefits + fee", owed, p["total_fen"]),
        Check("charges stored = members sharing", p["members_sharing"], n),
        Check("shares add up to the total", p["total_fen"] if n else 0, c["shares"]),
        Check(f"shares other than {p['base_share_fen']:,} or {p['base_share_fen'] + 1:,} "
              "fen", 0, c["other_shares"]),
        Check("members paying one fen more", p["paying_one_fen_more"], c["plus_one"]),
        Check("members paying below 0 or above their share", 0, c["bad_pays"]),
        Check("member debits = stored member debits", p["member_debits_fen"],
              c["member_pays"]),
        Check("subsidy = stored subsidy", p["subsidy_fen"], operator),
        Check("member debits + subsidy = benefits + fee", owed, c["member_pays"] + operator),
    ]


async def reconcile(conn: asyncpg.Connection, on: date, plans: Sequence[str] | None
                    ) -> list[PeriodCheck]:
    results = []
    for p in await conn.fetch(PERIODS_SQL, on, list(plans) if plans else None):
        result = PeriodCheck(p["period_id"], p["plan"], p["status"])
        if p["status"] != "completed":
            result.note = (f"the period is {p['status']}: only a completed period can be "
                           "reconciled (see `mutualaid billing status`)")
        else:
            charges = await conn.fetchrow(CHARGES_SQL, p["period_id"], p["base_share_fen"])
            result.checks = period_checks(dict(p), dict(charges))
            if charges["members"] == 0 and p["members_sharing"]:
                result.note = ("no charges stored for the period: was its partition "
                               "detached and archived?")
        results.append(result)
    return results


def reconcile_text(on: date, results: Sequence[PeriodCheck]) -> str:
    if not results:
        raise CliError(f"no sharing period on {on.isoformat()} (dry runs are not "
                       "reconciled; see `mutualaid billing status`)", REFUSED)
    lines = []
    for r in results:
        lines.append(f"{r.period_id}  {'HOLDS' if r.holds else 'DOES NOT HOLD'}")
        for c in r.checks:
            mark = "ok " if c.ok else "BAD"
            detail = f"{_fmt(c.actual)}" if c.ok else (f"expected {_fmt(c.expected)}, found "
                                                        f"{_fmt(c.actual)}")
            lines.append(f"  {mark} {c.name}: {detail}")
        if r.note:
            lines.append(f"  note: {r.note}")
    verdict = all(r.holds for r in results)
    lines.append("")
    lines.append(f"{on.isoformat()}: the money equation "
                 f"{'holds for every plan' if verdict else 'DOES NOT HOLD'}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)
