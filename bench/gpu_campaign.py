"""A weight-fault campaign through the full service on one GPU vs PyTorchFI on that GPU.

One command, self-contained: it starts a coordinator (``faultlab serve``: gRPC + local Ray +
a SQLite store) as its own process, submits a uniform weight bit-flip campaign on the CIFAR-size
``resnet18`` (11.2M parameters, ``shapes32`` 3×32×32 images) with ``execution.num_gpus: 1`` and
``batch_faults: auto``, waits for it, then runs on the same device and the same faults (read
back from the store):

* the engine's batched path in-process (``prepare`` → ``to_device`` → ``run_shard``, no
  service) — ``service_vs_direct_batched`` = service trials/s ÷ direct trials/s (what the
  gRPC / Ray / store layers cost);
* PyTorchFI 0.6.0 (deep copy + full forward per fault, custom-function weight injection with
  the same IEEE-754 bit flip) — ``gpu_service_vs_pytorchfi`` = service trials/s ÷ PyTorchFI
  trials/s;
* the CPU sequential path (``batch_faults: off``) on ``--agreement-trials`` of the campaign's
  trials — ``agreement_with_cpu_sequential``: the fraction with the same outcome class
  (GPU and CPU kernels round differently: classes agree, bits need not);
* ``gpu_utilization`` — mean and max of ``nvidia-smi``'s utilization (else
  ``torch.cuda.utilization``) sampled every 0.5 s while the campaign ran (null on the CPU).

Targets (issue 11): ``gpu_service_vs_pytorchfi`` ≥ 30, ``service_vs_direct_batched`` ≥ 0.9,
``agreement_with_cpu_sequential`` ≥ 0.999 over ≥ 1000 trials.

Run on a machine with a GPU: ``python bench/gpu_campaign.py`` (≥ 10k trials; trains
``resnet18`` on first use, about 1 minute on a GPU). ``python bench/gpu_campaign.py --device
cpu`` is a small smoke version that runs anywhere (a reduced-width ``resnet18``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fi_vs_pytorchfi import run_pytorchfi, same  # noqa: E402
from scale import Coordinator  # noqa: E402

from faultlab.spec import parse_spec  # noqa: E402
from faultlab.workers.faults.engine import FaultContext, FaultEngine  # noqa: E402
from faultlab.workers.faults.models import FAULT_MODELS  # noqa: E402


def campaign_spec(args: argparse.Namespace, gpu: bool) -> dict[str, Any]:
    options: dict[str, Any] = {} if gpu else {"width": 8, "epochs": 1}
    return {"kind": "faults", "name": f"gpu-campaign-{args.trials}", "seed": args.seed,
            "model": {"name": "resnet18", "options": options},
            "dataset": {"name": "shapes32", "size": args.inputs},
            "execution": {"num_gpus": 1 if gpu else 0, "batch_faults": "auto",
                          "shard_seconds": 5.0},
            "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                       "trials": args.trials}}


class Utilization:
    """Samples the GPU's utilization (percent) every 0.5 s in a thread."""

    def __init__(self, gpu: bool) -> None:
        self.samples: list[float] = []
        self.gpu = gpu
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        if shutil.which("nvidia-smi"):
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return float(out.stdout.split()[0])
        try:
            return float(torch.cuda.utilization(0))
        except Exception:  # noqa: BLE001 - no NVML here
            return None

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> Utilization:
        if self.gpu:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        return {"mean": round(statistics.fmean(self.samples), 1),
                "max": max(self.samples), "samples": len(self.samples),
                "source": "nvidia-smi" if shutil.which("nvidia-smi") else "torch.cuda"}


def through_service(spec: dict[str, Any], gpu: bool, work: Path
                    ) -> tuple[float, list[dict[str, Any]], dict[str, Any] | None]:
    """(trials/s submit → SUCCEEDED, the stored records, GPU utilization while it ran)."""
    from faultlab import Client

    coordinator = Coordinator(f"sqlite:///{work / 'store.db'}", work,
                              num_cpus=max(2, os.cpu_count() or 2))
    try:
        with Client(f"127.0.0.1:{coordinator.port}", timeout=300) as client:
            coordinator.wait_ready(client)
            warm = {**spec, "name": "warm-up", "faults": {**spec["faults"], "trials": 64}}
            client.submit(warm).wait(timeout=3600, raise_on_failure=True)  # trains the model
            with Utilization(gpu) as util:
                start = time.perf_counter()
                job = client.submit(spec)
                job.wait(timeout=6 * 3600, raise_on_failure=True)
                seconds = time.perf_counter() - start
            records = job.results(page_size=1000).records
    finally:
        coordinator.stop()
    return spec["faults"]["trials"] / seconds, records, util.summary()


def direct_batched(spec: dict[str, Any], trials: list[dict[str, Any]], device: torch.device,
                   shard: int) -> tuple[float, Any]:
    """trials/s of the engine's batched path in-process on ``device`` (after one warm shard)."""
    engine = FaultEngine()
    parsed = parse_spec(spec)
    context = engine.to_device(engine.prepare(parsed).context, device)
    engine.run_shard(context, trials[:shard])
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(trials), shard):
        engine.run_shard(context, trials[i:i + shard])
    sync(device)
    return len(trials) / (time.perf_counter() - start), context


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def pytorchfi_side(context: Any, trials: list[dict[str, Any]], gpu: bool
                   ) -> tuple[float, list[bool]]:
    """PyTorchFI trials/s on the context's device, and per trial whether it agrees with
    faultlab's own unbatched output (same top-1 on every input, or a DUE on both)."""
    (wl,) = context.workloads.values()
    sites = list(wl.sites["fp32"].values())
    index = {s.name: k for k, s in enumerate(sites)}
    faults = [(index[t["faults"][0]["site"]], int(t["faults"][0]["index"]),
               int(t["faults"][0]["bits"][0])) for t in trials]
    x = wl.inputs["fp32"][0][0]
    model = wl.models["fp32"]
    if gpu:  # PyTorchFI's use_cuda path: the model and inputs on cuda:0
        torch.cuda.synchronize()
    outs, seconds = run_pytorchfi(model, x, sites, faults)
    bitflip = FAULT_MODELS.get("bitflip").impl()
    agree = [same(wl.faulty_output("fp32", "none", t["faults"], bitflip), o)
             for t, o in zip(trials, outs, strict=True)]
    return len(trials) / seconds, agree


def cpu_agreement(spec: dict[str, Any], records: list[dict[str, Any]]) -> float:
    """Fraction of the stored (GPU) outcomes the CPU sequential path reproduces."""
    engine = FaultEngine()
    prepared = engine.prepare(parse_spec(spec))
    ctx = FaultContext(prepared.context.params, prepared.context.workloads, "off")
    results = engine.run_shard(ctx, [r["trial"] for r in records])
    return sum(r["result"]["outcome"] == c["outcome"]
               for r, c in zip(records, results, strict=True)) / len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--inputs", type=int, default=None, help="shapes32 test images")
    parser.add_argument("--pfi-trials", type=int, default=None)
    parser.add_argument("--agreement-trials", type=int, default=None)
    parser.add_argument("--shard", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        sys.exit("no CUDA device here; run with --device cpu for the smoke version")
    args.trials = args.trials or (10_000 if gpu else 192)
    args.inputs = args.inputs or (256 if gpu else 16)
    n_pfi = args.pfi_trials or (300 if gpu else 8)
    n_agree = args.agreement_trials or (1000 if gpu else 48)
    device = torch.device("cuda", 0) if gpu else torch.device("cpu")
    torch.backends.cuda.matmul.allow_tf32 = False  # IEEE fp32 on both tools
    torch.backends.cudnn.allow_tf32 = False
    spec = campaign_spec(args, gpu)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="faultlab-gpu-campaign-") as tmp:
        service_tps, records, util = through_service(spec, gpu, Path(tmp))
    records.sort(key=lambda r: r["trial"]["ordinal"])
    trials = [r["trial"] for r in records]
    direct_tps, context = direct_batched(spec, trials, device, min(args.shard, len(trials)))
    pfi_tps, agree = pytorchfi_side(context, trials[:n_pfi], gpu)
    agreement = cpu_agreement(spec, records[:n_agree])
    batched = sum("batch_faults" in r["result"] for r in records)
    print(f"{args.device}: service {service_tps:.1f} trials/s ({batched}/{len(records)} "
          f"batched), direct {direct_tps:.1f}, PyTorchFI {pfi_tps:.2f}; CPU agreement "
          f"{agreement:.4f}", file=sys.stderr)
    print(json.dumps({
        "benchmark": "gpu_campaign",
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "smoke": not gpu,
        "model": "resnet18" + ("" if gpu else "(width=8)"),
        "inputs": args.inputs,
        "trials": len(records),
        "batched_fraction": round(batched / len(records), 3),
        "service_trials_per_s": round(service_tps, 2),
        "direct_batched_trials_per_s": round(direct_tps, 2),
        "pytorchfi_trials": n_pfi,
        "pytorchfi_trials_per_s": round(pfi_tps, 3),
        "pytorchfi_agreement": round(sum(agree) / len(agree), 4),
        "gpu_service_vs_pytorchfi": round(service_tps / pfi_tps, 2),
        "service_vs_direct_batched": round(service_tps / direct_tps, 3),
        "agreement_trials": min(n_agree, len(records)),
        "agreement_with_cpu_sequential": round(agreement, 4),
        "gpu_utilization": util,
        "total_seconds": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    main()
