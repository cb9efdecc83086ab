"""``mutualaid``: the operator's command line for the platform."""

from __future__ import annotations

import argparse
import asyncio
import signal
import difflib
import logging
import os
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from mutualaid.contracts import Command, Event, message_class, topics
from mutualaid.contracts.claims import ReportCaseHistory
from mutualaid.contracts.common import PLANS

from . import kafka, ledger, sharing
from .examples import contract_types, example_data
from .output import (
    OK, REFUSED, USAGE, CliError, Progress, compact, emit_json, kv, table, terminal_width,
    yuan)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_SOURCE = "mutualaid/cli"

Handler = Callable[[argparse.Namespace], Awaitable[int]]

DESCRIPTION = """\
Operate the mutual-aid platform: send commands, run and check sharing days, follow a
case, read and replay dead letters, watch topics. Commands travel over Kafka like any
other platform service's; `billing status|reconcile` and `notice` read billing's tables
directly, read-only (an operator's tool, not an integration path)."""

EPILOG = """\
examples:
  mutualaid send membership JoinPlan --data @join.json
  mutualaid send membership JoinPlan --example          # the data a JoinPlan takes
  mutualaid billing dry-run 2020-06-14                  # what the day would cost, no charges
  mutualaid billing run 2020-06-14                      # share the day, with a progress bar
  mutualaid billing status
  mutualaid billing reconcile 2020-06-14 && echo books balance
  mutualaid notice 2020-06-14
  mutualaid case case-0042
  mutualaid dlq list membership
  mutualaid dlq replay membership --offset 0:17
  mutualaid tail billing.events --type SharingAnnounced
  mutualaid --json billing status | jq '.periods[0]'

environment:
  KAFKA_BOOTSTRAP_SERVERS   the broker (default 127.0.0.1:9092, what `make up` starts)
  BILLING_DATABASE_URL, DATABASE_URL
                            billing's database for status, reconcile and notice
                            (default postgresql://postgres@127.0.0.1:5432/mutualaid)

exit status:
  0 done; 1 the platform said no (command rejected, run failed, books do not balance,
  nothing found); 2 bad usage or data; 3 broker or database unreachable; 4 no answer in time
"""


# -- arguments ------------------------------------------------------------------------------

def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global options, accepted before or after the command. On the sub-commands they
    default to SUPPRESS so they do not override what was given before the command."""
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS
    group = parser.add_argument_group("global options")
    group.add_argument("--bootstrap", metavar="HOST:PORT",
                       default=default(os.environ.get("KAFKA_BOOTSTRAP_SERVERS",
                                                      DEFAULT_BOOTSTRAP)),
                       help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS; default "
                            f"{DEFAULT_BOOTSTRAP})")
    group.add_argument("--database-url", metavar="URL", default=default(None),
                       help="billing's database, for status/reconcile/notice (env "
                            "BILLING_DATABASE_URL or DATABASE_URL)")
    group.add_argument("--json", action="store_true", default=default(False),
                       help="print JSON for scripts (tail: one event a line)")
    group.add_argument("--source", default=default(DEFAULT_SOURCE),
                       help=f"CloudEvent source of the commands sent (default {DEFAULT_SOURCE})")
    group.add_argument("-v", "--verbose", action="store_true", default=default(False),
                       help="log the Kafka client's warnings and errors to stderr")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=min(100, terminal_width(100)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mutualaid", description=DESCRIPTION,
                                     epilog=EPILOG, formatter_class=_Formatter)
    _globals(parser, top=True)
    commands = parser.add_subparsers(title="commands", metavar="<command>")

    def command(parent: Any, name: str, handler: Handler | None, help: str, description: str,
                epilog: str = "") -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, epilog=epilog, formatter_class=_Formatter,
                              description=textwrap.fill(description,
                                                        min(92, terminal_width(92))))
        if handler is not None:
            _globals(p, top=False)
            p.set_defaults(handler=handler)
        return p

    services = ", ".join(topics.SERVICES)
    p = command(commands, "send", cmd_send, "send a command and print its outcome",
                "Send one command as a CloudEvent to <service>.commands, keyed by its "
                "subject, after checking its data against the contract; then wait for its "
                "outcome: its events, or <service>.CommandRejected with a reason code.",
                "examples:\n"
                "  mutualaid send membership JoinPlan --data @join.json\n"
                "  mutualaid send membership LeavePlan --data "
                "'{\"member_id\": \"m-1001\", \"left_on\": \"2020-07-01\"}'\n"
                "  mutualaid send publicity OpenPublicityRound --data "
                "'{\"round_date\": \"2020-06-07\"}'\n"
                "  mutualaid send claims                 # lists the claims commands\n"
                "  mutualaid send claims FileClaim --example\n\n"
                "exit status 1 when the command is rejected.")
    p.add_argument("service", choices=topics.SERVICES, metavar="service",
                   help=f"one of {services}")
    p.add_argument("command", nargs="?", metavar="Command",
                   help="the command's name, e.g. JoinPlan (leave out to list them)")
    p.add_argument("--data", metavar="JSON|@FILE|-",
                   help="the command's data: JSON, @file.json, or - for stdin")
    p.add_argument("--example", action="store_true",
                   help="print example data for the command and exit")
    p.add_argument("--id", help="the CloudEvent id (default: a new UUID); send a retry with "
                                "the same id to have it applied once")
    p.add_argument("--correlation-id", help="correlation id (default: the command's id)")
    wait = p.add_mutually_exclusive_group()
    wait.add_argument("--wait", type=positive_seconds, default=30.0, metavar="SECONDS",
                      help="how long to wait for the outcome (default 30)")
    wait.add_argument("--no-wait", action="store_true", help="send and return at once")

    billing = command(commands, "billing", None, "run, preview, follow and reconcile "
                      "sharing days", "Sharing days: run or preview one, list periods, "
                      "re-check a period's books.")
    billing_commands = billing.add_subparsers(title="billing commands", metavar="<command>",
                                              required=True)
    for name, dry in (("run", False), ("dry-run", True)):
        p = command(billing_commands, name, cmd_billing_run,
                    "preview a sharing day: nothing is charged" if dry else
                    "run a sharing day: notice, debits and credits",
                    ("Price a sharing day as a preview (RunSharingPeriod with dry_run): the "
                     "notice it would publish, no charges stored, no instructions sent, "
                     "optionally under a draft rulebook." if dry else
                     "Send RunSharingPeriod for the date and follow the run: a progress bar "
                     "while billing's workers price the shards, then the sharing notice. "
                     "Running a date again resumes a failed or stalled period; a completed "
                     "date is refused (ALREADY_APPLIED)."),
                    "examples:\n  mutualaid billing " + name + " 2020-06-14"
                    + ("\n  mutualaid billing dry-run 2020-06-14 --draft-rulebook "
                       "new-rules.yaml" if dry else "\n  mutualaid billing run 2020-06-14 "
                                                    "--plan critical_illness")
                    + "\n\nexit status 1 when the run is refused or a period fails.")
        p.add_argument("date", type=iso_date, help="the sharing date (YYYY-MM-DD)")
        p.add_argument("--plan", action="append", choices=PLANS, metavar="PLAN",
                       help=f"only this plan (repeatable; default every plan: "
                            f"{', '.join(PLANS)})")
        if dry:
            p.add_argument("--draft-rulebook", type=Path, metavar="FILE",
                           help="price the preview under this rulebook file (YAML)")
        p.add_argument("--wait", type=positive_seconds, default=1800.0, metavar="SECONDS",
                       help="how long to follow the run (default 1800); it goes on anyway")
        p.set_defaults(dry_run=dry)
    p = command(billing_commands, "status", cmd_billing_status,
                "sharing periods: status, shards, members, debits, subsidy",
                "List sharing periods (newest first) from billing's tables, read-only: "
                "status, shards done of all, members, benefits + fee, member debits, "
                "subsidy, debit instructions, run time.",
                "examples:\n  mutualaid billing status\n  mutualaid billing status 2020-06-14")
    p.add_argument("date", type=iso_date, nargs="?", help="only this sharing date")
    p.add_argument("--limit", type=positive_int, default=30, help="at most this many periods "
                                                                  "(default 30)")
    p = command(billing_commands, "reconcile", cmd_billing_reconcile,
                "re-check the money equation of a stored period",
                "Re-check each plan's period of the date from its per-member charges "
                "(billing.charges), read-only: charges for every member on the roll, every "
                "share the base share or one fen more, exactly the planned number paying the "
                "extra fen, and sum(member pays) + sum(share - member pays) = benefits + fee, "
                "matching the stored debits and subsidy.",
                "examples:\n  mutualaid billing reconcile 2020-06-14\n\n"
                "exit status 1 when any check fails or a period is not completed.")
    p.add_argument("date", type=iso_date, help="the sharing date")
    p.add_argument("--plan", action="append", choices=PLANS, metavar="PLAN",
                   help="only this plan (repeatable)")

    p = command(commands, "notice", cmd_notice, "the sharing notice of a date",
                "The sharing notice of a date as a table, per plan: cases, benefits, fee, "
                "members sharing, the amount per member, how many pay one fen more, member "
                "debits and the operator's subsidy (amounts in CNY). Read from billing's "
                "tables (completed periods, not dry runs).",
                "example:\n  mutualaid notice 2020-06-14")
    p.add_argument("date", type=iso_date, help="the sharing date")

    p = command(commands, "case", cmd_case, "a case's history with every decision",
                "Ask claims for the case's history (claims.ReportCaseHistory) and print every "
                "recorded decision: filing, investigation, reviews, publicity, jury, "
                "approval or refusal, with who, when and why.",
                "example:\n  mutualaid case case-0042")
    p.add_argument("case_id", help="the case id")
    p.add_argument("--wait", type=positive_seconds, default=30.0, metavar="SECONDS",
                   help="how long to wait for claims (default 30)")

    dlq = command(commands, "dlq", None, "list and replay dead letters",
                  "Dead letters: messages a service could not read or failed on, copied to "
                  "<service>.dlq with the original bytes and the error in headers.")
    dlq_commands = dlq.add_subparsers(title="dlq commands", metavar="<command>",
                                      required=True)
    p = command(dlq_commands, "list", cmd_dlq_list, "list a service's dead letters",
                "Read <service>.dlq from the beginning (no consumer group, nothing "
                "committed) and print each dead letter: partition:offset, time, reason code, "
                "where it came from, its type and the error.",
                "examples:\n  mutualaid dlq list membership\n"
                "  mutualaid --json dlq list billing --limit 1000")
    p.add_argument("service", choices=topics.SERVICES, metavar="service",
                   help=f"one of {services}")
    p.add_argument("--limit", type=positive_int, default=50,
                   help="show the latest N (default 50)")
    p = command(dlq_commands, "replay", cmd_dlq_replay, "send dead letters back to their topic",
                "Publish dead letters again, with their original key, to the topic they came "
                "from (header dlq-source-topic), once the cause is fixed. By default the "
                "bytes are the original ones; but a service records the CloudEvent id of "
                "every message it reads, failed ones included, and drops a second copy, so "
                "a letter with a readable id is handled again only with --new-id. One that "
                "fails again gets a new dead letter.",
                "examples:\n  mutualaid dlq replay membership --offset 0:17 --offset 2:3\n"
                "  mutualaid dlq replay billing --all --new-id   # after fixing the cause")
    p.add_argument("service", choices=topics.SERVICES, metavar="service",
                   help=f"one of {services}")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", action="append", metavar="[PARTITION:]OFFSET",
                       help="a dead letter as `dlq list` shows it (repeatable)")
    which.add_argument("--all", action="store_true", help="every dead letter in the queue")
    p.add_argument("--new-id", action="store_true",
                   help="send each as a new message (a new CloudEvent id derived from the "
                        "old one, correlated with it): without it, a letter with an id is "
                        "dropped as a duplicate by the service's inbox")

    p = command(commands, "tail", cmd_tail, "print a topic's events as they arrive",
                "Print the CloudEvents written to a topic as they arrive (from now, or from "
                "the beginning), until Ctrl-C, --limit or --timeout.",
                "examples:\n  mutualaid tail membership.events\n"
                "  mutualaid tail billing.events --from-beginning --type SharingAnnounced\n"
                "  mutualaid --json tail claims.events | jq .type\n\n"
                f"topics: {', '.join(topics.all_topics())}")
    p.add_argument("topic", help="e.g. membership.events")
    p.add_argument("--from-beginning", action="store_true",
                   help="start at the oldest message kept")
    p.add_argument("--type", action="append", metavar="TYPE",
                   help="only this type, e.g. MemberJoined or membership.MemberJoined "
                        "(repeatable)")
    p.add_argument("--limit", type=positive_int, help="stop after N events")
    p.add_argument("--timeout", type=positive_seconds, metavar="SECONDS",
                   help="stop after this many seconds")
    p.add_argument("--full", action="store_true", help="do not shorten the data")
    return parser


# -- send -----------------------------------------------------------------------------------

def commands_of(service: str) -> list[str]:
    return [t.split(".", 1)[1] for t, m in contract_types().items()
            if issubclass(m, Command) and m.service() == service]


def resolve_command(service: str, name: str) -> type[Command]:
    if "." in name:
        prefix, _, name = name.partition(".")
        if prefix != service:
            raise CliError(f"{prefix}.{name} is not a {service} command")
    valid = commands_of(service)
    listing = f"{service} commands: {', '.join(valid)}"
    model = message_class(f"{service}.{name}")
    if model is not None and issubclass(model, Event):
        raise CliError(f"{service}.{name} is an event: {service} publishes it, nobody sends "
                       f"it. {listing}")
    if model is None or not issubclass(model, Command):
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise CliError(f"unknown command {service}.{name}.{hint} {listing}")
    return model


def load_data(text: str) -> Any:
    if text == "-":
        raw = sys.stdin.read()
    elif text.startswith("@"):
        try:
            raw = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"--data {text}: cannot read the file ({exc.strerror})") from None
    else:
        raw = text
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"--data is not JSON: {exc}") from None


def validate(model: type[Command], data: Any) -> Command:
    if not isinstance(data, dict):
        raise CliError(f"--data must be a JSON object of {model.TYPE}'s fields, not "
                       f"{type(data).__name__}")
    try:
        return model.model_validate_json(orjson.dumps(data))
    except ValidationError as exc:
        raise CliError(validation_message(model, exc)) from None


def validation_message(model: type[Command], exc: ValidationError) -> str:
    lines = [f"the data does not match {model.TYPE}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(data)"
        got = "" if err["type"] == "missing" else f" (got {compact(err.get('input'), 60)})"
        lines.append(f"  {where}: {err['msg']}{got}")
    fields = ", ".join(model.model_fields)
    lines.append(f"{model.TYPE} fields: {fields} (see `mutualaid send {model.service()} "
                 f"{model.TYPE.split('.', 1)[1]} --example`)")
    return "\n".join(lines)


def event_line(data_type: str, subject: str | None, data: Any) -> str:
    if data_type.endswith(".CommandRejected"):
        return f"{data_type}  {data['reason_code']}: {data['message']}"
    body = kv(data, skip=("case_id",) if subject == data.get("case_id") else ())
    return f"{data_type}  {subject or ''}  {body}"


async def cmd_send(args: argparse.Namespace) -> int:
    if args.command is None:
        names = commands_of(args.service)
        if args.json:
            emit_json({"service": args.service, "commands": names})
        else:
            print(f"{args.service} commands (mutualaid send {args.service} <Command> "
                  "--data ...):")
            for name in names:
                model = message_class(f"{args.service}.{name}")
                assert model is not None
                print(f"  {name:<22} {', '.join(model.model_fields)}")
                doc = " ".join((model.__doc__ or "").split("\n\n")[0].split())
                if doc:
                    print(textwrap.fill(doc, 88, initial_indent=" " * 25,
                                        subsequent_indent=" " * 25))
        return OK
    model = resolve_command(args.service, args.command)
    if args.example:
        emit_json(example_data(model))
        return OK
    if args.data is None:
        raise CliError(f"--data is required: the fields of {model.TYPE} as JSON (see "
                       f"`mutualaid send {args.service} {args.command} --example`)")
    command = validate(model, load_data(args.data))
    if args.no_wait:
        command_id = await kafka.send_only(args.bootstrap, command, source=args.source,
                                           id=args.id, correlationid=args.correlation_id)
        sent = {"id": command_id, "type": command.TYPE, "subject": command.subject(),
                "topic": topics.commands(args.service)}
        if args.json:
            emit_json({"command": sent})
        else:
            print(f"sent {command.TYPE} to {sent['topic']}  id={command_id}  "
                  f"key={command.subject()}")
        return OK
    req = await kafka.request(args.bootstrap, command, source=args.source, wait=args.wait,
                              id=args.id, correlationid=args.correlation_id)
    if req.timed_out and not req.events:
        raise kafka.no_answer(args.service, req.id, args.wait)
    rejection = req.rejection
    if args.json:
        emit_json({"command": req.summary(), "accepted": rejection is None,
                   "outcome": [e.model_dump(mode="json", exclude_none=True)
                               for e in req.events]})
    else:
        print(f"sent {command.TYPE} to {topics.commands(args.service)}  id={req.id}  "
              f"key={command.subject()}")
        for e in req.events:
            print("  " + event_line(e.type, e.subject, e.data))
        if rejection is not None:
            print(f"REJECTED: {rejection.data['reason_code']}")
    return REFUSED if rejection is not None else OK


# -- case -----------------------------------------------------------------------------------

async def cmd_case(args: argparse.Namespace) -> int:
    try:
        command = ReportCaseHistory(case_id=args.case_id)
    except ValidationError as exc:
        raise CliError(validation_message(ReportCaseHistory, exc)) from None
    answers = ("claims.CaseHistoryReported", "claims.CommandRejected")
    req = await kafka.request(args.bootstrap, command, source=args.source, wait=args.wait,
                              until=lambda events: any(e.type in answers for e in events))
    if req.timed_out:
        raise kafka.no_answer("claims", req.id, args.wait)
    if (rejection := req.rejection) is not None:
        data = rejection.data
        if args.json:
            emit_json({"case_id": args.case_id, "found": False, "rejection": data})
        message = (f"no case {args.case_id}" if data["reason_code"] == "UNKNOWN_CASE"
                   else f"claims refused: {data['reason_code']}: {data['message']}")
        raise CliError(message, REFUSED)
    history = next(e.data for e in req.events if e.type == "claims.CaseHistoryReported")
    if args.json:
        emit_json({"found": True, **history})
        return OK
    print(case_text(history, width=min(120, terminal_width(120))))
    return OK


#: What a decision was and who made it, before the rest of an entry's detail.
DECISION_FIRST = ("stage", "approved", "approve", "reviewer", "reason_code", "reason",
                  "message", "note", "verified", "investigator", "summary", "juror_id",
                  "objection_id", "votes_for", "votes_against", "mode", "origin")


def case_detail(detail: dict[str, Any]) -> str:
    rank = {k: i for i, k in enumerate(DECISION_FIRST)}
    parts = []
    for key in sorted(detail, key=lambda k: (rank.get(k, len(rank)), k)):
        value = detail[key]
        if key == "case_id" or value in (None, "", []):
            continue
        if key == "documents" and isinstance(value, list):
            kinds = ", ".join(sorted({str(d.get("kind")) for d in value if isinstance(d, dict)}))
            parts.append(f"documents={len(value)} ({kinds})")
        elif key.endswith("_fen") and isinstance(value, int):
            parts.append(f"{key[:-4]}={yuan(value)} CNY")
        else:
            parts.append(f"{key}={value if isinstance(value, str) else compact(value, 80)}")
    return " ".join(parts)


def case_text(history: dict[str, Any], *, width: int = 100) -> str:
    entries = history["entries"]
    lines = [f"case {history['case_id']}  state {history['state']}  rule version "
             f"{history['rule_version']}  ({len(entries)} recorded steps; times UTC)", ""]
    for e in entries:
        lines.append(f"{e['recorded_at'].replace('T', ' ')[:19]}  {e['event_type']}")
        detail = case_detail(e["detail"])
        if detail:
            lines.append(textwrap.fill(detail, width, initial_indent="    ",
                                       subsequent_indent="    ", break_on_hyphens=False))
    return "\n".join(lines)


# -- billing --------------------------------------------------------------------------------

async def cmd_billing_run(args: argparse.Namespace) -> int:
    draft = None
    if getattr(args, "draft_rulebook", None) is not None:
        try:
            draft = args.draft_rulebook.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"--draft-rulebook {args.draft_rulebook}: {exc.strerror}") from None
    command = sharing.build_command(args.date, args.plan, dry_run=args.dry_run,
                                    draft_rulebook=draft)
    kind = "dry run of" if args.dry_run else "sharing run"
    if not args.json:
        print(f"{kind} {args.date}"
              + (f" ({', '.join(args.plan)})" if args.plan else " (every plan)")
              + (f" under {args.draft_rulebook}" if draft else ""), flush=True)
    progress = Progress("shards", enabled=not args.json or sys.stderr.isatty())
    command_id, state = await sharing.follow_run(args.bootstrap, command, source=args.source,
                                                 wait=args.wait, progress=progress)
    if args.json:
        emit_json(state.as_json(command_id, command))
    elif (rejected := state.rejected) is not None:
        print(f"billing refused the run: {rejected['reason_code']}: {rejected['message']}")
    else:
        started = state.started or {}
        periods = len(started.get("period_ids", ()))
        print(f"{periods} period{'s' if periods != 1 else ''}, "
              f"{started.get('members_sharing', 0):,} members, "
              f"{started.get('shards', 0)} shards\n")
        if state.announced:
            title = ("SHARING NOTICE (DRY RUN: nothing charged)" if args.dry_run
                     else "SHARING NOTICE")
            print(f"{title}  {args.date}\n")
            print(ledger.notice_table(state.announced))
        for failure in state.failed:
            print(f"\nFAILED {failure['period_id']}: {failure['reason']}")
    return REFUSED if state.rejected or state.failed else OK


async def cmd_billing_status(args: argparse.Namespace) -> int:
    async with ledger.billing_db(ledger.database_url(args.database_url)) as conn:
        rows = await ledger.status(conn, args.date, args.limit)
    if args.json:
        emit_json({"periods": rows})
    else:
        print(ledger.status_table(rows))
    return OK


async def cmd_billing_reconcile(args: argparse.Namespace) -> int:
    async with ledger.billing_db(ledger.database_url(args.database_url)) as conn:
        results = await ledger.reconcile(conn, args.date, args.plan)
    holds = bool(results) and all(r.holds for r in results)
    if args.json:
        emit_json({"sharing_date": args.date, "holds": holds,
                   "periods": [r.as_json() for r in results]})
        if not results:
            return REFUSED
    else:
        print(ledger.reconcile_text(args.date, results))
    return OK if holds else REFUSED


async def cmd_notice(args: argparse.Namespace) -> int:
    async with ledger.billing_db(ledger.database_url(args.database_url)) as conn:
        notices = await ledger.notices(conn, args.date)
    if args.json:
        emit_json({"sharing_date": args.date, "notices": notices})
        return OK if notices else REFUSED
    if not notices:
        raise CliError(f"no completed sharing on {args.date} (see `mutualaid billing "
                       "status`)", REFUSED)
    print(f"SHARING NOTICE  {args.date}\n")
    print(ledger.notice_table(notices))
    return OK


# -- dead letters ---------------------------------------------------------------------------

async def cmd_dlq_list(args: argparse.Namespace) -> int:
    letters = await kafka.dead_letters(args.bootstrap, args.service)
    shown = letters[-args.limit:]
    dlq = topics.dlq(args.service)
    if args.json:
        emit_json({"topic": dlq, "total": len(letters),
                   "dead_letters": [d.as_json() for d in shown]})
        return OK
    if not letters:
        print(f"{dlq} is empty")
        return OK
    print(f"{len(letters)} dead letters in {dlq}"
          + (f" (the latest {len(shown)})" if len(shown) < len(letters) else "") + "\n")
    rows = []
    for d in shown:
        j = d.as_json()
        source = (f"{j['source_topic']}[{j['source_partition']}]@{j['source_offset']}"
                  if j["source_topic"] else "-")
        error = (j["error"] or "").replace("\n", " ")
        rows.append((d.ref, j["timestamp"][:19].replace("T", " "), j["reason_code"] or "-",
                     source, j["type"] or "-", error[:70] + ("…" if len(error) > 70 else "")))
    print(table(("offset", "time (UTC)", "reason", "from", "type", "error"), rows, left=6))
    return OK


async def cmd_dlq_replay(args: argparse.Namespace) -> int:
    dlq = topics.dlq(args.service)
    letters = await kafka.dead_letters(args.bootstrap, args.service)
    chosen = letters if args.all else kafka.select(letters, args.offset, dlq)
    if not chosen:
        if args.json:
            emit_json({"topic": dlq, "replayed": []})
        else:
            print(f"{dlq} is empty: nothing to replay")
        return OK
    done = await kafka.replay(args.bootstrap, args.service, chosen, new_id=args.new_id)
    if args.json:
        emit_json({"topic": dlq, "replayed": done})
    else:
        for d in done:
            if d["replayed"]:
                renamed = f" as id {d['new_id']}" if d["new_id"] else ""
                print(f"replayed {dlq} {d['ref']} ({d['reason_code']}) -> {d['source_topic']}"
                      f" (partition {d['partition']}, offset {d['offset']}){renamed}")
            else:
                print(f"skipped {dlq} {d['ref']}: {d['why']}")
        print(f"{sum(d['replayed'] for d in done)} of {len(done)} replayed; a message that "
              f"fails again shows up in `mutualaid dlq list {args.service}`")
        kept = sum(1 for d in done if d["replayed"] and d["id"] and not d["new_id"])
        if kept:
            print(f"note: {kept} kept {'its' if kept == 1 else 'their'} CloudEvent id, which "
                  f"{args.service} has already recorded: it drops such a copy as a duplicate. "
                  "Replay with --new-id to have it handled again.")
    return OK if all(d["replayed"] for d in done) else REFUSED


# -- tail -----------------------------------------------------------------------------------

def type_matches(type_name: str | None, wanted: Sequence[str] | None) -> bool:
    if not wanted:
        return True
    if type_name is None:
        return False
    return any(type_name == w or type_name.split(".", 1)[-1] == w for w in wanted)


async def cmd_tail(args: argparse.Namespace) -> int:
    # Ctrl-C sets a flag the loop checks between fetches: cancelling the task instead could
    # land inside the Kafka client, which does not always let a cancellation through (a
    # clean-clone run hung there).
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass
    try:
        return await _tail(args, stop)
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass


async def _tail(args: argparse.Namespace, stop: asyncio.Event) -> int:
    deadline = time.monotonic() + args.timeout if args.timeout else None
    printed = 0
    width = terminal_width(160)
    async with kafka.assigned_consumer(args.bootstrap, args.topic,
                                       from_beginning=args.from_beginning) as (consumer, _):
        if not args.json:
            print(f"tailing {args.topic}" + (" from the beginning" if args.from_beginning
                                             else "") + " (Ctrl-C stops)", file=sys.stderr,
                  flush=True)
        while not stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return OK
            wait_ms = 500 if remaining is None else max(1, min(500, int(remaining * 1000)))
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=1000)
            records = sorted((r for recs in batch.values() for r in recs),
                             key=lambda r: (r.timestamp, r.partition, r.offset))
            for record in records:
                event = kafka.decode_or_none(record)
                if not type_matches(event.type if event else None, args.type):
                    continue
                print(tail_line(record, event, json_out=args.json, full=args.full,
                                width=width), flush=True)
                printed += 1
                if args.limit and printed >= args.limit:
                    return OK
    return OK


def tail_line(record: Any, event: Any, *, json_out: bool, full: bool, width: int) -> str:
    headers = kafka.headers_of(record)
    if json_out:
        if event is not None:
            doc = event.model_dump(mode="json", exclude_none=True)
        else:
            doc = {"unreadable": (record.value or b"").decode("utf-8", "replace")}
        meta = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        if headers:
            meta["headers"] = headers
        return orjson.dumps({**meta, "event": doc}).decode()
    where = f"{record.partition}:{record.offset}"
    when = kafka.record_time(record)[:23]
    dead = (f"  [{headers['dlq-reason-code']} from {headers.get('dlq-source-topic')}]"
            if "dlq-reason-code" in headers else "")
    if event is None:
        raw = (record.value or b"").decode("utf-8", "replace")
        return f"{when}  {where}  (not a CloudEvent){dead}  {raw[:100]!r}"
    head = f"{when}  {where}  {event.type}  {event.subject or '-'}{dead}  "
    body = compact(event.data, 1 << 30) if full else compact(
        event.data, max(60, width - len(head)))
    return head + body


# -- entry point ----------------------------------------------------------------------------

def _quiet_logs(verbose: bool) -> None:
    """Library logs go to stderr, and only with --verbose: stdout is for results."""
    level = logging.INFO if verbose else logging.CRITICAL
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING if verbose else logging.CRITICAL)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr),
                        wrapper_class=structlog.make_filtering_bound_logger(level))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return USAGE
    _quiet_logs(args.verbose)
    try:
        return asyncio.run(handler(args))
    except CliError as exc:
        print(f"mutualaid: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        # Ctrl-C: the consumers and producers were closed on the way out.
        if handler is cmd_billing_run:
            print(f"\ninterrupted: the run goes on in billing (`mutualaid billing status "
                  f"{args.date}`)", file=sys.stderr)
        return OK if handler is cmd_tail else 130
    except BrokenPipeError:  # `mutualaid tail ... | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


__all__ = ["build_parser", "main"]
