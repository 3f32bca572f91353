"""Composition: the fault engine on dense and compressed models, on the identical fault plan.

The composed fault campaign is derived from the sparsity spec: same seed, model, dataset; the
``sparsity.compose.faults`` section; one extra model per chain — the spec's model with the
chain appended to ``model.transforms`` (so the fault engine loads it exactly as any campaign
with ``model.transforms`` would). Fault trials are planned by the fault engine on the dense
model only, and each one is copied to every compressed variant with only the workload
renamed: same site, same element index, same bit, same seed. That requires every chain to keep
the fault sites' names and shapes (masks, N:M, fake quantization, masked channel pruning);
``prepare`` checks it.
"""

from __future__ import annotations

from typing import Any

from faultlab.errors import SpecError
from faultlab.spec import CampaignSpec, parse_spec
from faultlab.workers.engine import Prepared, TrialRecord
from faultlab.workers.sparsity.params import SparsityParams


def fault_spec(spec: CampaignSpec, params: SparsityParams) -> CampaignSpec:
    """The derived ``faults`` campaign (dense model first, then one model per chain)."""
    if params.compose is None:
        raise SpecError("sparsity.compose", "is not set: nothing to compose")
    model = spec.model.model_dump(mode="json")
    variants = [
        {**model, "transforms": [*model["transforms"],
                                 *[t.model_dump(mode="json") for t in chain.transforms]]}
        for chain in params.compose.chains
    ]
    return parse_spec({
        "kind": "faults",
        "name": f"{spec.name}:compose" if spec.name else "compose",
        "seed": spec.seed,
        "model": model,
        "dataset": spec.dataset.model_dump(mode="json"),
        "execution": spec.execution.model_dump(mode="json"),
        "faults": {**params.compose.faults, "compare_models": variants},
    })


def variant_names(params: SparsityParams) -> list[str]:
    if params.compose is None:
        return ["dense"]
    return ["dense", *[c.name for c in params.compose.chains]]


def check_identical_sites(meta: dict[str, Any], params: SparsityParams) -> None:
    """Every compressed workload must expose the dense workload's sites (names and sizes)."""
    workloads = meta["workloads"]
    dense = workloads[0]

    def signature(wl: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
        return {dt: [(s["name"], int(s["numel"])) for s in sites]
                for dt, sites in wl["sites"].items()}

    for i, wl in enumerate(workloads[1:]):
        if signature(wl) != signature(dense):
            raise SpecError(
                f"sparsity.compose.chains[{i}]",
                "changes the names or shapes of the fault sites, so the dense fault plan cannot "
                "be replayed on it; use shape-preserving transforms (magnitude, "
                "global_magnitude, random, gradient_magnitude, nm, fake_quant, finetune, "
                "channel_l1/l2 with masked: true)",
            )


def dense_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "workloads": meta["workloads"][:1]}


def replicate(
    trials: list[dict[str, Any]], meta: dict[str, Any], params: SparsityParams
) -> list[dict[str, Any]]:
    """The sparsity engine's fault trials: each dense fault trial once per variant."""
    names = [wl["name"] for wl in meta["workloads"]]
    dense = names[0]
    out = []
    for trial in trials:
        for variant, workload in zip(variant_names(params), names, strict=True):
            copy = dict(trial)
            copy["workload"] = workload
            copy["stratum"] = workload + trial["stratum"][len(dense):]
            out.append({"type": "fault", "variant": variant, "fault": copy})
    return out


def dense_records(records: list[TrialRecord]) -> list[TrialRecord]:
    """The dense model's fault records, as the fault engine's planner expects them."""
    return [
        TrialRecord(r.key, r.trial["fault"], r.result, r.attempts)
        for r in records
        if r.trial.get("type") == "fault" and r.trial["variant"] == "dense"
    ]


def fault_records(records: list[TrialRecord]) -> list[TrialRecord]:
    return [
        TrialRecord(r.key, r.trial["fault"], r.result, r.attempts)
        for r in records
        if r.trial.get("type") == "fault"
    ]


def _in_sparsity_terms(exc: SpecError) -> SpecError:
    """A fault engine error on the derived spec, with the field named as the user wrote it."""
    field = exc.field
    if field.startswith("faults.compare_models["):
        index = field[len("faults.compare_models["):].split("]", 1)[0]
        field = f"sparsity.compose.chains[{index}]"
    elif field.startswith("faults."):
        field = "sparsity.compose." + field
    return SpecError(field, exc.problem, exc.allowed)


def validate_faults(spec: CampaignSpec, params: SparsityParams) -> None:
    """The fault engine's deep checks of the derived campaign (``prepare`` does not repeat
    them)."""
    from faultlab.workers import get_engine

    try:
        get_engine("faults").validate(fault_spec(spec, params))
    except SpecError as exc:
        raise _in_sparsity_terms(exc) from None


def prepare_faults(spec: CampaignSpec, params: SparsityParams) -> Prepared:
    """The fault engine's context and meta of the derived campaign; checks that every chain
    keeps the dense model's fault sites."""
    from faultlab.workers import get_engine

    try:
        prepared = get_engine("faults").prepare(fault_spec(spec, params))
    except SpecError as exc:
        raise _in_sparsity_terms(exc) from None
    check_identical_sites(prepared.meta, params)
    return prepared
