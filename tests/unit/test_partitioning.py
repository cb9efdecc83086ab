"""The relay's batch partitioning places every key exactly where the producer's own
murmur2 partitioner would (aiokafka's, the Java client's)."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from mutualaid.runtime.partitioning import murmur2_many, partitions_for_keys

pytestmark = pytest.mark.domain


@given(st.lists(st.binary(max_size=64), max_size=50))
def test_murmur2_many_equals_murmur2_for_every_key(keys):
    assert murmur2_many(keys).tolist() == [murmur2(k) for k in keys]


@given(st.lists(st.text(max_size=40).map(str.encode), min_size=1, max_size=50),
       st.integers(min_value=1, max_value=64))
def test_partitions_for_keys_equals_the_default_partitioner(keys, count):
    partitions = list(range(count))
    expected = [DefaultPartitioner()(k, partitions, partitions) for k in keys]
    assert partitions_for_keys(keys, partitions) == expected


def test_known_values_of_kafka_murmur2():
    # Values of org.apache.kafka.common.utils.Utils.murmur2 (also in kafka-python's tests).
    assert murmur2_many([b"", b"a", b"ab", b"abc", b"123", b"\x00\x01\x02\x03\x04"]).tolist() \
        == [murmur2(k) for k in (b"", b"a", b"ab", b"abc", b"123", b"\x00\x01\x02\x03\x04")]
    assert partitions_for_keys([b"m-1", b"m-1"], [0, 1, 2]) == \
        [DefaultPartitioner()(b"m-1", [0, 1, 2], [0, 1, 2])] * 2
