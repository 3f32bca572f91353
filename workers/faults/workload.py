"""One (model, dataset) pair of a fault campaign, ready to run faulty forwards.

Holds the model in every requested number format (converted once per campaign), the inputs,
the golden (fault-free) outputs per format and mitigation, and classifies a faulty output:

* ``masked``        — every output value equals the golden one (within ``sdc_tolerance``);
* ``sdc``           — some output differs, no top-1 change on a correctly classified input;
* ``critical_sdc``  — the top-1 class changed on an input the golden model classified correctly;
* ``due``           — NaN / Inf in the output, or an exception in the forward pass.

Beyond top-1, every trial records ``topk_changed_inputs`` (inputs whose set of top-5 classes
changed) and ``max_logit_deviation`` (the largest absolute output difference from golden;
None when the output is not finite), and ``critical_logit_deviation`` (the largest one on an
input whose correct top-1 changed; 0 when none), so an SDC tolerance can be chosen after the
fact: at tolerance t a trial is an SDC iff ``max_logit_deviation > t`` and a critical SDC iff
``critical_logit_deviation > t``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from faultlab.workers.faults.batched import run_folded, stacked_faulty
from faultlab.workers.faults.channel import ChannelRunner
from faultlab.workers.faults.formats import TORCH_DTYPES
from faultlab.workers.faults.inject import Injector
from faultlab.workers.faults.mitigations import Mitigation
from faultlab.workers.faults.models import FaultModel
from faultlab.workers.faults.sites import SiteInfo
from faultlab.workers.faults.suffix import SuffixRunner

#: Image inputs are processed in chunks of this many samples.
CHUNK = 2048
#: ``topk_changed_inputs`` counts inputs whose set of this many top classes changed.
TOP_K = 5


@dataclass
class Golden:
    output: torch.Tensor
    """Full output (float32): all samples, or all nodes of a graph."""
    pred: torch.Tensor
    correct: torch.Tensor
    """Per evaluated input: golden top-1 equals the label."""
    accuracy: float
    top: dict[int, torch.Tensor] = field(default_factory=dict)
    """k -> each evaluated input's sorted top-k classes (cached: every trial compares)."""

    def top_sets(self, rows: torch.Tensor, k: int) -> torch.Tensor:
        """The sorted top-``k`` class indices of the golden ``rows`` (computed once per k)."""
        if k not in self.top:
            self.top[k] = rows.topk(k, dim=1).indices.sort(dim=1).values
        return self.top[k]


@dataclass
class Workload:
    name: str
    kind: str  # "image" | "graph"
    models: dict[str, nn.Module]
    inputs: dict[str, list[tuple[Any, ...]]]
    """Per dtype: the argument tuples of each forward (image chunks, or (x, edge_index))."""
    eval_ids: torch.Tensor | None
    """Graph: the evaluated node ids (rows of the output). Images: all rows."""
    labels: torch.Tensor
    sites: dict[str, dict[str, SiteInfo]] = field(default_factory=dict)
    golden: dict[tuple[str, str], Golden] = field(default_factory=dict)
    degree_bucket: torch.Tensor | None = None
    num_buckets: int = 0
    mitigations: dict[str, tuple[Mitigation, Any, float]] = field(default_factory=dict)
    """name -> (mitigation, profiled bounds per dtype, slack)."""
    fingerprint: str = ""
    """Content digest stamped by ``prepare`` (:mod:`faultlab.workers.faults.warm`)."""
    _suffix: dict[tuple[str, str], SuffixRunner | None] = field(default_factory=dict)
    _channel: dict[tuple[str, str], ChannelRunner] = field(default_factory=dict)
    _exact: dict[tuple[str, str], bool] = field(default_factory=dict)
    """(dtype, layer) -> whether the folded batched pass is bit-exact there."""
    batch_faster: dict[tuple[str, str], bool] = field(default_factory=dict)
    """(dtype, layer) -> whether batched trials ran faster than sequential ones here."""
    batch_footprint: dict[tuple[str, str], int] = field(default_factory=dict)
    """(dtype, site) -> bytes one variant of a batched graph forward needs (bounds K)."""

    DERIVED = ("_suffix", "_channel", "_exact", "batch_faster")
    """State built lazily where the workload runs (for its device), never shipped or moved."""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, **{name: {} for name in self.DERIVED}}

    def without_derived(self) -> Workload:
        """This workload with its derived state cleared (in place: a moved copy's is stale)."""
        for name in self.DERIVED:
            setattr(self, name, {})
        return self

    # -- forward passes -----------------------------------------------------------------
    def forward(self, dtype: str, injector: Injector | None) -> torch.Tensor:
        model = self.models[dtype]
        outs = []
        offset = 0  # the chunk's first input (per-input activation faults)
        with torch.no_grad():
            for args in self.inputs[dtype]:
                if injector is not None:
                    injector.reset_calls(offset)
                    if self.kind == "graph":
                        args = (args[0], injector.faulted_edge_index(args[1]), *args[2:])
                outs.append(model(*args))
                offset += int(outs[-1].shape[0])
        return torch.cat(outs).float() if len(outs) > 1 else outs[0].float()

    def mitigation_stack(self, dtype: str, variant: str) -> ExitStack:
        stack = ExitStack()
        if variant != "none":
            mit, bounds, slack = self.mitigations[variant]
            stack.enter_context(mit.install(self.models[dtype], bounds[dtype], slack))
        return stack

    def run_golden(self, dtype: str, variant: str) -> Golden:
        with self.mitigation_stack(dtype, variant):
            out = self.forward(dtype, None)
        rows = out if self.eval_ids is None else out[self.eval_ids]
        pred = rows.argmax(1)
        correct = pred == self.labels
        golden = Golden(out, pred, correct, float(correct.float().mean()))
        self.golden[(dtype, variant)] = golden
        return golden

    def suffix_runner(self, dtype: str, variant: str) -> SuffixRunner | None:
        key = (dtype, variant)
        if key not in self._suffix:
            runner = SuffixRunner.try_build(self.models[dtype]) if self.kind == "image" else None
            if runner is not None:
                with self.mitigation_stack(dtype, variant):
                    outs = runner.cache_golden(self.inputs[dtype])
                out = torch.cat(outs).float() if len(outs) > 1 else outs[0].float()
                if not torch.equal(out, self.golden[key].output):
                    runner = None  # not bit-exact here: never trade correctness for speed
            self._suffix[key] = runner
        return self._suffix[key]

    def faulty_output(
        self, dtype: str, variant: str, faults: list[dict[str, Any]], fault_model: FaultModel,
        suffix: bool = True,
    ) -> torch.Tensor:
        sites = self.sites[dtype]
        injector = Injector(self.models[dtype], faults, sites, fault_model,
                            per_sample=self.kind == "image")
        params = sorted({(sites[f["site"]].module, sites[f["site"]].tensor) for f in faults
                         if sites[f["site"]].target in ("weight", "bias")})
        use_suffix = suffix and len(params) == 1 and len(params) == len({f["site"] for f in faults})
        # built (and its golden values cached) before any fault is applied
        runner = self.suffix_runner(dtype, variant) if use_suffix else None
        program = runner.program(*params[0]) if runner is not None else None
        channel, site, chans = None, None, None
        if runner is not None and program is not None:  # checked on the clean weights
            site = sites[faults[0]["site"]]
            channel = self._channel.get((dtype, variant))
            if channel is None or channel.suffix is not runner:
                channel = self._channel[(dtype, variant)] = ChannelRunner(runner,
                                                                         self.models[dtype])
            chans = channel.channels(site, faults)
            if chans is not None and not channel.verify(site, chans):
                chans = None
        with injector, self.mitigation_stack(dtype, variant):
            if runner is not None and program is not None:
                if (channel is not None and site is not None and chans is not None
                        and channel.usable(site)):
                    outs = [channel.run(site, chans, c) for c in range(len(runner.env))]
                else:
                    outs = [runner.run(program, c) for c in range(len(runner.env))]
                return torch.cat(outs).float() if len(outs) > 1 else outs[0].float()
            return self.forward(dtype, injector)

    def folded_exact(self, dtype: str, site: SiteInfo) -> bool:
        """Whether the folded batched pass (:meth:`batched_outputs`) can run for the layer of
        ``site``: the model offers a single call of it, and two clean variants reproduce the
        golden output bit for bit here (checked once per layer: never trade correctness)."""
        key = (dtype, site.module)
        if key not in self._exact:
            runner = self.suffix_runner(dtype, "none")
            after = runner.after(site.module) if runner is not None else None
            exact = False
            if runner is not None and after is not None:
                model = self.models[dtype]
                param = model.get_submodule(site.module).get_parameter(site.tensor)
                clean = param.detach().unsqueeze(0).repeat(2, *([1] * param.dim()))
                outs = torch.cat([run_folded(runner, c, model, site.module, site.tensor, clean,
                                             *after) for c in range(len(runner.env))], dim=1)
                gold = self.golden[(dtype, "none")].output
                exact = all(torch.equal(o.float(), gold) for o in outs)
            self._exact[key] = exact
        return self._exact[key]

    def batched_outputs(
        self, dtype: str, site: SiteInfo, trials: list[list[dict[str, Any]]],
        fault_model: FaultModel,
    ) -> torch.Tensor | None:
        """The unmitigated outputs of ``len(trials)`` trials faulting one parameter of
        ``site``, stacked ``[K, rows, classes]``: the faulted layer runs once per trial on
        the cached golden inputs, everything after it once on K × B samples. None where
        :meth:`folded_exact` says no."""
        runner = self.suffix_runner(dtype, "none")
        after = runner.after(site.module) if runner is not None else None
        if runner is None or after is None or not self.folded_exact(dtype, site):
            return None
        model = self.models[dtype]
        name = f"{site.module}.{site.tensor}"
        weights = stacked_faulty(model.get_parameter(name), site, trials, fault_model)
        outs = [run_folded(runner, c, model, site.module, site.tensor, weights, *after)
                for c in range(len(runner.env))]
        return torch.cat(outs, dim=1).float() if len(outs) > 1 else outs[0].float()

    # -- outcomes -------------------------------------------------------------------------
    def classify(
        self, dtype: str, variant: str, run: Callable[[], torch.Tensor], tolerance: float
    ) -> dict[str, Any]:
        golden = self.golden[(dtype, variant)]
        n = int(golden.pred.numel())
        start = time.perf_counter()
        try:
            out = run()
        except Exception as exc:  # noqa: BLE001 - an exception in a faulty model is a DUE
            return {"outcome": "due", "due_reason": type(exc).__name__, "inputs": n,
                    "accuracy": 0.0, "sdc_inputs": n, "critical_inputs": 0,
                    "topk_changed_inputs": n, "max_logit_deviation": None,
                    "critical_logit_deviation": None,
                    "forward_seconds": time.perf_counter() - start}
        elapsed = time.perf_counter() - start
        rows = out if self.eval_ids is None else out[self.eval_ids]
        gold_rows = golden.output if self.eval_ids is None else golden.output[self.eval_ids]
        finite = torch.isfinite(rows)
        if tolerance > 0:
            row_diff = ((rows - gold_rows).abs() > tolerance) | ~finite
        else:
            row_diff = (rows != gold_rows) | ~finite
        differs = row_diff.any(dim=1)
        pred = rows.argmax(1)
        changed = (pred != golden.pred) & differs
        critical = changed & golden.correct
        deviation = (rows - gold_rows).abs().max() if rows.numel() else torch.tensor(0.0)
        flipped = (pred != golden.pred) & golden.correct  # for critical SDC at any tolerance
        critical_dev = (rows - gold_rows)[flipped].abs().max() if bool(flipped.any()) else 0.0
        result: dict[str, Any] = {
            "inputs": n,
            "sdc_inputs": int(differs.sum()),
            "critical_inputs": int(critical.sum()),
            "topk_changed_inputs": topk_changed(rows, gold_rows, golden, differs),
            "max_logit_deviation": float(deviation) if bool(finite.all()) else None,
            "critical_logit_deviation": float(critical_dev) if bool(finite.all()) else None,
            "accuracy": float((pred == self.labels).float().mean()),
            "forward_seconds": elapsed,
        }
        if not bool(finite.all()):
            result.update(outcome="due", due_reason="nonfinite")
        elif bool(critical.any()):
            result["outcome"] = "critical_sdc"
        elif bool(differs.any()):
            result["outcome"] = "sdc"
        else:
            result["outcome"] = "masked"
        if self.kind == "graph":
            all_diff = ((out != golden.output) | ~torch.isfinite(out)).any(dim=1)
            result["nodes_affected"] = int(all_diff.sum())
            if self.degree_bucket is not None:
                buckets = self.degree_bucket
                result["critical_by_degree"] = torch.bincount(
                    buckets[critical], minlength=self.num_buckets).tolist()
                result["sdc_by_degree"] = torch.bincount(
                    buckets[differs], minlength=self.num_buckets).tolist()
        return result


def topk_changed(rows: torch.Tensor, gold_rows: torch.Tensor, golden: Golden,
                 differs: torch.Tensor) -> int:
    """Inputs whose set of top-``TOP_K`` classes changed; computed only on the rows where some
    logit differs (elsewhere the set is golden's), against golden's cached sets."""
    k = min(TOP_K, rows.shape[1])
    ids = differs.nonzero().squeeze(1)
    top = rows[ids].topk(k, dim=1).indices.sort(dim=1).values
    return int((top != golden.top_sets(gold_rows, k)[ids]).any(dim=1).sum())


def convert(model: nn.Module, dtype: str) -> nn.Module:
    """The model in a float format (one copy per campaign and format, never per fault)."""
    if dtype in ("fp32", "int8"):
        return model
    return copy.deepcopy(model).to(TORCH_DTYPES[dtype])


def cast_inputs(args: tuple[Any, ...], dtype: str) -> tuple[Any, ...]:
    if dtype in ("fp32", "int8"):
        return args
    target = TORCH_DTYPES[dtype]
    return tuple(a.to(target) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in args)
