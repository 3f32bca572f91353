"""Planning cost at real model sizes: the pilot round of an adaptive layer × bit campaign.

``resnet18`` (11.2 M weights) stratified by layer × bit has 672 strata and 357 M cells. A
stratum's trials walk a seeded permutation of its cells (sampling without replacement). This
benchmark plans the campaign's first round (4 pilot trials per stratum) twice, in one run:

* ``faultlab`` — ``FaultEngine.plan`` as the coordinator calls it (strata up to 65,536 cells
  use a stored numpy permutation, larger ones the keyed Feistel permutation of
  ``workers/faults/cells.py``, one cell at a time);
* ``stored_permutations`` — the same strata with a stored numpy permutation each (what
  faultlab did before, and what ``Generator.permutation`` / ``choice(replace=False)`` over a
  stratum needs), kept as the earlier planner's 256-entry cache kept them.

PyTorchFI and MRFI draw fault locations with replacement and hold no plan, so they have no
figure here. Prints, last, one JSON line: each side's seconds and resident-memory growth
(MB), and ``speedup`` / ``memory_ratio`` (stored permutations over faultlab).

Run: ``python bench/planning.py`` (``resnet18`` trains for about 10 minutes on first use and
is cached after; ``--model resnet_small`` is a quick run).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import numpy as np

from faultlab.spec import parse_spec
from faultlab.workers.faults.engine import FaultEngine
from faultlab.workers.faults.planning import strata


def rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--dataset", default="shapes32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    engine = FaultEngine()
    spec = parse_spec({"kind": "faults", "seed": args.seed, "model": {"name": args.model},
                       "dataset": {"name": args.dataset, "size": 16},
                       "faults": {"sampling": "adaptive", "stratify": ["layer", "bit"],
                                  "margin": 0.05, "pilot_trials": 4}})
    prepared = engine.prepare(spec)
    all_strata = strata(engine.params(spec), prepared.meta)

    before = rss_mb()
    start = time.perf_counter()
    trials = engine.plan(spec, prepared.meta, 0, [])
    ours = time.perf_counter() - start
    ours_mb = rss_mb() - before

    before = rss_mb()
    start = time.perf_counter()
    kept: list[Any] = []
    for i, st in enumerate(all_strata):
        perm = np.random.default_rng(i).permutation(st.cells)
        _ = [int(perm[j]) for j in range(min(4, st.cells))]
        kept = (kept + [perm])[-256:]
    theirs = time.perf_counter() - start
    theirs_mb = rss_mb() - before

    cells = sum(st.cells for st in all_strata)
    out = {"benchmark": "planning", "model": args.model, "strata": len(all_strata),
           "cells": cells, "trials": len(trials),
           "faultlab_seconds": round(ours, 3), "faultlab_rss_growth_mb": round(ours_mb, 1),
           "stored_permutations_seconds": round(theirs, 3),
           "stored_permutations_rss_growth_mb": round(theirs_mb, 1),
           "speedup": round(theirs / ours, 1) if ours else None,
           "memory_ratio": round(theirs_mb / max(ours_mb, 1.0), 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
