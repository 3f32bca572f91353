"""Run a whole campaign in this process, without the service: the reference loop.

Used by engine tests, by benchmarks as the "plain in-process loop" baseline, and for
debugging an engine. The coordinator does the same steps, spread over Ray with a store.
"""

from __future__ import annotations

from typing import Any

from faultlab.report import Report
from faultlab.spec import CampaignSpec, parse_spec
from faultlab.workers import get_engine
from faultlab.workers.engine import TrialRecord


def run_local(
    spec: CampaignSpec | dict[str, Any] | str, shard_size: int = 64
) -> tuple[Report, list[TrialRecord]]:
    """Validates, prepares, plans every round, runs all shards and aggregates, in-process."""
    spec = parse_spec(spec)
    engine = get_engine(spec.kind)
    engine.validate(spec)
    prepared = engine.prepare(spec)
    records: list[TrialRecord] = []
    round_index = 0
    while True:
        trials = engine.plan(spec, prepared.meta, round_index, list(records))
        if not trials:
            break
        pairs = engine.keyed(spec, prepared.meta, trials)
        for i in range(0, len(pairs), shard_size):
            chunk = pairs[i : i + shard_size]
            results = engine.run_shard(prepared.context, [t for _, t in chunk])
            records += [TrialRecord(k, t, r) for (k, t), r in zip(chunk, results, strict=True)]
        round_index += 1
    return engine.aggregate(spec, prepared.meta, records), records
