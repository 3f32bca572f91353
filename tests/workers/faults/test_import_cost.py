"""A CNN campaign's validation and preparation never import PyG: importing it (with
``torch._dynamo``) cost 1.5 s of every fresh worker's first campaign."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from faultlab.spec import parse_spec
from faultlab.workers.faults.engine import FaultEngine
spec = parse_spec({"kind": "faults", "seed": 1, "model": {"name": "digits_cnn"},
                   "dataset": {"name": "digits", "size": 16},
                   "faults": {"sampling": "uniform", "trials": 4}})
engine = FaultEngine()
engine.validate(spec)
prepared = engine.prepare(spec)
engine.run_shard(prepared.context, engine.plan(spec, prepared.meta, 0, []))
print("torch_geometric" in sys.modules)
"""


def test_a_cnn_campaign_does_not_import_torch_geometric() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]
