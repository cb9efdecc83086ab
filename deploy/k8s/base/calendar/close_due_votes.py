"""The `jury-close-voting` CronJob: sends `jury.CloseVoting` for every jury case whose voting
window has ended and that has no verdict yet (docs/cases.md: "CloseVoting comes from an
external scheduler or cron at the deadline"; jury has no built-in scheduler).

It reads `jury.cases` (JURY_DATABASE_URL; a read-only role is enough) and sends each
command through the operator CLI, which validates it against the contract. ``closed_at`` is
the case's own deadline, so a Job that runs late closes the vote exactly as one on time
would. Sending twice is harmless: the same case and deadline give the same command id, which
jury's inbox drops, and a decided case answers ``ALREADY_APPLIED``.

Mounted from the `calendar-scripts` ConfigMap; runs with the service image's Python.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime

import asyncpg

DUE = """
SELECT DISTINCT ON (case_id) case_id, closes_at
FROM jury.cases
WHERE NOT decided AND closes_at <= now()
ORDER BY case_id, closes_at
"""


def command_argv(case_id: str, closes_at: datetime) -> list[str]:
    """The CLI call for one case. Its id is fixed by the case and deadline: a case still
    undecided at the next run (jury has not got to the command yet) gets a copy the inbox
    drops; a new voting window (an inconclusive close) has a new deadline, so a new id."""
    closed_at = closes_at.isoformat()
    data = {"case_id": case_id, "closed_at": closed_at}
    return [sys.executable, "-m", "mutualaid.cli", "send", "jury", "CloseVoting",
            "--data", json.dumps(data), "--id", f"calendar/jury.CloseVoting/{case_id}/{closed_at}",
            "--no-wait", "--source", "mutualaid/k8s-calendar"]


async def due_cases(dsn: str) -> list[tuple[str, datetime]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [(r["case_id"], r["closes_at"]) for r in await conn.fetch(DUE)]
    finally:
        await conn.close()


def main() -> int:
    dsn = os.environ.get("JURY_DATABASE_URL") or os.environ["DATABASE_URL"]
    due = asyncio.run(due_cases(dsn))
    failed = [case_id for case_id, closes_at in due
              if subprocess.run(command_argv(case_id, closes_at), check=False).returncode]
    print(json.dumps({"due": len(due), "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
