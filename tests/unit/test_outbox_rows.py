"""How the outbox stores records: runs of one topic and headers share rows, and reading the
rows back gives every record, in order, as it was staged."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mutualaid.runtime import outbox
from mutualaid.runtime.outbox import OutgoingRecord

pytestmark = pytest.mark.domain

HEADERS = ({"content-type": "application/cloudevents+json"}, {"dlq-reason-code": "MALFORMED"})

records = st.lists(st.builds(
    OutgoingRecord,
    topic=st.sampled_from(["a.events", "a.dlq"]),
    value=st.binary(max_size=30),
    key=st.none() | st.binary(max_size=12),
    headers=st.sampled_from(HEADERS)), max_size=80)


def stored(staged: list[OutgoingRecord], *sizes: int) -> list[dict[str, object]]:
    """The rows ``stage`` would COPY, as the relay reads them back (ids in order)."""
    return [{"id": i, "topic": topic, "key": key, "payload": payload, "headers": headers,
             "records": count}
            for i, (topic, key, payload, headers, count) in enumerate(
                outbox._rows(staged, *sizes))]


@settings(max_examples=300)
@given(records, st.integers(min_value=2, max_value=6), st.integers(min_value=2, max_value=9))
def test_rows_give_back_every_record_in_order(staged, bundle_min, bundle_max):
    rows = stored(staged, bundle_min, bundle_max)
    back = outbox.unpack(rows)  # type: ignore[arg-type]
    assert [(r.topic, r.key, r.value, r.headers) for r in back] == [
        (r.topic, r.key, r.value, r.headers) for r in staged]
    assert all(1 <= row["records"] <= bundle_max for row in rows)
    assert sum(row["records"] for row in rows) == len(staged)
    # a record stands alone only where its run is short (or a bundle's remainder of one)
    runs, start = [], 0
    for end in range(1, len(staged) + 1):
        if end == len(staged) or (staged[end].topic, staged[end].headers) != (
                staged[end - 1].topic, staged[end - 1].headers):
            runs.append(end - start)
            start = end
    assert len(rows) == sum(n if n < bundle_min else -(-n // bundle_max) for n in runs)


def test_a_long_run_takes_few_rows_and_a_short_one_a_row_each():
    run = [OutgoingRecord("a.events", f"v{i}".encode(), f"k{i}".encode(), HEADERS[0])
           for i in range(outbox.BUNDLE_MAX * 2 + 3)]
    short = [OutgoingRecord("a.dlq", b"x", None, HEADERS[1])] * (outbox.BUNDLE_MIN - 1)
    rows = stored([*run, *short])
    assert [r["records"] for r in rows] == [outbox.BUNDLE_MAX, outbox.BUNDLE_MAX, 3] + [1] * len(
        short)
    assert rows[0]["key"] is None and rows[-1]["payload"] == b"x"


@pytest.mark.parametrize("count_change", [-1, 1])
def test_a_row_whose_payload_does_not_match_its_count_is_refused(count_change):
    rows = stored([OutgoingRecord("a.events", b"v", b"k", HEADERS[0])] * outbox.BUNDLE_MIN)
    rows[0]["records"] = outbox.BUNDLE_MIN + count_change
    with pytest.raises((ValueError, struct.error)):
        outbox.unpack(rows)  # type: ignore[arg-type]
