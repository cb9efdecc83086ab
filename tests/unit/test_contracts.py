"""The wire contract (SPEC §8): CloudEvents envelope, message registry, naming, topics,
immutability, money fields and the CommandRejected outcome."""

from __future__ import annotations

import re
import types
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import orjson
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

import mutualaid.contracts as contracts
from mutualaid.contracts import (
    CloudEvent,
    Command,
    CommandRejected,
    Event,
    Message,
    decode,
    encode,
    envelope,
    message_class,
    registered_types,
    rejected,
    topics,
)
from mutualaid.contracts.billing import PaymentInstructionBatch
from mutualaid.contracts.envelope import encode_event, loose_id

TYPES = registered_types()
TYPE_NAMES = sorted(TYPES)
SERVICES = ("membership", "claims", "publicity", "jury", "billing")


# -- a hypothesis strategy for any contract model, derived from its pydantic fields ------
#
# st.from_type/st.builds cannot see pydantic's constraints (lengths, bounds, patterns), so
# the strategy reads them from each field's metadata instead.

_TEXT = st.characters(exclude_categories=("Cs",))  # no lone surrogates: not encodable UTF-8


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_constraints(item.metadata))
        elif isinstance(item, annotated_types.MinLen):
            found["min_len"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            found["max_len"] = item.max_length
        elif isinstance(item, annotated_types.Ge):
            found["ge"] = item.ge
        elif isinstance(item, annotated_types.Le):
            found["le"] = item.le
        elif getattr(item, "pattern", None):
            found["pattern"] = item.pattern
    return found


def strategy_for(annotation: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    c = _constraints(metadata or [])
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return strategy_for(base, [*(metadata or []), *extra])
    if origin in (Union, types.UnionType):
        return st.one_of([strategy_for(arg, metadata) for arg in get_args(annotation)])
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if origin is tuple:
        item, ellipsis = get_args(annotation)
        assert ellipsis is Ellipsis
        low = c.get("min_len", 0)
        return st.lists(strategy_for(item), min_size=low, max_size=max(low, 3)).map(tuple)
    if origin is dict:
        key, value = get_args(annotation)
        assert key is str and value is Any, annotation
        json_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                                st.text(_TEXT, max_size=20))
        return st.dictionaries(st.text(_TEXT, max_size=10), json_values, max_size=4)
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        # JSON numbers on this wire are 64-bit (orjson); no contract int means more than that
        return st.integers(c.get("ge", -(2**63)), c.get("le", 2**63 - 1))
    if annotation is str:
        if "pattern" in c:
            return st.from_regex(c["pattern"], fullmatch=True)
        return st.text(_TEXT, min_size=c.get("min_len", 0),
                       max_size=min(c.get("max_len", 40), 40))
    if annotation is date:
        return st.dates()
    if annotation in (datetime, pydantic.AwareDatetime, pydantic.NaiveDatetime):
        zones: list[Any] = [UTC, timezone(timedelta(hours=8)),
                            timezone(timedelta(hours=-5, minutes=-30))]
        if annotation is not pydantic.AwareDatetime:
            zones.append(None)
        if annotation is pydantic.NaiveDatetime:
            zones = [None]
        return st.datetimes(timezones=st.sampled_from(zones))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_strategy(annotation)
    raise NotImplementedError(f"no strategy for {annotation!r}; extend strategy_for")


def model_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    return st.builds(model, **{name: strategy_for(f.annotation, f.metadata)
                               for name, f in model.model_fields.items()})


def nested_models(model: type[BaseModel], seen: set[type[BaseModel]] | None = None
                  ) -> set[type[BaseModel]]:
    """``model`` and every model reachable through its fields."""
    seen = set() if seen is None else seen
    if model in seen:
        return seen
    seen.add(model)

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested_models(annotation, seen)
        for arg in get_args(annotation):
            walk(arg)

    for f in model.model_fields.values():
        walk(f.annotation)
    return seen


ALL_MODELS = sorted(set().union(*(nested_models(t) for t in TYPES.values())),
                    key=lambda m: m.__name__)


def money_fields() -> list[tuple[type[BaseModel], str]]:
    return [(m, name) for m in ALL_MODELS for name in m.model_fields if name.endswith("_fen")]


# -- the registry and naming -----------------------------------------------------------


@pytest.mark.domain
def test_every_spec_minimum_message_is_registered() -> None:
    spec_commands = {
        "membership": ["JoinPlan", "LeavePlan", "TransferPlan"],
        "claims": ["FileClaim", "RecordInvestigation", "ReviewClaim", "WithdrawClaim"],
        "publicity": ["FileObjection", "OpenPublicityRound", "ClosePublicityRound"],
        "jury": ["QualifyJuror", "CastVote", "CloseVoting"],
        "billing": ["RunSharingPeriod"],
    }
    for service, names in spec_commands.items():
        for name in names:
            cls = message_class(f"{service}.{name}")
            assert cls is not None and issubclass(cls, Command), f"{service}.{name}"
    spec_events = [
        "MemberJoined", "MemberLeft", "MemberLapsed", "MemberTransferred",
        "MemberCoverageEnded", "ClaimFiled", "ClaimReviewed", "CaseReadyForPublicity",
        "CasePublished", "ObjectionFiled", "PublicityPassed", "CaseDisputed", "PanelDrawn",
        "VoteCast", "JuryVerdict", "CaseApproved", "CaseRejected", "SharingAnnounced",
        "SharingPeriodCompleted", "PaymentInstructionBatch", "PayerArrearsLimitReached",
    ]
    event_names = {t.split(".", 1)[1] for t, cls in TYPES.items() if issubclass(cls, Event)}
    assert set(spec_events) <= event_names
    for service in SERVICES:
        assert issubclass(TYPES[f"{service}.CommandRejected"], CommandRejected)
    assert message_class("membership.NoSuchThing") is None


@pytest.mark.domain
@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_type_is_service_dot_name_matching_module_and_topic(type_name: str) -> None:
    cls = TYPES[type_name]
    assert cls.TYPE == type_name
    assert re.fullmatch(r"[a-z]+\.[A-Z][A-Za-z]+", type_name)
    service, name = type_name.split(".")
    assert cls.service() == service
    assert cls.__name__.endswith(name)
    module = cls.__module__.rsplit(".", 1)[-1]
    if issubclass(cls, Command):
        # commands are read from <service>.commands, defined in the service's module
        assert service in SERVICES and module == service
        assert topics.commands(service) in topics.all_topics()
        return
    assert issubclass(cls, Event)
    topic = cls.topic()
    assert topic in topics.all_topics()
    assert topic.split(".", 1)[0] == service
    if issubclass(cls, CommandRejected):
        assert module == "rejection" and service in SERVICES
    elif service == "payments":
        # the payment system's results are modelled next to billing, which consumes them
        assert module == "billing"
    else:
        assert module == service


# Verbs the command names use. Adding a command with a new verb means adding it here.
IMPERATIVE_VERBS = {"Join", "Leave", "Erase", "Transfer", "File", "Record", "Review", "Withdraw",
                    "Open", "Close", "Qualify", "Cast", "Run", "Import", "End", "Appeal",
                    "Start", "Report", "Settle"}


def words(name: str) -> list[str]:
    return re.findall(r"[A-Z][a-z]*", name)


@pytest.mark.domain
@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_commands_are_imperative_and_events_are_not(type_name: str) -> None:
    cls = TYPES[type_name]
    name = type_name.split(".", 1)[1]
    if issubclass(cls, Command):
        assert cls.__name__ == name
        assert words(name)[0] in IMPERATIVE_VERBS, name
        assert not name.endswith("ed"), name
    else:
        assert issubclass(cls, Event)
        assert words(name)[0] not in IMPERATIVE_VERBS, name


@pytest.mark.domain
def test_every_message_names_a_subject_field() -> None:
    for cls in TYPES.values():
        assert cls.SUBJECT in cls.model_fields, cls.TYPE


# -- immutability, extra fields, money -------------------------------------------------


@pytest.mark.domain
@pytest.mark.parametrize("type_name", TYPE_NAMES)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_messages_are_frozen_and_forbid_extra_fields(type_name: str, data: st.DataObject
                                                     ) -> None:
    cls = TYPES[type_name]
    msg = data.draw(model_strategy(cls))
    for field in cls.model_fields:
        with pytest.raises(pydantic.ValidationError):
            setattr(msg, field, getattr(msg, field))
    dumped = msg.model_dump(mode="json")
    with pytest.raises(pydantic.ValidationError):
        cls.model_validate({**dumped, "unexpected_field": 1})
    with pytest.raises(pydantic.ValidationError):
        cls.model_validate_json(orjson.dumps({**dumped, "unexpected_field": 1}))


@pytest.mark.domain
def test_nested_models_are_frozen_and_forbid_extra_fields() -> None:
    nested = [m for m in ALL_MODELS if not issubclass(m, Message)]
    assert {m.__name__ for m in nested} >= {"Document", "InstructionLine", "PaymentInstruction",
                                            "PlanTotals"}
    for model in nested:
        assert model.model_config.get("frozen") is True, model.__name__
        assert model.model_config.get("extra") == "forbid", model.__name__


@pytest.mark.domain
def test_there_are_money_fields_to_check() -> None:
    names = {f"{m.__name__}.{n}" for m, n in money_fields()}
    assert {"ClaimFiled.benefit_fen", "CaseApproved.benefit_fen", "SharingAnnounced.fee_fen",
            "SharingAnnounced.subsidy_fen", "PaymentInstruction.amount_fen",
            "InstructionLine.amount_fen", "PlanTotals.member_debits_fen",
            "PaymentSucceeded.amount_fen"} <= names


@pytest.mark.domain
@pytest.mark.parametrize("model,field", money_fields(),
                         ids=[f"{m.__name__}.{n}" for m, n in money_fields()])
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_money_fields_are_non_negative_integer_fen(model: type[BaseModel], field: str,
                                                   data: st.DataObject) -> None:
    info = model.model_fields[field]
    assert info.annotation is int
    good = data.draw(model_strategy(model)).model_dump(mode="json")
    assert isinstance(good[field], int) and good[field] >= 0
    for ok in (0, 1, 30_000_000, 10**15):
        assert getattr(model.model_validate({**good, field: ok}), field) == ok
        assert getattr(model.model_validate_json(orjson.dumps({**good, field: ok})), field) == ok
    for bad in (12.5, 12.0, -1, "12", True, None):
        with pytest.raises(pydantic.ValidationError):
            model.model_validate({**good, field: bad})
    for raw in (b"12.5", b"12.0", b"-1", b'"12"', b"1e3"):
        doc = orjson.dumps({**good, field: 0}).replace(f'"{field}":0'.encode(),
                                                      f'"{field}":'.encode() + raw)
        assert raw in doc
        with pytest.raises(pydantic.ValidationError):
            model.model_validate_json(doc)


# -- envelope --------------------------------------------------------------------------


@pytest.mark.domain
@pytest.mark.parametrize("type_name", TYPE_NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_envelope_round_trip_for_every_type(type_name: str, data: st.DataObject) -> None:
    cls = TYPES[type_name]
    msg = data.draw(model_strategy(cls), label="message")
    correlation = data.draw(st.none() | st.uuids().map(str), label="correlationid")
    event = envelope(msg, source=f"/{msg.service()}", correlationid=correlation)
    raw = encode(event)
    back = decode(raw)

    assert back == event
    assert back.specversion == "1.0" and back.type == type_name
    assert back.id == event.id and back.source == f"/{msg.service()}"
    assert back.subject == msg.subject() == str(getattr(msg, cls.SUBJECT))
    assert back.datacontenttype == "application/json"
    assert back.correlationid == correlation
    assert back.time is not None and back.time.tzinfo is not None
    model = message_class(back.type)
    assert model is cls
    assert model.model_validate(back.data) == msg
    # and the data travels as plain JSON
    assert orjson.loads(raw)["data"] == msg.model_dump(mode="json")


@pytest.mark.domain
@pytest.mark.parametrize("type_name", TYPE_NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_event_encoding_decodes_to_the_same_envelope(type_name: str,
                                                          data: st.DataObject) -> None:
    """The outbox's splicing encoder and the envelope model agree on every type, strings
    with quotes, control characters and non-ASCII included."""
    msg = data.draw(model_strategy(TYPES[type_name]), label="message")
    printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1,
                        max_size=40)
    correlation = data.draw(st.none() | printable, label="correlationid")
    event_id = data.draw(printable, label="id")
    at = datetime(2020, 1, 14, 1, 2, 3, tzinfo=UTC)
    fast = encode_event(msg, source="/x", id=event_id, time="2020-01-14T01:02:03Z",
                        correlationid=correlation)
    model = envelope(msg, source="/x", correlationid=correlation, id=event_id, time=at)
    assert decode(fast) == model
    assert orjson.loads(fast) == orjson.loads(encode(model))


@pytest.mark.domain
def test_envelope_keeps_given_id_and_time() -> None:
    msg = TYPES["billing.RunSharingPeriod"](sharing_date=date(2020, 1, 14))
    at = datetime(2020, 1, 14, 1, 2, 3, tzinfo=UTC)
    event = envelope(msg, source="/scheduler", correlationid="c-1", id="cmd-1", time=at)
    doc = orjson.loads(encode(event))
    assert doc["id"] == "cmd-1" and doc["subject"] == "2020-01-14"
    assert doc["correlationid"] == "c-1"
    assert datetime.fromisoformat(doc["time"].replace("Z", "+00:00")) == at
    assert doc["type"] == "billing.RunSharingPeriod"
    assert doc["data"] == {"sharing_date": "2020-01-14", "plans": None, "dry_run": False,
                           "draft_rulebook": None}
    other = envelope(msg, source="/scheduler", correlationid=None)
    assert other.id != envelope(msg, source="/scheduler", correlationid=None).id  # fresh ids


VALID = {"specversion": "1.0", "id": "e-1", "source": "/x", "type": "membership.JoinPlan",
         "data": {}}


@pytest.mark.domain
def test_cloudevent_minimal_valid_document() -> None:
    ev = decode(orjson.dumps(VALID))
    assert (ev.specversion, ev.id, ev.source, ev.type) == ("1.0", "e-1", "/x",
                                                           "membership.JoinPlan")
    assert ev.datacontenttype == "application/json"


@pytest.mark.domain
@pytest.mark.parametrize("missing", ["specversion", "id", "source", "type"])
def test_cloudevent_requires_core_attributes(missing: str) -> None:
    doc = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(ValueError):
        decode(orjson.dumps(doc))
    with pytest.raises(pydantic.ValidationError):
        CloudEvent(**doc)


@pytest.mark.domain
@pytest.mark.parametrize("change", [
    {"specversion": "0.3"}, {"specversion": "1"}, {"specversion": 1.0}, {"id": ""},
    {"source": ""}, {"type": ""}, {"type": "JoinPlan"},
])
def test_cloudevent_rejects_bad_core_attributes(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        decode(orjson.dumps({**VALID, **change}))


@pytest.mark.domain
@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b"[]", b'"text"', b"null"])
def test_decode_rejects_what_is_not_a_cloudevent(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(raw)


@pytest.mark.domain
def test_unknown_extension_attributes_are_kept() -> None:
    doc = {**VALID, "traceparent": "00-abc-def-01", "partitionkey": "m-1",
           "tenant": {"region": "cn"}}
    ev = decode(orjson.dumps(doc))
    assert ev.model_extra == {"traceparent": "00-abc-def-01", "partitionkey": "m-1",
                              "tenant": {"region": "cn"}}
    again = orjson.loads(encode(ev))
    assert again["traceparent"] == "00-abc-def-01"
    assert again["partitionkey"] == "m-1" and again["tenant"] == {"region": "cn"}


@pytest.mark.domain
@pytest.mark.parametrize("raw,expected", [
    (b'{"id": "abc", "specversion": "0.3"}', "abc"),  # JSON, not a valid CloudEvent
    (b'{"id": "cmd-7", "type": "membership.NoSuch", "data": 5}', "cmd-7"),
    (orjson.dumps({**VALID, "id": "x" * 300, "specversion": "2"}), "x" * 256),
    (b'{"id": ""}', None),
    (b'{"id": 42}', None),
    (b'{"no_id": true}', None),
    (b'["id", "abc"]', None),
    (b"not json at all", None),
    (b'{"id": "abc"', None),
    (b"", None),
    (b"\xff\xfe", None),
])
def test_loose_id(raw: bytes, expected: str | None) -> None:
    assert loose_id(raw) == expected
    if expected is not None:
        with pytest.raises(ValueError):
            decode(raw)  # only the loose reader gets the id out


# -- topics ----------------------------------------------------------------------------


SPEC_TOPICS = {
    *(f"{s}.commands" for s in SERVICES),
    *(f"{s}.events" for s in SERVICES),
    *(f"{s}.dlq" for s in SERVICES),
    "billing.payment-instructions",
    "payments.results",
}


@pytest.mark.domain
def test_all_topics_contains_every_topic_of_the_spec() -> None:
    names = topics.all_topics()
    assert SPEC_TOPICS <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.domain
@pytest.mark.parametrize("type_name", [t for t in TYPE_NAMES if issubclass(TYPES[t], Event)])
def test_event_topic(type_name: str) -> None:
    cls = TYPES[type_name]
    if cls is PaymentInstructionBatch:
        expected = "billing.payment-instructions"
    elif type_name == "billing.ShardAssigned":
        expected = "billing.shard-tasks"  # the billing workers' queue, not public events
    elif type_name == "billing.ShardCompleted":
        expected = "billing.shard-results"
    elif type_name.startswith("payments."):
        expected = "payments.results"
    else:
        expected = f"{type_name.split('.', 1)[0]}.events"
    assert cls.topic() == expected


# -- CommandRejected -------------------------------------------------------------------


@pytest.mark.domain
@pytest.mark.parametrize("service", SERVICES)
def test_rejected_is_service_command_rejected_with_spec_fields(service: str) -> None:
    ev = rejected(service, command_id="cmd-1", command_type=f"{service}.Something",
                  reason_code="INVALID_DATA", message="bad data")
    assert isinstance(ev, CommandRejected) and isinstance(ev, Event)
    assert ev.TYPE == f"{service}.CommandRejected"
    assert message_class(ev.TYPE) is type(ev)
    assert set(type(ev).model_fields) == {"command_id", "command_type", "reason_code",
                                          "message"}
    assert ev.model_dump() == {"command_id": "cmd-1", "command_type": f"{service}.Something",
                               "reason_code": "INVALID_DATA", "message": "bad data"}
    assert ev.topic() == f"{service}.events"
    assert ev.subject() == "cmd-1"
    wire = decode(encode(envelope(ev, source=f"/{service}", correlationid="c")))
    assert wire.type == f"{service}.CommandRejected" and wire.subject == "cmd-1"
    assert message_class(wire.type).model_validate(wire.data) == ev


@pytest.mark.domain
def test_rejected_truncates_long_messages_and_needs_a_command_id() -> None:
    ev = rejected("claims", command_id="c", command_type="claims.FileClaim",
                  reason_code="MALFORMED", message="x" * 5000)
    assert ev.message == "x" * 2000
    with pytest.raises(pydantic.ValidationError):
        rejected("claims", command_id="", command_type="?", reason_code="MALFORMED",
                 message="no id")
    with pytest.raises(KeyError):
        rejected("payments", command_id="c", command_type="?", reason_code="X", message="")


@pytest.mark.domain
def test_reason_codes_are_plain_strings_on_the_wire() -> None:
    ev = rejected("jury", command_id="c", command_type="jury.CastVote",
                  reason_code=contracts.ReasonCode.UNKNOWN_TYPE, message="?")
    assert orjson.loads(encode(envelope(ev, source="/jury", correlationid=None)))["data"][
        "reason_code"] == "UNKNOWN_TYPE"
