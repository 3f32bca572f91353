"""A fault campaign's context carries its evaluation inputs, not the split they were cut from.

The context travels from the prepare task through Ray's object store to every worker, once per
campaign. Pickling a tensor view writes its whole storage: 16 ``shapes32`` images sliced from
their split once shipped the whole split (25 MB for a 0.2 MB eval set)."""

from __future__ import annotations

import pickle

from faultlab.spec import parse_spec
from faultlab.workers.faults.engine import FaultEngine


def test_the_context_holds_only_the_evaluated_inputs() -> None:
    spec = parse_spec({"kind": "faults", "seed": 0, "model": {"name": "digits_cnn"},
                       "dataset": {"name": "digits", "size": 8},
                       "faults": {"sampling": "uniform", "trials": 4}})
    context = FaultEngine().prepare(spec).context
    (workload,) = context.workloads.values()
    tensors = [a for chunk in workload.inputs["fp32"] for a in chunk] + [workload.labels]
    raw = sum(t.numel() * t.element_size() for t in tensors)
    assert raw <= 8 * 64 * 4 + 8 * 8
    shipped = len(pickle.dumps((workload.inputs, workload.labels)))
    assert shipped <= raw + 4096, (shipped, raw)  # the digits test split is 540 images
