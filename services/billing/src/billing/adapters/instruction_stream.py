"""Debit instructions straight to Kafka, encoded without a model per instruction.

A period of tens of millions of members makes millions of debits: they are built from the
stored charges deterministically, so they do not go through the outbox. A shard's debits
are sent (and acknowledged) before the shard's transaction commits; a worker that dies in
between leaves the shard to be priced again, which sends the same CloudEvent ids,
instruction ids and amounts, and consumers drop the copies (SPEC §7: idempotent re-runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import orjson
from aiokafka import AIOKafkaProducer

from billing.domain.instructions import batch_key, instruction_id
from mutualaid.contracts import topics
from mutualaid.contracts.billing import PaymentInstructionBatch
from mutualaid.contracts.envelope import JSON, SPECVERSION, STRUCTURED_CONTENT_TYPE, now_iso
from mutualaid.runtime.dispatch import event_id

_HEADERS = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]


def debit_batches(period_id: str, by_bucket: Mapping[int, Sequence[tuple[str, list[
        tuple[str, int]]]]], *, size: int, source: str, correlationid: str | None
                  ) -> list[tuple[bytes, bytes]]:
    """``(key, CloudEvent bytes)`` of every PaymentInstructionBatch of a shard: per bucket,
    payers in the given order, ``size`` instructions a batch. Event ids derive from period,
    bucket and batch number, so pricing a shard again yields the same events."""
    stamp = now_iso()
    out: list[tuple[bytes, bytes]] = []
    for bucket in sorted(by_bucket):
        payers = by_bucket[bucket]
        key = batch_key(bucket)
        for batch_no, start in enumerate(range(0, len(payers), size)):
            instructions = [
                {"instruction_id": instruction_id(period_id, "debit", payer), "kind": "debit",
                 "period_id": period_id, "account_id": payer,
                 "amount_fen": sum(a for _, a in lines), "case_id": None,
                 "lines": [{"member_id": m, "amount_fen": a} for m, a in lines]}
                for payer, lines in payers[start:start + size]]
            doc = {"specversion": SPECVERSION,
                   "id": event_id(f"{period_id}/debits/{key}", batch_no),
                   "source": source, "type": PaymentInstructionBatch.TYPE, "time": stamp,
                   "subject": key, "datacontenttype": JSON}
            if correlationid is not None:
                doc["correlationid"] = correlationid
            doc["data"] = {"period_id": period_id, "shard": key, "batch_no": batch_no,
                           "instructions": instructions}
            out.append((key.encode(), orjson.dumps(doc)))
    return out


async def send(producer: AIOKafkaProducer, batches: Sequence[tuple[bytes, bytes]]) -> None:
    """Queue every batch, then wait until the broker has acknowledged all of them."""
    futures = [await producer.send(topics.PAYMENT_INSTRUCTIONS, value, key=key,
                                   headers=_HEADERS)
               for key, value in batches]
    await asyncio.gather(*futures)
