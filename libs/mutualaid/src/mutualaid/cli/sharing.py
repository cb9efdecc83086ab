"""``billing run`` and ``billing dry-run``: send ``RunSharingPeriod``, follow the run to its
notice with a progress bar.

Progress is counted from the shard reports themselves: every ``billing.ShardCompleted`` on
``billing.shard-results`` carries the command's id as its correlation id, and
``billing.SharingRunStarted`` says how many shards there are. (Billing's gauge
``mutualaid_billing_running_shards`` says the same but is refreshed every 5 s and only
for running periods; the reports are exact and need no HTTP access to billing.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from mutualaid.contracts import topics
from mutualaid.contracts.billing import RunSharingPeriod
from mutualaid.contracts.envelope import CloudEvent, new_id

from .kafka import _unreachable, platform_client
from .output import TIMED_OUT, CliError, Progress


@dataclass
class RunState:
    """What the events correlated with one ``RunSharingPeriod`` say about its run."""

    events: list[CloudEvent]

    def of(self, type_name: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == type_name]

    @property
    def rejected(self) -> dict[str, Any] | None:
        return next(iter(self.of("billing.CommandRejected")), None)

    @property
    def started(self) -> dict[str, Any] | None:
        return next(iter(self.of("billing.SharingRunStarted")), None)

    @property
    def shards_done(self) -> int:
        return len({(d["period_id"], d["task_no"]) for d in self.of("billing.ShardCompleted")})

    @property
    def members_priced(self) -> int:
        seen: dict[tuple[str, int], int] = {}
        for d in self.of("billing.ShardCompleted"):
            seen[(d["period_id"], d["task_no"])] = d.get("members", 0)
        return sum(seen.values())

    @property
    def announced(self) -> list[dict[str, Any]]:
        return self.of("billing.SharingAnnounced")

    @property
    def failed(self) -> list[dict[str, Any]]:
        return self.of("billing.SharingRunFailed")

    @property
    def completed(self) -> dict[str, Any] | None:
        return next(iter(self.of("billing.SharingPeriodCompleted")), None)

    @property
    def finished(self) -> bool:
        if self.rejected or self.completed:
            return True
        started = self.started
        if started is None:
            return False
        ended = {d["period_id"] for d in self.announced} | {d["period_id"] for d in self.failed}
        return set(started["period_ids"]) <= ended

    def as_json(self, command_id: str, command: RunSharingPeriod) -> dict[str, Any]:
        started = self.started
        return {"command_id": command_id, "sharing_date": command.sharing_date,
                "dry_run": command.dry_run, "plans": command.plans,
                "rejected": self.rejected, "started": started,
                "shards": started["shards"] if started else None,
                "shards_done": self.shards_done, "announced": self.announced,
                "failed": self.failed, "completed": self.completed,
                "finished": self.finished}


def build_command(on: date, plans: list[str] | None, *, dry_run: bool,
                  draft_rulebook: str | None) -> RunSharingPeriod:
    try:
        return RunSharingPeriod(sharing_date=on, plans=tuple(plans) if plans else None,
                                dry_run=dry_run, draft_rulebook=draft_rulebook)
    except ValidationError as exc:
        raise CliError(f"RunSharingPeriod: {exc.errors()[0]['msg']}") from None


async def follow_run(bootstrap: str, command: RunSharingPeriod, *, source: str, wait: float,
                     progress: Progress) -> tuple[str, RunState]:
    """Send the command and follow its run until it is announced, failed or rejected."""
    command_id = new_id()
    read = [topics.events("billing"), topics.SHARD_RESULTS]
    async with platform_client(bootstrap, source=source, read=read) as client:
        try:
            await client.send(command, id=command_id)
            await client.flush()
        except KafkaError as exc:
            raise _unreachable(bootstrap, exc) from None

        def state() -> RunState:
            return RunState(client.caused_by(command_id))

        def tick() -> None:
            s = state()
            if s.started:
                progress.update(s.shards_done, s.started["shards"],
                                f"{s.members_priced:,} members priced")

        try:
            await client.wait_until(lambda: state().finished, timeout=wait,
                                    what="the sharing run", progress=tick)
        except TimeoutError:
            s = state()
            progress.close()
            where = ("billing did not answer: is it running?" if not s.events else
                     f"{s.shards_done}/{s.started['shards'] if s.started else '?'} shards "
                     "done; the run goes on in billing")
            raise CliError(f"the sharing run of {command.sharing_date} did not finish within "
                           f"{wait:g} s ({where}). Follow it with `mutualaid billing status "
                           f"{command.sharing_date}`.", TIMED_OUT) from None
        s = state()
        if s.started:
            progress.update(s.shards_done, s.started["shards"],
                            f"{s.members_priced:,} members priced", force=True)
        progress.close()
        return command_id, s
