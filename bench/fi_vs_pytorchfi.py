"""faultlab vs PyTorchFI 0.6.0 on the same weight bit-flip trials (CPU).

Both tools get the same trained model, the same inputs and the same faults: (layer, weight
index, bit), each flipping one bit of the IEEE-754 fp32 weight. PyTorchFI's built-in "bit flip"
is an 8-bit integer emulation, so it is driven through its documented custom-function weight
injection (``declare_weight_fi(function=...)``) with a function that returns the fp32 value with
that bit flipped — the same fault faultlab injects.

Prints figures and, last, one JSON line:

* ``identical`` — every trial's outcome agrees between the tools: the same top-1 predictions
  on every input, or a DUE (NaN / Inf logits) on both sides (``logits_bit_identical``: even
  every logit is bit-for-bit the same);
* ``throughput_ratio`` (``resnet_small`` on the digits test set) and
  ``throughput_ratio_resnet18`` (the CIFAR-size ``resnet18``, 11.2M parameters, on
  ``--resnet18-inputs`` ``shapes32`` images) — faultlab trials/s ÷ PyTorchFI trials/s. Faults
  are drawn uniformly over the fault space (weights × 32 bits, what a campaign's ``sampling:
  uniform`` draws; ``throughput_ratio_layer_uniform`` uses PyTorchFI's own
  ``random_weight_location`` draw, layer first). faultlab runs them the way campaigns do:
  ``engine.run_shard`` on shards of ``--shard`` trials, with ``execution.batch_faults: auto``
  (K faults per forward where that is measured faster, else in-place flip with exact restore
  + suffix re-execution from cached golden activations); PyTorchFI deep-copies the model per
  fault and runs a full forward. The tools alternate shard by shard, so load changes on a
  shared machine hit both;
* ``time_to_answer_ratio`` — on a target small enough for PyTorchFI to finish
  (``--tta-model``, default ``digits_cnn``): PyTorchFI uniform random injection is **run**,
  in batches, until every layer's SDC rate has a 95 % Wilson half-width ≤ ``--tta-margin``
  (with the finite-population correction faultlab's intervals get: a layer's fault space is
  its weights × 32 bits), divided by the wall time of faultlab's adaptive stratified campaign
  (layer × bit strata, Neyman allocation, stopping when each layer's CI is ±margin). Nothing
  is extrapolated; ``pytorchfi_tta_reached`` says whether PyTorchFI got there within
  ``--tta-cap`` trials (if not, its figure is a lower bound and labelled so).

Run: ``python bench/fi_vs_pytorchfi.py`` (a few minutes on 2 idle cores once the models are
trained and cached; ``resnet18`` trains for about 10 minutes on first use);
``--quick`` runs a reduced version.
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

from faultlab.spec import parse_spec
from faultlab.stats import effective_n_without_replacement, two_sided_z, wilson_half_width
from faultlab.workers.faults.engine import FaultEngine
from faultlab.workers.faults.models import FAULT_MODELS
from faultlab.workers.local import run_local


def flip_fp32(value: float, bit: int) -> float:
    """``value`` as fp32 with one bit of its IEEE-754 pattern inverted (struct-level)."""
    (pattern,) = struct.unpack("<I", struct.pack("<f", value))
    return float(struct.unpack("<f", struct.pack("<I", pattern ^ (1 << bit)))[0])


def draw_trials(sites: list[Any], n: int, seed: int, by_layer: bool = False
                ) -> list[tuple[int, int, int]]:
    """(layer number, flat index, bit): uniform over the fault space (weights × bits), or
    with ``by_layer`` PyTorchFI's ``random_weight_location`` way (layer uniform first)."""
    rng = np.random.default_rng(seed)
    sizes = np.array([s.numel for s in sites], dtype=np.float64)
    out = []
    for _ in range(n):
        layer = int(rng.integers(len(sites)) if by_layer
                    else rng.choice(len(sites), p=sizes / sizes.sum()))
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
                          layer_types=[nn.Conv2d, nn.Linear], use_cuda=x.is_cuda)
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
    if x.is_cuda:
        torch.cuda.synchronize()
    return outs, time.perf_counter() - start



def faultlab_trials(wl: Any, sites: list[Any], trials: list[tuple[int, int, int]], seed: int
                    ) -> list[dict[str, Any]]:
    return [{"workload": wl.name, "dtype": "fp32", "target": "weight", "fault_model": "bitflip",
             "stratum": "bench", "layer": sites[L].name, "bit": b,
             "faults": [{"site": sites[L].name, "index": i, "bits": [b]}], "seed": seed,
             "round": 0, "ordinal": j} for j, (L, i, b) in enumerate(trials)]


def prepared_workload(engine: FaultEngine, model: str, dataset: str, size: int | None,
                      seed: int) -> tuple[Any, Any, list[Any]]:
    spec = parse_spec({"kind": "faults", "seed": seed, "model": {"name": model},
                       "dataset": {"name": dataset, "size": size},
                       "faults": {"sampling": "uniform", "trials": 1},
                       "execution": {"batch_faults": "auto"}})
    prepared = engine.prepare(spec)
    (wl,) = prepared.context.workloads.values()
    return prepared.context, wl, list(wl.sites["fp32"].values())


def throughput(engine: FaultEngine, model: str, dataset: str, size: int | None, n: int,
               n_pfi: int, shard: int, seed: int, by_layer: bool = False) -> dict[str, Any]:
    """faultlab (campaign path, ``batch_faults: auto``) vs PyTorchFI trials/s on the same
    faults; the first ``n_pfi`` trials are run by both and compared."""
    context, wl, sites = prepared_workload(engine, model, dataset, size, seed)
    x = wl.inputs["fp32"][0][0]
    trials = draw_trials(sites, n + shard, seed, by_layer)
    flt = faultlab_trials(wl, sites, trials, seed)
    start = time.perf_counter()  # warm-up shard: traces, exactness checks, auto's timing
    engine.run_shard(context, flt[n:])
    warmup = time.perf_counter() - start
    run_pytorchfi(wl.models["fp32"], x, sites, trials[:2])
    fl_seconds = pfi_seconds = 0.0
    pfi_outs: list[torch.Tensor] = []
    batched = 0
    per = max(1, n_pfi * shard // max(n, 1))
    for c in range(0, n, shard):  # alternate: a faultlab shard, then a PyTorchFI slice
        start = time.perf_counter()
        results = engine.run_shard(context, flt[c:c + shard])
        fl_seconds += time.perf_counter() - start
        batched += sum("batch_faults" in r for r in results)
        todo = trials[len(pfi_outs):min(n_pfi, len(pfi_outs) + per)]
        if todo:
            outs, seconds = run_pytorchfi(wl.models["fp32"], x, sites, todo)
            pfi_outs += outs
            pfi_seconds += seconds
    if len(pfi_outs) < n_pfi:
        outs, seconds = run_pytorchfi(wl.models["fp32"], x, sites, trials[len(pfi_outs):n_pfi])
        pfi_outs += outs
        pfi_seconds += seconds
    bitflip = FAULT_MODELS.get("bitflip").impl()
    ours = [wl.faulty_output("fp32", "none", t["faults"], bitflip) for t in flt[:n_pfi]]
    fl_tps, pfi_tps = n / fl_seconds, n_pfi / pfi_seconds
    print(f"{model}: {len(sites)} layers, {sum(s.numel for s in sites)} weights, {len(x)} "
          f"inputs; faultlab {fl_tps:.1f} trials/s ({batched}/{n} batched, warm-up "
          f"{warmup:.1f} s), PyTorchFI {pfi_tps:.2f} trials/s", file=sys.stderr)
    return {
        "faultlab_trials_per_s": round(fl_tps, 2), "pytorchfi_trials_per_s": round(pfi_tps, 3),
        "ratio": round(fl_tps / pfi_tps, 3), "trials": n, "pytorchfi_trials": n_pfi,
        "batched_fraction": round(batched / n, 3), "warmup_seconds": round(warmup, 2),
        "inputs": len(x),
        "identical": all(same(a, b) for a, b in zip(ours, pfi_outs, strict=True)),
        "logits_bit_identical": all(torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))
                                    and torch.equal(a.isnan(), b.isnan())
                                    for a, b in zip(ours, pfi_outs, strict=True)),
    }


def pytorchfi_to_margin(wl: Any, sites: list[Any], margin: float, cap: int, seed: int,
                        batch: int = 100) -> dict[str, Any]:
    """Runs PyTorchFI uniform random injection (layer first, as ``random_weight_location``)
    until every layer's SDC rate has a Wilson half-width ≤ ``margin`` (95 %, with the
    finite-population correction), or ``cap`` trials; SDC = some logit differs (finite)."""
    model, x = wl.models["fp32"], wl.inputs["fp32"][0][0]
    golden = wl.golden[("fp32", "none")].output
    z = two_sided_z(0.95)
    counts = np.zeros((len(sites), 2))
    rng_seed, done, seconds = seed + 1, 0, 0.0
    widest = 0.5
    while done < cap:
        trials = draw_trials(sites, batch, rng_seed + done, by_layer=True)
        outs, elapsed = run_pytorchfi(model, x, sites, trials)
        seconds += elapsed
        for (layer, _, _), out in zip(trials, outs, strict=True):
            finite = bool(torch.isfinite(out).all())
            counts[layer] += (finite and not torch.equal(out.float(), golden), 1)
        done += batch
        widths = [wilson_half_width(s, effective_n_without_replacement(int(n), site.numel * 32)
                                    if n else 0, z) if n else 0.5
                  for (s, n), site in zip(counts, sites, strict=True)]
        widest = max(widths)
        if widest <= margin:
            break
    return {"trials": done, "seconds": seconds, "reached": widest <= margin,
            "widest_half_width": widest}


def time_to_answer(engine: FaultEngine, model: str, margin: float, cap: int, seed: int
                   ) -> dict[str, Any]:
    """faultlab's adaptive campaign vs PyTorchFI run to the same per-layer margin."""
    adaptive = parse_spec({"kind": "faults", "seed": seed, "model": {"name": model},
                           "dataset": {"name": "digits"}, "faults": {
                               "sampling": "adaptive", "stratify": ["layer", "bit"],
                               "margin": margin, "margin_scope": "layer", "pilot_trials": 4,
                               "max_rounds": 40, "stop_on": "sdc"}})
    start = time.perf_counter()
    report, records = run_local(adaptive, shard_size=256)
    faultlab_tta = time.perf_counter() - start
    per_layer = report.table("per_layer", readable=False)
    half = float(((per_layer["sdc_ci_high"] - per_layer["sdc_ci_low"]) / 2).max())
    _, wl, sites = prepared_workload(engine, model, "digits", None, seed)
    pfi = pytorchfi_to_margin(wl, sites, margin, cap, seed)
    print(f"time to answer (±{margin} on every layer's SDC rate, {model}): faultlab adaptive "
          f"{len(records)} trials in {faultlab_tta:.1f} s (widest ±{half:.4f}); PyTorchFI ran "
          f"{pfi['trials']} trials in {pfi['seconds']:.1f} s (widest "
          f"±{pfi['widest_half_width']:.4f}, reached={pfi['reached']})", file=sys.stderr)
    return {"faultlab_trials": len(records), "faultlab_seconds": round(faultlab_tta, 2),
            "faultlab_widest_half_width": round(half, 5), "pytorchfi_trials": pfi["trials"],
            "pytorchfi_seconds": round(pfi["seconds"], 2),
            "pytorchfi_widest_half_width": round(pfi["widest_half_width"], 5),
            "pytorchfi_reached": pfi["reached"],
            "ratio": round(pfi["seconds"] / faultlab_tta, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1024, help="faultlab trials (throughput)")
    parser.add_argument("--pfi-trials", type=int, default=150, help="PyTorchFI trials")
    parser.add_argument("--shard", type=int, default=256, help="faultlab trials per shard")
    parser.add_argument("--resnet18-inputs", type=int, default=64)
    parser.add_argument("--resnet18-trials", type=int, default=512)
    parser.add_argument("--resnet18-pfi-trials", type=int, default=24)
    parser.add_argument("--tta-model", default="digits_cnn")
    parser.add_argument("--tta-margin", type=float, default=0.02)
    parser.add_argument("--tta-cap", type=int, default=60000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.pfi_trials, args.shard = 256, 40, 128
        args.resnet18_inputs, args.resnet18_trials, args.resnet18_pfi_trials = 16, 128, 8
        args.tta_margin = 0.1
    torch.manual_seed(args.seed)
    engine = FaultEngine()
    small = throughput(engine, "resnet_small", "digits", None, args.trials, args.pfi_trials,
                       args.shard, args.seed)
    layer_uniform = throughput(engine, "resnet_small", "digits", None, args.trials,
                               args.pfi_trials, args.shard, args.seed, by_layer=True)
    big = throughput(engine, "resnet18", "shapes32", args.resnet18_inputs,
                     args.resnet18_trials, args.resnet18_pfi_trials,
                     min(args.shard, args.resnet18_trials), args.seed)
    tta = time_to_answer(engine, args.tta_model, args.tta_margin, args.tta_cap, args.seed)
    print(json.dumps({
        "benchmark": "fi_vs_pytorchfi",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "quick": args.quick,
        "draw": "uniform over weights x 32 bits (campaign sampling: uniform)",
        "identical": small["identical"] and big["identical"] and layer_uniform["identical"],
        "logits_bit_identical": small["logits_bit_identical"] and big["logits_bit_identical"],
        "throughput_ratio": small["ratio"],
        "throughput_ratio_layer_uniform": layer_uniform["ratio"],
        "throughput_ratio_resnet18": big["ratio"],
        "resnet_small": small,
        "resnet_small_layer_uniform": layer_uniform,
        "resnet18": big,
        "time_to_answer_model": args.tta_model,
        "time_to_answer_margin": args.tta_margin,
        "time_to_answer": tta,
        "pytorchfi_side": "run (not extrapolated) until every layer's Wilson half-width <= "
                          "margin" if tta["pytorchfi_reached"] else
                          f"stopped at the cap of {args.tta_cap} trials before reaching the "
                          "margin: its time is a lower bound",
        "time_to_answer_ratio": tta["ratio"],
    }))


if __name__ == "__main__":
    main()
