"""The billing benchmark's pieces, small (``benchmarks/billing_run.py``): a sharded sharing
run with one worker and with two gives the same charges and instructions, balances its
books, and charges every member on the roll exactly once. Nothing is written to
docs/benchmarks.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))

import billing_run  # noqa: E402

pytestmark = pytest.mark.e2e


async def test_a_small_run_balances_and_is_the_same_with_one_or_two_workers(
        tmp_path: Path) -> None:
    res = await billing_run.bench(20_000, 50, [1, 2], shard_tasks=16, baseline=True,
                                  decode_all=True, run_dir=tmp_path,
                                  say=lambda _text: None)
    assert [r.workers for r in res.runs] == [1, 2]
    for r in res.runs:
        assert r.money_event_ok and r.money_db_ok, r.plans
        assert r.one_charge_each, r.db
        assert r.db["rows"] == r.db["roll"] == r.members == res.seeded.members
        assert r.duplicate_batches == 0
        assert r.instruction_set is not None
        assert len(r.instruction_set) == r.debit_instructions + r.credit_instructions
        assert r.instructions_read == len(r.instruction_set)
        assert r.samples_checked > 0
    one, two = res.runs
    assert one.digest == two.digest
    assert one.instruction_set == two.instruction_set
    assert one.plans == two.plans
    assert res.identical
    assert res.baseline is not None and res.baseline.money_ok
    assert res.baseline.rows == res.seeded.members
