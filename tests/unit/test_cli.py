"""The operator CLI without a platform: argument parsing, validation against the contracts,
the messages of expected failures, and the formatting of tables, notices and checks."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from mutualaid.cli import build_parser, main
from mutualaid.cli import kafka, ledger, output
from mutualaid.cli.main import (
    load_data, resolve_command, tail_line, type_matches, validate)
from mutualaid.cli.sharing import RunState, build_command
from mutualaid.contracts.billing import RunSharingPeriod
from mutualaid.contracts.envelope import CloudEvent
from mutualaid.contracts.membership import JoinPlan

pytestmark = pytest.mark.domain

JOIN = {"member_id": "m-1001", "payer_id": "m-1001", "plan": "critical_illness",
        "national_id": "110105199003070121", "name": "张三明", "relation": "self",
        "payer_credit_score": 700, "health_declaration": True, "chronic_conditions": [],
        "joined_on": "2020-01-02"}


# -- parsing --------------------------------------------------------------------------------

def test_global_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--bootstrap", "k:1", "--json", "billing", "status"])
    after = parser.parse_args(["billing", "status", "--bootstrap", "k:1", "--json"])
    for args in (before, after):
        assert args.bootstrap == "k:1" and args.json is True and args.limit == 30
    # Given before the command, not overridden by the sub-command's defaults.
    assert parser.parse_args(["--json", "notice", "2020-06-14"]).json is True


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9093")
    assert build_parser().parse_args(["tail", "x"]).bootstrap == "broker:9093"
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS")
    assert build_parser().parse_args(["tail", "x"]).bootstrap == "127.0.0.1:9092"
    monkeypatch.setenv("DATABASE_URL", "postgresql://a/shared")
    assert ledger.database_url(None) == "postgresql://a/shared"
    monkeypatch.setenv("BILLING_DATABASE_URL", "postgresql://a/billing")
    assert ledger.database_url(None) == "postgresql://a/billing"
    assert ledger.database_url("postgresql://given/db") == "postgresql://given/db"


def test_billing_commands_parse_dates_plans_and_the_draft_rulebook() -> None:
    parser = build_parser()
    run = parser.parse_args(["billing", "run", "2020-06-14", "--plan", "critical_illness",
                             "--plan", "elderly_cancer"])
    assert run.date == date(2020, 6, 14) and run.dry_run is False
    assert run.plan == ["critical_illness", "elderly_cancer"] and run.wait == 1800
    dry = parser.parse_args(["billing", "dry-run", "2020-06-28", "--draft-rulebook", "r.yaml"])
    assert dry.dry_run is True and dry.draft_rulebook == Path("r.yaml")
    assert parser.parse_args(["billing", "status"]).date is None


@pytest.mark.parametrize("argv, complaint", [
    (["billing", "run", "2020-13-01"], "not a date"),
    (["billing", "run", "2020-06-14", "--plan", "gold"], "invalid choice"),
    (["billing", "run", "2020-06-14", "--draft-rulebook", "r.yaml"], "unrecognized"),
    (["send", "payments", "X"], "invalid choice"),
    (["send", "membership", "JoinPlan", "--wait", "0"], "positive number"),
    (["dlq", "replay", "membership"], "one of the arguments --offset --all is required"),
    (["dlq", "list", "membership", "--limit", "-1"], "argument --limit"),
    (["billing"], "required"),
])
def test_bad_usage_exits_2_with_the_reason(argv: list[str], complaint: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert complaint in capsys.readouterr().err


def test_help_reads_well() -> None:
    text = build_parser().format_help()
    for words in ("send", "billing", "notice", "case", "dlq", "tail", "examples:",
                  "exit status", "KAFKA_BOOTSTRAP_SERVERS"):
        assert words in text


# -- send: contracts ------------------------------------------------------------------------

def test_commands_are_found_by_name_or_full_type() -> None:
    assert resolve_command("membership", "JoinPlan") is JoinPlan
    assert resolve_command("membership", "membership.JoinPlan") is JoinPlan


@pytest.mark.parametrize("name, message", [
    ("JoinPlann", "unknown command membership.JoinPlann. Did you mean JoinPlan?"),
    ("MemberJoined", "membership.MemberJoined is an event"),
    ("claims.FileClaim", "claims.FileClaim is not a membership command"),
    ("Nope", "membership commands: JoinPlan, ImportMembers"),
])
def test_events_and_unknown_commands_are_refused_with_the_valid_ones(name: str,
                                                                     message: str) -> None:
    with pytest.raises(output.CliError) as exc:
        resolve_command("membership", name)
    assert message in str(exc.value) and exc.value.code == output.USAGE


def test_data_is_read_from_text_a_file_or_stdin(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "join.json"
    file.write_text(json.dumps(JOIN), encoding="utf-8")
    assert load_data(f"@{file}") == JOIN == load_data(json.dumps(JOIN))
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(JOIN)))
    assert load_data("-") == JOIN
    with pytest.raises(output.CliError, match="cannot read the file"):
        load_data(f"@{tmp_path / 'missing.json'}")
    with pytest.raises(output.CliError, match="not JSON"):
        load_data("{member_id:")


def test_data_is_validated_against_the_contract() -> None:
    assert validate(JoinPlan, JOIN) == JoinPlan.model_validate(JOIN)
    with pytest.raises(output.CliError) as exc:
        validate(JoinPlan, {**JOIN, "plan": "gold", "joined_on": "yesterday"})
    text = str(exc.value)
    assert "does not match membership.JoinPlan" in text
    assert "plan: Input should be" in text and "(got \"gold\")" in text
    assert "joined_on:" in text and "--example" in text
    with pytest.raises(output.CliError, match="must be a JSON object"):
        validate(JoinPlan, [JOIN])


def test_send_prints_an_example_that_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "claims", "FileClaim", "--example"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert resolve_command("claims", "FileClaim").model_validate(data).case_id


def test_send_without_a_command_lists_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "billing"]) == 0
    out = capsys.readouterr().out
    assert "RunSharingPeriod" in out and "SettleArrears" in out
    assert main(["--json", "send", "publicity"]) == 0
    assert "FileObjection" in json.loads(capsys.readouterr().out)["commands"]


def test_invalid_data_fails_before_anything_is_sent(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    code = main(["--bootstrap", "127.0.0.1:1", "send", "membership", "JoinPlan", "--data",
                 json.dumps({**JOIN, "payer_credit_score": "high"})])
    err = capsys.readouterr().err
    assert code == output.USAGE and "payer_credit_score" in err and "Traceback" not in err


def test_an_unreachable_broker_or_database_is_one_clear_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bootstrap", "127.0.0.1:1", "send", "membership", "JoinPlan",
                 "--data", json.dumps(JOIN)]) == output.UNAVAILABLE
    err = capsys.readouterr().err
    assert "cannot reach the Kafka broker at 127.0.0.1:1" in err and "Traceback" not in err
    assert main(["--database-url", "postgresql://postgres:secret@127.0.0.1:1/x", "billing",
                 "status"]) == output.UNAVAILABLE
    err = capsys.readouterr().err
    assert "cannot connect to the database postgresql://postgres:***@127.0.0.1:1/x" in err
    assert "secret" not in err


def test_run_sharing_period_is_built_for_a_dry_run_only_with_its_draft() -> None:
    cmd = build_command(date(2020, 6, 14), None, dry_run=True, draft_rulebook="versions: []")
    assert cmd == RunSharingPeriod(sharing_date=date(2020, 6, 14), dry_run=True,
                                   draft_rulebook="versions: []")
    assert build_command(date(2020, 6, 14), ["elderly_cancer"], dry_run=False,
                         draft_rulebook=None).plans == ("elderly_cancer",)
    with pytest.raises(output.CliError, match="RunSharingPeriod"):
        build_command(date(2020, 6, 14), None, dry_run=True, draft_rulebook="x" * 300_000)


# -- following a run ------------------------------------------------------------------------

def ce(type_name: str, data: dict) -> CloudEvent:
    return CloudEvent(specversion="1.0", id=type_name + str(len(data)), source="t",
                      type=type_name, data=data)


def test_a_run_is_finished_when_every_period_is_announced_or_failed() -> None:
    started = ce("billing.SharingRunStarted", {"period_ids": ["d/a", "d/b"], "shards": 4,
                                               "members_sharing": 9})
    shard = [ce("billing.ShardCompleted", {"period_id": "d/a", "task_no": n, "members": 3})
             for n in (0, 1, 1)]  # a repeated report counts once
    state = RunState([started, *shard])
    assert not state.finished and state.shards_done == 2 and state.members_priced == 6
    announced = ce("billing.SharingAnnounced", {"period_id": "d/a"})
    assert not RunState([started, announced]).finished
    failed = ce("billing.SharingRunFailed", {"period_id": "d/b", "reason": "x"})
    assert RunState([started, announced, failed]).finished
    rejected = ce("billing.CommandRejected", {"reason_code": "ALREADY_APPLIED"})
    assert RunState([rejected]).finished and RunState([rejected]).rejected
    assert not RunState([]).finished


# -- formatting -----------------------------------------------------------------------------

def test_money_is_shown_in_yuan_to_the_fen() -> None:
    assert output.yuan(0) == "0.00" and output.yuan(5) == "0.05"
    assert output.yuan(32_400_000) == "324,000.00" and output.yuan(-101) == "-1.01"
    assert output.yuan(None) == "-"


def test_tables_align_names_left_and_numbers_right() -> None:
    text = output.table(("plan", "members"), [("critical_illness", "1,200"), ("x", "7")])
    lines = text.splitlines()
    assert lines[0] == "plan              members"
    assert lines[2].endswith("1,200") and lines[3] == "x                       7"


def test_the_progress_bar_shows_done_of_all() -> None:
    bar = output.render_bar(16, 64, "shards", 75.0, "9 members priced")
    assert bar.startswith("[#######-----------------------]  25%  16/64 shards  01:15")
    assert output.render_bar(0, 0, "shards", 0).startswith("[" + "#" * 30 + "] 100%")


NOTICE = {"plan": "critical_illness", "cases": 1, "benefits_fen": 30_000_000,
          "fee_fen": 2_400_000, "total_fen": 32_400_000, "members_sharing": 2_867,
          "base_share_fen": 11_301, "members_paying_one_fen_more": 33,
          "member_debits_fen": 32_400_000, "subsidy_fen": 0}


def test_the_notice_shows_each_plan_and_the_money_equation() -> None:
    text = ledger.notice_table([NOTICE])
    assert "critical_illness" in text and "300,000.00" in text and "24,000.00" in text
    assert "2,867" in text and "113.01" in text and text.rstrip().endswith("HOLDS")
    broken = ledger.notice_table([{**NOTICE, "subsidy_fen": 1}])
    assert broken.rstrip().endswith("BROKEN")


PERIOD = {"benefits_fen": 1_000, "fee_fen": 80, "total_fen": 1_080, "members_sharing": 7,
          "base_share_fen": 154, "paying_one_fen_more": 2, "member_debits_fen": 1_000,
          "subsidy_fen": 80}
CHARGES = {"members": 7, "member_pays": 1_000, "operator_pays": 80, "shares": 1_080,
           "plus_one": 2, "other_shares": 0, "bad_pays": 0}


def test_reconcile_checks_the_equation_from_the_charges() -> None:
    checks = ledger.period_checks(PERIOD, CHARGES)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    wrong = ledger.period_checks(PERIOD, {**CHARGES, "plus_one": 3, "other_shares": 1,
                                          "member_pays": 999})
    failed = {c.name for c in wrong if not c.ok}
    assert failed == {"members paying one fen more", "shares other than 154 or 155 fen",
                      "member debits = stored member debits",
                      "member debits + subsidy = benefits + fee"}
    # Nobody on the roll: no charges, the operator carries the whole total.
    empty = ledger.period_checks({**PERIOD, "members_sharing": 0, "member_debits_fen": 0,
                                  "subsidy_fen": 1_080, "paying_one_fen_more": 0},
                                 {k: 0 for k in CHARGES})
    assert all(c.ok for c in empty)


def test_reconcile_text_says_what_does_not_hold() -> None:
    good = ledger.PeriodCheck("2020-06-14/critical_illness", "critical_illness", "completed",
                              ledger.period_checks(PERIOD, CHARGES))
    bad = ledger.PeriodCheck("2020-06-14/elderly_cancer", "elderly_cancer", "completed",
                             ledger.period_checks(PERIOD, {**CHARGES, "members": 6}))
    running = ledger.PeriodCheck("2020-06-14/chronic_cancer", "chronic_cancer", "running",
                                 note="the period is running")
    text = ledger.reconcile_text(date(2020, 6, 14), [good, bad, running])
    assert "2020-06-14/critical_illness  HOLDS" in text
    assert "BAD charges stored = members sharing: expected 7, found 6" in text
    assert not running.holds and text.endswith("DOES NOT HOLD")
    with pytest.raises(output.CliError, match="no sharing period on 2020-06-14"):
        ledger.reconcile_text(date(2020, 6, 14), [])


def test_passwords_are_not_shown() -> None:
    assert ledger.redact("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert ledger.redact("postgresql://u@h/d") == "postgresql://u@h/d"


# -- dead letters and tail ------------------------------------------------------------------

def letter(partition: int, offset: int) -> kafka.DeadLetter:
    return kafka.DeadLetter(partition, offset, "2020-06-14T00:00:00.000Z",
                            {"dlq-reason-code": "MALFORMED",
                             "dlq-source-topic": "membership.commands",
                             "dlq-source-offset": "41"}, b"k", b"{bad")


def test_dead_letters_are_chosen_by_partition_and_offset() -> None:
    letters = [letter(0, 3), letter(1, 3), letter(2, 5)]
    assert kafka.select(letters, ["2:5", "5"], "m.dlq") == [letters[2]]
    assert kafka.select(letters, ["1:3"], "m.dlq") == [letters[1]]
    with pytest.raises(output.CliError, match=r"several partitions of m\.dlq \(0:3, 1:3\)"):
        kafka.select(letters, ["3"], "m.dlq")
    with pytest.raises(output.CliError, match="no dead letter at 0:9"):
        kafka.select(letters, ["0:9"], "m.dlq")
    with pytest.raises(output.CliError, match="partition:offset"):
        kafka.select(letters, ["x"], "m.dlq")
    described = letters[0].as_json()
    assert described["reason_code"] == "MALFORMED" and described["source_offset"] == 41
    assert described["value"] == "{bad" and described["ref"] == "0:3"


def record(value: bytes, headers: tuple = ()) -> ConsumerRecord:
    return ConsumerRecord(topic="membership.events", partition=1, offset=7,
                          timestamp=1_592_100_000_000, timestamp_type=0, key=b"m-1",
                          value=value, checksum=None, serialized_key_size=3,
                          serialized_value_size=len(value), headers=list(headers))


def test_tail_filters_by_type_and_prints_one_line_per_event() -> None:
    assert type_matches("membership.MemberJoined", ["MemberJoined"])
    assert type_matches("membership.MemberJoined", ["membership.MemberJoined"])
    assert not type_matches("membership.MemberLeft", ["MemberJoined"])
    assert not type_matches(None, ["MemberJoined"]) and type_matches(None, None)
    event = ce("membership.MemberJoined", {"member_id": "m-1", "plan": "critical_illness"})
    raw = event.model_dump_json().encode()
    line = tail_line(record(raw), event, json_out=False, full=False, width=200)
    assert line.startswith("2020-06-14T02:00:00.000  1:7  membership.MemberJoined")
    assert '"plan":"critical_illness"' in line
    doc = json.loads(tail_line(record(raw), event, json_out=True, full=False, width=80))
    assert doc["offset"] == 7 and doc["event"]["data"]["member_id"] == "m-1"
    dead = tail_line(record(b"\x00junk", (("dlq-reason-code", b"MALFORMED"),
                                          ("dlq-source-topic", b"x.commands"))), None,
                     json_out=False, full=False, width=80)
    assert "(not a CloudEvent)  [MALFORMED from x.commands]" in dead


def test_a_replay_with_a_new_id_is_a_new_message_correlated_with_the_old() -> None:
    original = {"specversion": "1.0", "id": "c-1", "source": "s", "type": "claims.FileClaim",
                "data": {"case_id": "c"}}
    dead = kafka.DeadLetter(1, 4, "t", {}, b"c", json.dumps(original).encode())
    assert dead.event_id == "c-1"
    value, new_id = kafka.with_new_id(dead)
    doc = json.loads(value)
    assert new_id == doc["id"] == "c-1+replay-1-4" and doc["correlationid"] == "c-1"
    assert {k: v for k, v in doc.items() if k not in ("id", "correlationid")} == {
        k: v for k, v in original.items() if k != "id"}
    assert kafka.with_new_id(dead) == (value, new_id)  # the same letter: the same new id
    long = kafka.DeadLetter(0, 0, "t", {}, None, json.dumps({**original, "id": "x" * 256})
                            .encode())
    assert len(kafka.with_new_id(long)[1] or "") <= 256
    unreadable = letter(0, 1)
    assert kafka.with_new_id(unreadable) == (b"{bad", None) and unreadable.event_id is None
