"""Reads one event topic for a benchmark and counts events by type, without decoding each
one fully: the reader must not be what limits the figure. Events of the types named in
``keep`` are decoded and kept, and rejections are counted by reason code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer


class EventCounter:
    def __init__(self, bootstrap: str, topic: str, *, keep: Iterable[str] = ()) -> None:
        self.counts: dict[bytes, int] = {}
        self.reasons: dict[str, int] = {}
        self.kept: list[dict[str, Any]] = []
        self._keep = {k.encode() for k in keep}
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                          auto_offset_reset="earliest",
                                          fetch_max_bytes=64 * 1024 * 1024,
                                          max_partition_fetch_bytes=16 * 1024 * 1024)

    async def run(self) -> None:
        await self._consumer.start()
        try:
            while True:
                for records in (await self._consumer.getmany(timeout_ms=200,
                                                             max_records=20_000)).values():
                    for r in records:
                        self._take(r.value)
        finally:
            await self._consumer.stop()

    def _take(self, value: bytes) -> None:
        start = value.find(b'"type":"') + 8
        kind = value[start:value.find(b'"', start)]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind.endswith(b".CommandRejected"):
            code = orjson.loads(value)["data"]["reason_code"]
            self.reasons[code] = self.reasons.get(code, 0) + 1
        elif kind in self._keep:
            self.kept.append(orjson.loads(value))

    def of(self, *kinds: str) -> int:
        return sum(self.counts.get(k.encode(), 0) for k in kinds)

    def kept_data(self, kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.kept if e["type"] == kind]
