"""Bring-your-own-model benchmark: artifact uploads, and exported programs vs eager models.

Run: ``python bench/byom.py`` (2 cores, CPU). It starts one coordinator on localhost (real
gRPC, local Ray, a throw-away SQLite store) and talks to it as a remote client would. Progress
goes to stderr; the LAST line of stdout is one JSON object:

* ``upload_mb_per_s`` — MB/s of one upload of a 64 MB random file (StatArtifact, then 1 MiB
  chunks streamed, hashed and stored), best of three fresh files;
* ``resubmit_upload_bytes`` — bytes the SDK uploaded for the second submission of a spec whose
  ``model.file`` / ``dataset.file`` were uploaded by the first (target 0: the coordinator
  already has them);
* ``exported_vs_eager_agreement`` / ``exported_vs_eager_throughput`` — see
  ``bench/_byom_models.py``.

Absolute MB/s depend on the machine; resubmit bytes and agreement do not.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._byom_models import measure_exported_vs_eager  # noqa: E402
from faultlab import Client  # noqa: E402

UPLOAD_BYTES = 64 * 10**6


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _files_spec(folder: Path) -> Path:
    """A spec file next to an exported tiny CNN and a ``tensors`` image dataset."""
    import torch
    from torch import nn

    from faultlab.client._artifacts import export_module, tensors_to_safetensors

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    x = torch.rand(64, 1, 8, 8)
    y = torch.randint(0, 10, (64,))
    (folder / "model.pt2").write_bytes(export_module(model, x[:4]))
    (folder / "data.safetensors").write_bytes(tensors_to_safetensors((x, y, x.clone(), y.clone())))
    spec = {
        "kind": "faults", "name": "bench-byom-resubmit", "seed": 1,
        "model": {"name": "exported", "file": "model.pt2"},
        "dataset": {"name": "tensors", "file": "data.safetensors", "split": "test"},
        "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                   "trials": 8},
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def measure_upload(client: Client, folder: Path) -> dict[str, float]:
    """``upload_mb_per_s`` (best of three 64 MB files) and ``resubmit_upload_bytes``."""
    rates = []
    for attempt in range(3):
        path = folder / f"random{attempt}.bin"
        path.write_bytes(os.urandom(UPLOAD_BYTES))
        start = time.perf_counter()
        client.upload(path)
        elapsed = time.perf_counter() - start
        assert client.last_upload_bytes == UPLOAD_BYTES
        rates.append(UPLOAD_BYTES / 1e6 / elapsed)
        log(f"upload {attempt}: {rates[-1]:.1f} MB/s")
        path.unlink()
    spec = _files_spec(folder)
    for run in ("first", "second"):
        job = client.submit(spec)
        log(f"{run} submission uploaded {client.last_upload_bytes} bytes ({job.id})")
        job.cancel()
    return {"upload_mb_per_s": round(max(rates), 1),
            "resubmit_upload_bytes": client.last_upload_bytes}


def main() -> None:
    from faultlab.server.app import EmbeddedServer

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="faultlab-byom-") as tmp:
        folder = Path(tmp)
        server = EmbeddedServer(f"sqlite://{folder / 'store.db'}", num_cpus=2)
        try:
            with Client(server.address, timeout=120.0) as client:
                figures.update(measure_upload(client, folder))
                figures.update(measure_exported_vs_eager(client))
        finally:
            server.stop()
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
