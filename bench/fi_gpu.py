"""faultlab batched fault injection on a GPU vs PyTorchFI 0.6.0 on the same GPU.

Same trained ResNet-style model (``resnet_small`` on the digits test set), same inputs, same
weight faults (layer uniform, then a uniform weight index and bit; one IEEE-754 fp32 bit flip
each). PyTorchFI runs one fault per forward (deepcopy of the model per fault, through its
custom-function weight injection); faultlab stacks K faulty copies of the faulted layer's
weight and runs them in one ``vmap``-ed forward of only the layers after it (suffix
re-execution from cached golden activations). Also measured: faultlab's sequential path
(in-place flip + exact restore + suffix, one fault per forward) on the same device.

Prints figures and, last, one JSON line with ``gpu_throughput_ratio`` (faultlab batched
trials/s ÷ PyTorchFI trials/s), ``sequential_ratio``, and ``identical`` / ``agreement``: over
the trials PyTorchFI ran, whether each faulty model's outcome agrees between the tools — the
same top-1 predictions on every input, or a DUE (NaN / Inf logits) on both sides. TF32 is
switched off so both run IEEE fp32 arithmetic; batched kernels may still round differently
from unbatched ones, so ``agreement`` gives the fraction that match.

Run: ``python bench/fi_gpu.py`` on a machine with a GPU (well under 3 minutes on an H100);
``python bench/fi_gpu.py --device cpu`` is a small smoke test.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from faultlab.spec import DatasetSpec, ModelSpec
from faultlab.workers.faults.batched import BatchedRunner
from faultlab.workers.faults.inject import Injector
from faultlab.workers.faults.models import FAULT_MODELS
from faultlab.workers.faults.sites import eligible_by_default, parameter_sites
from faultlab.workers.faults.suffix import SuffixRunner
from faultlab.workers.zoo import load_dataset, trained_model


def flip_fp32(value: float, bit: int) -> float:
    (pattern,) = struct.unpack("<I", struct.pack("<f", value))
    return float(struct.unpack("<f", struct.pack("<I", pattern ^ (1 << bit)))[0])


def signature(logits: torch.Tensor) -> torch.Tensor:
    """What a trial's outcome is judged on: the top-1 predictions, or ``[-1]`` for a DUE
    (NaN / Inf logits: their argmax is arbitrary and differs between kernels)."""
    if not bool(torch.isfinite(logits).all()):
        return torch.tensor([-1], device=logits.device)
    return logits.argmax(1)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--trials", type=int, default=None, help="faultlab batched trials")
    parser.add_argument("--pfi-trials", type=int, default=None, help="PyTorchFI trials")
    parser.add_argument("--batch", type=int, default=None, help="faults per forward")
    parser.add_argument("--model", default="resnet_small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        sys.exit("no CUDA device; use --device cpu for the smoke test")
    n_trials = args.trials or (8192 if gpu else 64)
    n_pfi = args.pfi_trials or (300 if gpu else 16)
    batch = args.batch or (256 if gpu else 16)
    device = args.device
    # IEEE-754 fp32 semantics on both sides: no TF32 rounding inside convolutions / matmuls
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    start_all = time.perf_counter()
    data = load_dataset(DatasetSpec(name="digits"))
    cpu_model, _ = trained_model(ModelSpec(name=args.model), data)
    model: nn.Module = cpu_model.to(device).eval()
    x = data.x_test.to(device)
    sites = [s for s in parameter_sites(model, "weight", int8=False) if eligible_by_default(s)]
    by_name = {s.name: s for s in sites}
    rng = np.random.default_rng(args.seed)
    trials = []
    for _ in range(n_trials):
        s = sites[int(rng.integers(len(sites)))]
        trials.append((s.name, int(rng.integers(s.numel)), int(rng.integers(32))))
    bitflip = FAULT_MODELS.get("bitflip").impl()
    print(f"{args.model} on {device} ({torch.cuda.get_device_name() if gpu else 'cpu'}): "
          f"{len(sites)} layers, {len(x)} inputs; {n_trials} batched trials, {n_pfi} PyTorchFI "
          f"trials, {batch} faults per forward", file=sys.stderr)

    # -- faultlab, batched -------------------------------------------------------------
    runner = BatchedRunner(model, (x,))
    groups: dict[str, list[int]] = {}
    for j, (name, _, _) in enumerate(trials):
        groups.setdefault(name, []).append(j)

    def run_batched(indices: dict[str, list[int]]) -> dict[int, torch.Tensor]:
        preds: dict[int, torch.Tensor] = {}
        for name, js in indices.items():
            for c in range(0, len(js), batch):
                chunk = js[c : c + batch]
                faults = [[{"site": name, "index": trials[j][1], "bits": [trials[j][2]]}]
                          for j in chunk]
                out = runner.run(by_name[name], faults, bitflip)
                for j, o in zip(chunk, out, strict=True):
                    preds[j] = signature(o)
        return preds

    run_batched({k: v[:2] for k, v in groups.items()})  # warm-up: kernels, vmap tracing
    sync(device)
    t0 = time.perf_counter()
    batched_preds = run_batched(groups)
    sync(device)
    batched_seconds = time.perf_counter() - t0
    batched_tps = n_trials / batched_seconds

    # -- faultlab, sequential (in place + suffix), for reference -------------------------
    suffix = SuffixRunner(model)
    suffix.cache_golden([(x,)])
    n_seq = min(n_pfi * 2, n_trials)
    sync(device)
    t0 = time.perf_counter()
    for name, index, bit in trials[:n_seq]:
        s = by_name[name]
        program = suffix.program(s.module, s.tensor)
        with Injector(model, [{"site": name, "index": index, "bits": [bit]}], by_name, bitflip,
                      True), torch.no_grad():
            out = suffix.run(program, 0) if program is not None else model(x)
            out.argmax(1)
    sync(device)
    seq_tps = n_seq / (time.perf_counter() - t0)

    # -- PyTorchFI on the same device ---------------------------------------------------
    from pytorchfi.core import fault_injection

    pfi = fault_injection(model, batch_size=len(x), input_shape=list(x.shape[1:]),
                          layer_types=[nn.Conv2d, nn.Linear], use_cuda=gpu)
    layer_of = {s.name: k for k, s in enumerate(sites)}

    def run_pfi(items: list[tuple[str, int, int]]) -> list[torch.Tensor]:
        preds = []
        for name, index, bit in items:
            shape = by_name[name].shape
            pos: list[Any] = [int(v) for v in np.unravel_index(index, shape)]
            pos += [None] * (4 - len(pos))

            def corrupt(weight: torch.Tensor, idx: tuple[Any, ...], bit: int = bit) -> float:
                return flip_fp32(float(weight[idx].item()), bit)

            faulty = pfi.declare_weight_fi(function=corrupt, layer_num=[layer_of[name]],
                                           k=[pos[0]], dim1=[pos[1]], dim2=[pos[2]],
                                           dim3=[pos[3]])
            with torch.no_grad():
                preds.append(signature(faulty(x)))
        return preds

    run_pfi(trials[:3])
    sync(device)
    t0 = time.perf_counter()
    pfi_preds = run_pfi(trials[:n_pfi])
    sync(device)
    pfi_tps = n_pfi / (time.perf_counter() - t0)
    mismatched = [j for j, p in enumerate(pfi_preds) if not torch.equal(batched_preds[j], p)]
    matches = n_pfi - len(mismatched)
    for j in mismatched[:5]:
        print(f"  trial {j} {trials[j]}: faultlab {batched_preds[j][:8].tolist()} vs "
              f"PyTorchFI {pfi_preds[j][:8].tolist()}", file=sys.stderr)
    agreement = matches / n_pfi
    print(f"faultlab batched {batched_tps:.1f} trials/s, sequential {seq_tps:.1f} trials/s, "
          f"PyTorchFI {pfi_tps:.1f} trials/s; agreement {matches}/{n_pfi}", file=sys.stderr)
    print(json.dumps({
        "benchmark": "fi_gpu",
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "model": args.model,
        "inputs": len(x),
        "faults_per_forward": batch,
        "faultlab_batched_trials": n_trials,
        "faultlab_batched_trials_per_s": round(batched_tps, 1),
        "faultlab_sequential_trials_per_s": round(seq_tps, 1),
        "pytorchfi_trials": n_pfi,
        "pytorchfi_trials_per_s": round(pfi_tps, 1),
        "gpu_throughput_ratio": round(batched_tps / pfi_tps, 2),
        "sequential_ratio": round(seq_tps / pfi_tps, 2),
        "identical": matches == n_pfi,
        "agreement": round(agreement, 4),
        "total_seconds": round(time.perf_counter() - start_all, 1),
    }))


if __name__ == "__main__":
    main()
