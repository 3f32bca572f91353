"""Exported program vs eager zoo model through the service (used by ``bench/byom.py``).

The same weight bit-flip campaign is submitted twice to one coordinator: once on the zoo
model (eager ``nn.Module``, trained by faultlab) and once as a ``torch.export`` program of the
very same weights, exported once (as ``client.submit(spec, model=module, example_inputs=x)``
does) into a ``.pt2`` file that the SDK uploads. The exported submission carries the zoo
model's name as its ``label``, so both campaigns have the same workload name and therefore the
same plan.

* ``exported_vs_eager_agreement``: the fraction of trials, matched by their fault sites
  (module.tensor, index, bits), whose outcome, accuracy and SDC count are identical
  (target 1.0);
* ``exported_vs_eager_throughput``: exported trials/s over eager trials/s, from submit to
  SUCCEEDED (target >= 0.9). Each side is warmed first by a small campaign of another seed
  (zoo training, the client-side export and upload, worker start-up are not measured).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from faultlab import CampaignState, Client


def campaign(model: str, trials: int, seed: int) -> dict[str, Any]:
    return {
        "kind": "faults",
        "name": "bench-byom",
        "seed": seed,
        "model": {"name": model},
        "dataset": {"name": "digits", "split": "test"},
        "execution": {"shard_seconds": 1.0},
        "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                   "trials": trials},
    }


def _timed(client: Client, spec: dict[str, Any]) -> tuple[str, float]:
    start = time.perf_counter()
    job = client.submit(spec)
    status = job.wait(timeout=3600)
    if status.state is not CampaignState.SUCCEEDED:
        raise RuntimeError(f"benchmark campaign {job.id} ended {status.state.value}: "
                           f"{status.error}")
    return job.id, time.perf_counter() - start


def _by_site(client: Client, campaign_id: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out = {}
    for row in client.get(campaign_id).results().records:
        sites = tuple((f["site"], f["index"], tuple(f["bits"])) for f in row["trial"]["faults"])
        result = row["result"]
        out[sites] = (result["outcome"], result["accuracy"], result["sdc_inputs"])
    return out


def measure_exported_vs_eager(
    client: Client, workdir: Path | None = None, *, model: str = "digits_cnn",
    trials: int = 300, seed: int = 11,
) -> dict[str, float]:
    """Agreement and relative throughput of the exported program vs the eager zoo model;
    the program is written to ``workdir`` (a client-side directory; default a new temporary
    one)."""
    from faultlab.client._artifacts import export_module
    from faultlab.spec import DatasetSpec, ModelSpec
    from faultlab.workers.zoo import ImageData, load_dataset, trained_model

    data = load_dataset(DatasetSpec(name="digits"))
    assert isinstance(data, ImageData)
    module, _ = trained_model(ModelSpec(name=model), data)
    program = (workdir or Path(tempfile.mkdtemp(prefix="byom-"))) / f"{model}.pt2"
    program.write_bytes(export_module(module, data.x_test[:4]))

    def as_exported(spec: dict[str, Any]) -> dict[str, Any]:
        return {**spec, "model": {"name": "exported", "file": str(program), "label": model}}

    _timed(client, campaign(model, 8, seed + 1))  # warm-up: zoo training, workers, upload
    _timed(client, as_exported(campaign(model, 8, seed + 1)))
    eager_id, eager_s = _timed(client, campaign(model, trials, seed))
    exported_id, exported_s = _timed(client, as_exported(campaign(model, trials, seed)))
    eager, other = _by_site(client, eager_id), _by_site(client, exported_id)
    same = sum(1 for sites, outcome in eager.items() if other.get(sites) == outcome)
    return {
        "exported_vs_eager_agreement": same / max(len(eager), 1),
        "exported_vs_eager_throughput": (len(other) / exported_s) / (len(eager) / eager_s),
        "exported_vs_eager_trials": float(len(eager)),
    }
