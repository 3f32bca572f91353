"""faultlab vs PyTorchFI 0.6.0 on the same weight bit-flip trials (CPU).

Both tools get the same trained ResNet-style model (``resnet_small`` on the digits test set),
the same inputs and the same faults: (layer, weight index, bit) drawn the way PyTorchFI's
``random_weight_location`` draws them (layer uniform, then a uniform position), each flipping
one bit of the IEEE-754 fp32 weight. PyTorchFI's built-in "bit flip" is an 8-bit integer
emulation, so it is driven through its documented custom-function weight injection
(``declare_weight_fi(function=...)``) with a function that returns the fp32 value with that
bit flipped — the same fault faultlab injects.

Prints figures and, last, one JSON line:

* ``identical`` — every trial's outcome agrees between the tools: the same top-1 predictions
  on every input, or a DUE (NaN / Inf logits) on both sides (``logits_bit_identical``: even
  every logit is bit-for-bit the same);
* ``throughput_ratio`` — faultlab trials/s ÷ PyTorchFI trials/s (faultlab: in-place flip with
  exact restore + suffix re-execution from cached golden activations; PyTorchFI: deepcopy of
  the model per fault + full forward);
* ``time_to_answer_ratio`` — time for PyTorchFI-style uniform random injection to estimate
  every layer's SDC rate to ±``margin`` at 95 % ÷ measured wall time of faultlab's adaptive
  stratified campaign (layer × bit strata, Neyman allocation, stopping when each layer's CI is
  ±margin). PyTorchFI's side is **extrapolated, not run** (``pytorchfi_side`` says so): the
  trials it needs come from faultlab's per-layer rates with the same finite-population
  correction faultlab's intervals get (a layer's fault space = weights × 32 bits;
  ``pytorchfi_trials_needed_without_fpc`` is the uncorrected count), at PyTorchFI's measured
  throughput.

Run: ``python bench/fi_vs_pytorchfi.py`` (under a minute on 2 idle cores once ``resnet_small``
is trained and cached; training it takes about a minute the first time).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from faultlab.spec import parse_spec
from faultlab.stats import two_sided_z
from faultlab.workers.faults.engine import FaultEngine
from faultlab.workers.faults.models import FAULT_MODELS
from faultlab.workers.faults.planning import trials_for_margin
from faultlab.workers.local import run_local


def flip_fp32(value: float, bit: int) -> float:
    """``value`` as fp32 with one bit of its IEEE-754 pattern inverted (struct-level)."""
    (pattern,) = struct.unpack("<I", struct.pack("<f", value))
    return float(struct.unpack("<f", struct.pack("<I", pattern ^ (1 << bit)))[0])


def draw_trials(sites: list[Any], n: int, seed: int) -> list[tuple[int, int, int]]:
    """(layer number, flat index, bit): layer uniform, then index and bit uniform."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        layer = int(rng.integers(len(sites)))
        out.append((layer, int(rng.integers(sites[layer].numel)), int(rng.integers(32))))
    return out


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same outcome: a DUE (NaN / Inf logits) on both sides, or equal top-1 predictions."""
    due_a, due_b = not bool(torch.isfinite(a).all()), not bool(torch.isfinite(b).all())
    if due_a or due_b:
        return due_a and due_b
    return bool(torch.equal(a.argmax(1), b.argmax(1)))


def run_pytorchfi(model: nn.Module, x: torch.Tensor, sites: list[Any],
                  trials: list[tuple[int, int, int]]) -> tuple[list[torch.Tensor], float]:
    from pytorchfi.core import fault_injection

    pfi = fault_injection(model, batch_size=len(x), input_shape=list(x.shape[1:]),
                          layer_types=[nn.Conv2d, nn.Linear], use_cuda=False)
    if len(pfi.weights_size) != len(sites):
        raise RuntimeError("PyTorchFI and faultlab disagree on the injectable layers")
    outs = []
    start = time.perf_counter()
    for layer, index, bit in trials:
        shape = sites[layer].shape
        pos = [int(v) for v in np.unravel_index(index, shape)] + [None] * (4 - len(shape))

        def corrupt(weight: torch.Tensor, idx: tuple[Any, ...], bit: int = bit) -> float:
            return flip_fp32(float(weight[idx].item()), bit)

        faulty = pfi.declare_weight_fi(function=corrupt, layer_num=[layer], k=[pos[0]],
                                       dim1=[pos[1]], dim2=[pos[2]], dim3=[pos[3]])
        with torch.no_grad():
            outs.append(faulty(x))
    return outs, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150, help="trials per tool (throughput)")
    parser.add_argument("--margin", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="resnet_small")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    engine = FaultEngine()
    base = {"kind": "faults", "seed": args.seed, "model": {"name": args.model},
            "dataset": {"name": "digits"}}
    spec = parse_spec({**base, "faults": {"sampling": "uniform", "trials": 1}})
    prepared = engine.prepare(spec)
    (wl,) = prepared.context.workloads.values()
    sites = list(wl.sites["fp32"].values())
    model = wl.models["fp32"]
    (x,) = wl.inputs["fp32"][0]
    print(f"model {args.model}: {len(sites)} conv/linear layers, "
          f"{sum(s.numel for s in sites)} weights; {len(x)} test inputs", file=sys.stderr)

    trials = draw_trials(sites, args.trials, args.seed)
    flt = [{"workload": wl.name, "dtype": "fp32", "target": "weight", "fault_model": "bitflip",
            "stratum": "bench", "layer": sites[L].name, "bit": b,
            "faults": [{"site": sites[L].name, "index": i, "bits": [b]}], "seed": args.seed,
            "round": 0, "ordinal": j} for j, (L, i, b) in enumerate(trials)]

    # warm-up both paths (lazy initialisation, kernels; faultlab: one suffix program per layer,
    # built once per campaign — PyTorchFI's warm-up forward touches every layer too)
    first_of_layer = {t["layer"]: t for t in reversed(flt)}
    warm = [{**t, "faults": [{**t["faults"][0], "bits": [0]}]} for t in first_of_layer.values()]
    engine.run_shard(prepared.context, warm)
    run_pytorchfi(model, x, sites, trials[:2])

    # the tools alternate in chunks, so a load change on a shared machine hits both alike
    faultlab_seconds = pfi_seconds = 0.0
    pfi_outs: list[torch.Tensor] = []
    for c in range(0, len(trials), 10):
        start = time.perf_counter()
        engine.run_shard(prepared.context, flt[c : c + 10])
        faultlab_seconds += time.perf_counter() - start
        outs, seconds = run_pytorchfi(model, x, sites, trials[c : c + 10])
        pfi_outs += outs
        pfi_seconds += seconds
    bitflip = FAULT_MODELS.get("bitflip").impl()
    ours = [wl.faulty_output("fp32", "none", t["faults"], bitflip) for t in flt]
    identical = all(same(a, b) for a, b in zip(ours, pfi_outs, strict=True))
    bit_identical = all(torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))
                        and torch.equal(a.isnan(), b.isnan())
                        for a, b in zip(ours, pfi_outs, strict=True))
    fl_tps, pfi_tps = len(trials) / faultlab_seconds, len(trials) / pfi_seconds
    print(f"throughput: faultlab {fl_tps:.1f} trials/s, PyTorchFI {pfi_tps:.1f} trials/s; "
          f"identical={identical}", file=sys.stderr)

    # time to answer: every layer's SDC rate to ±margin at 95 %
    adaptive = parse_spec({**base, "faults": {
        "sampling": "adaptive", "stratify": ["layer", "bit"], "margin": args.margin,
        "margin_scope": "layer", "pilot_trials": 8, "max_rounds": 40, "stop_on": "sdc"}})
    start = time.perf_counter()
    report, records = run_local(adaptive, shard_size=256)
    faultlab_tta = time.perf_counter() - start
    per_layer = report.table("per_layer")
    half = ((per_layer["sdc_ci_high"] - per_layer["sdc_ci_low"]) / 2).max()
    z = two_sided_z(0.95)
    # the same finite-population correction faultlab's intervals get: a layer's fault space
    # is its weights × 32 bits (without it, PyTorchFI's side would be overstated)
    space = {s.name: s.numel * 32 for s in sites}
    needed = {row.layer: trials_for_margin(row.sdc_rate, args.margin, z, space[row.layer], 1)
              for row in per_layer.itertuples()}
    needed_no_fpc = {row.layer: trials_for_margin(row.sdc_rate, args.margin, z, math.inf, 1)
                     for row in per_layer.itertuples()}
    pfi_trials = len(sites) * max(needed.values())  # layer drawn uniformly, with replacement
    pfi_tta = pfi_trials / pfi_tps
    print(f"time to answer (±{args.margin} on every layer's SDC rate): faultlab adaptive "
          f"{len(records)} trials in {faultlab_tta:.1f} s (widest layer CI ±{half:.4f}); "
          f"PyTorchFI uniform needs {pfi_trials} trials ≈ {pfi_tta:.0f} s", file=sys.stderr)

    print(json.dumps({
        "benchmark": "fi_vs_pytorchfi",
        "model": args.model,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "trials": len(trials),
        "margin": args.margin,
        "identical": identical,
        "logits_bit_identical": bit_identical,
        "faultlab_trials_per_s": round(fl_tps, 2),
        "pytorchfi_trials_per_s": round(pfi_tps, 2),
        "throughput_ratio": round(fl_tps / pfi_tps, 3),
        "faultlab_adaptive_trials": len(records),
        "faultlab_adaptive_seconds": round(faultlab_tta, 2),
        "faultlab_widest_layer_half_width": round(float(half), 5),
        "pytorchfi_trials_needed": pfi_trials,
        "pytorchfi_trials_needed_without_fpc": len(sites) * max(needed_no_fpc.values()),
        "pytorchfi_seconds_estimated": round(pfi_tta, 1),
        "pytorchfi_side": "extrapolated: trials for ±margin on every layer at faultlab's "
                          "measured per-layer rates, with the same finite-population correction "
                          "(weights × 32 bits), at PyTorchFI's measured throughput; not run",
        "time_to_answer_ratio": round(pfi_tta / faultlab_tta, 2),
    }))


if __name__ == "__main__":
    main()
