"""Sparsity / compression campaigns: spec errors naming the field, planning math and
end-to-end sweeps (the transforms themselves: ``tests/workers/transforms/``)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.local import run_local
from faultlab.workers.sparsity.planning import cubic_schedule, sensitivity_allocation
from faultlab.workers.transforms._common import weight_layers

warnings.filterwarnings("ignore")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread, as in a Ray shard task (more threads than free cores make
    PyTorch's OpenMP pool spin on a busy 2-core machine); restored for other modules."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_structured_rejects_attention_and_single_layer_models() -> None:
    for name in ("gat", "sgc"):
        spec = {"kind": "sparsity", "model": {"name": name}, "dataset": {"name": "karate"},
                "sparsity": {"methods": ["magnitude", "channel_l1"]}}
        with pytest.raises(SpecError) as err:
            get_engine("sparsity").validate(parse_spec(spec))
        assert err.value.field == "sparsity.methods[1]"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"levels": {"values": [0.5, 1.0]}}, "sparsity.levels.values"),
        ({"levels": {"min": -0.1}}, "sparsity.levels.min"),
        ({"nm": [{"n": 4, "m": 4}]}, "sparsity.nm.0"),
        ({"low_rank": {"rank_ratios": [0.0]}}, "sparsity.low_rank.rank_ratios"),
        ({"quantization": {"bits": [1]}}, "sparsity.quantization.bits"),
        ({"methods": ["magnitude", "pruney"]}, "sparsity.methods.1"),
        ({"sensitivity": {"levels": [1.5]}}, "sparsity.sensitivity.levels"),
        ({"compose": {"chains": [{"name": "a", "transforms": [{"name": "magnitude"}]}],
                      "faults": {"bits": [40]}}}, "sparsity.compose.faults.bits"),
    ],
)
def test_bad_sections_name_the_field(section: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"kind": "sparsity", "sparsity": section})
    assert err.value.field == field


def test_bad_layers_need_the_model() -> None:
    engine = get_engine("sparsity")
    spec = parse_spec(
        {"kind": "sparsity", "sparsity": {"sensitivity": {"layers": ["conv1", "relu1"]}}}
    )
    with pytest.raises(SpecError) as err:
        engine.validate(spec)
    assert err.value.field == "sparsity.sensitivity.layers[1]" and "ReLU" in err.value.problem
    spec = parse_spec({"kind": "sparsity", "model": {"name": "gat"}, "dataset": {"name": "karate"},
                       "sparsity": {"sensitivity": {"method": "channel_l2"}}})
    with pytest.raises(SpecError) as err:
        engine.validate(spec)
    assert err.value.field == "sparsity.sensitivity.method"


# ---------------------------------------------------------------- planning math


def test_cubic_schedule_and_allocation() -> None:
    levels = cubic_schedule(0.0, 0.8, 4)
    assert levels[-1] == pytest.approx(0.8) and levels == sorted(levels)
    assert levels[0] == pytest.approx(0.8 * (1 - 0.75**3), abs=1e-6)
    curves = {"a": [(0.0, 0.0), (0.5, 0.0), (0.9, 0.01)], "b": [(0.0, 0.0), (0.5, 0.2), (0.9, 0.6)]}
    sizes = {"a": 100.0, "b": 100.0}
    alloc = sensitivity_allocation(curves, sizes, 0.5)
    assert alloc["a"] > alloc["b"]
    assert (alloc["a"] + alloc["b"]) / 2 == pytest.approx(0.5, abs=1e-5)


# ---------------------------------------------------------------- end to end


def test_small_sweep_end_to_end(tmp_path: object) -> None:
    spec = {
        "kind": "sparsity", "seed": 3,
        "model": {"name": "digits_cnn"}, "dataset": {"name": "digits", "size": 300},
        "sparsity": {
            "methods": ["magnitude", "channel_l1", "nm"], "schedules": ["one_shot", "gradual"],
            "levels": {"values": [0.5, 0.75]}, "seeds": 2,
            "finetune": {"epochs": 0.05, "batch_size": 32}, "gradual": {"steps": 2},
            "quantization": {"int8": ["dynamic"], "bits": [4]},
            "low_rank": {"rank_ratios": [0.5]},
            "sensitivity": {"levels": [0.5, 0.9], "allocation_levels": [0.7]},
            "latency": {"repeats": 2, "warmup": 0},
        },
    }
    report, records = run_local(spec)
    assert report.summary["errors"] == 0, report.summary.get("first_error")
    cells = report.table(readable=False)
    methods = set(cells["method"])
    assert {
        "magnitude",
        "random",
        "channel_l1",
        "nm",
        "int8_dynamic",
        "fake_quant",
        "low_rank",
    } <= methods
    assert "global" in set(cells[cells["method"] == "magnitude"]["granularity"])  # baseline added
    unstructured = cells[cells["method"].isin(["magnitude", "random"])]
    assert (unstructured["achieved_sparsity"] - unstructured["level"]).abs().max() < 1e-3
    structured = cells[cells["method"] == "channel_l1"]
    assert (structured["params"] < report.summary["dense_params"]).all()
    assert (structured["masked_speedup"].notna()).all()
    assert set(report.tables) >= {"cells", "runs", "curves", "sensitivity", "allocation"}
    assert set(report.tables["allocation"]["strategy"]) == {"sensitivity", "uniform", "global"}
    assert cells["pareto_bytes"].any()
    json.dumps(report.to_dict())
    assert {p.name for p in report.save_plots(tmp_path)} == {
        "accuracy_vs_sparsity.png",
        "speedup.png",
        "sensitivity_heatmap.png",
    }
    # Replay: a cell and a sensitivity trial reproduce their stored outcome (timings aside).
    engine = get_engine("sparsity")
    prepared = engine.prepare(parse_spec(spec))
    json.dumps(
        [prepared.meta, [(r.trial, r.result) for r in records]], allow_nan=False
    )  # wire-safe
    picks = [r for r in records if r.trial["type"] == "sensitivity"][:1]
    picks += [
        r
        for r in records
        if r.trial.get("method") == "magnitude" and r.trial.get("schedule") == "gradual"
    ][:1]
    again = engine.run_shard(prepared.context, [r.trial for r in picks])
    for rec, res in zip(picks, again, strict=True):
        assert engine.outcomes_equal(rec.result, res)


def test_gnn_sweep_counts_edges() -> None:
    spec = {
        "kind": "sparsity",
        "model": {"name": "gcn"},
        "dataset": {"name": "karate"},
        "sparsity": {
            "methods": ["magnitude", "channel_l2"],
            "levels": {"values": [0.5]},
            "seeds": 1,
            "quantization": {"int8": ["dynamic"]},
            "latency": {"repeats": 2, "warmup": 0},
        },
    }
    report, _ = run_local(spec)
    assert report.summary["errors"] == 0, report.summary.get("first_error")
    cells = report.table(readable=False)
    dense = cells[cells["family"] == "dense"].iloc[0]
    edges_plus_loops = 156 + 34
    assert dense["aggregation_macs"] == pytest.approx(edges_plus_loops * (32 + 4))
    assert (
        cells[cells["method"] == "channel_l2"]["aggregation_macs"] < dense["aggregation_macs"]
    ).all()


def test_composed_fault_campaign_uses_identical_plan() -> None:
    spec: dict[str, Any] = {
        "kind": "sparsity",
        "model": {"name": "digits_cnn"},
        "dataset": {"name": "digits", "size": 100},
        "sparsity": {
            "methods": ["magnitude"],
            "levels": {"values": [0.5]},
            "seeds": 1,
            "latency": {"repeats": 1, "warmup": 0},
            "compose": {
                "chains": [
                    {
                        "name": "m50",
                        "transforms": [{"name": "magnitude", "params": {"sparsity": 0.5}}],
                    }
                ],
                "faults": {"sampling": "uniform", "trials": 40},
            },
        },
    }
    report, records = run_local(spec)
    faults = [r.trial for r in records if r.trial["type"] == "fault"]
    dense = [t["fault"]["faults"] for t in faults if t["variant"] == "dense"]
    pruned = [t["fault"]["faults"] for t in faults if t["variant"] == "m50"]
    assert len(dense) == 40 and dense == pruned
    comp = report.tables["composition"]
    assert list(comp["variant"]) == ["dense", "m50"]
    assert {"sdc_rate", "sdc_ci_low", "dense_vs_variant_sdc_ratio", "mcnemar_p"} <= set(
        comp.columns
    )
    # The twin is the dense model itself, pruned (not a retrained copy).
    workloads = get_engine("sparsity").prepare(parse_spec(spec)).context.faults.workloads
    dense_model, pruned_model = (wl.models["fp32"] for wl in workloads.values())
    for a, b in zip(weight_layers(dense_model), weight_layers(pruned_model), strict=True):
        kept = b.weight != 0
        assert torch.equal(a.weight[kept], b.weight[kept]) and float(
            kept.float().mean()
        ) == pytest.approx(0.5, abs=0.01)
    bad = {
        **spec,
        "sparsity": {
            **spec["sparsity"],
            "compose": {
                "chains": [
                    {
                        "name": "slim",
                        "transforms": [{"name": "channel_l1", "params": {"sparsity": 0.5}}],
                    }
                ],
                "faults": {"sampling": "uniform", "trials": 4},
            },
        },
    }
    with pytest.raises(SpecError) as err:
        get_engine("sparsity").prepare(parse_spec(bad))
    assert err.value.field == "sparsity.compose.chains[0]"


def test_allocation_is_selected_off_the_test_split() -> None:
    """The sensitivity scan and the allocation chosen from it never look at the test split:
    with every test label corrupted (and the dense test accuracy with them) the scan's
    results and the per-layer allocation are unchanged; the scan scores a seeded,
    label-stratified validation split of the training inputs, recorded in the provenance."""
    from faultlab.workers.engine import TrialRecord

    spec = parse_spec({
        "kind": "sparsity", "seed": 5, "model": {"name": "digits_cnn"},
        "dataset": {"name": "digits", "size": 200},
        "sparsity": {"methods": ["magnitude"], "levels": {"values": [0.5]}, "seeds": 1,
                     "finetune": {"epochs": 0},
                     "sensitivity": {"levels": [0.5, 0.95], "allocation_levels": [0.8]}},
    })
    engine = get_engine("sparsity")

    def allocation(corrupt: bool) -> tuple[list[dict[str, Any]], list[Any]]:
        prepared = engine.prepare(spec)
        ctx, meta = prepared.context, prepared.meta
        if corrupt:
            ctx.labels = (ctx.labels + 1) % 10
            meta["dense"]["accuracy"] = 0.0
        scans = [t for t in engine.plan(spec, meta, 0, []) if t["type"] == "sensitivity"]
        results = engine.run_shard(ctx, scans)
        records = [TrialRecord(str(i), t, r)
                   for i, (t, r) in enumerate(zip(scans, results, strict=True))]
        cells = engine.plan(spec, meta, 1, records)
        assert {r["total"] for r in results} == {meta["selection"]["size"]}
        return results, [c["allocation"] for c in cells if c["granularity"] == "sensitivity"]

    clean_results, clean_allocation = allocation(corrupt=False)
    corrupt_results, corrupt_allocation = allocation(corrupt=True)
    assert all(engine.outcomes_equal(a, b)
               for a, b in zip(clean_results, corrupt_results, strict=True))
    assert clean_allocation == corrupt_allocation and clean_allocation[0]
    selection = engine.prepare(spec).meta["selection"]
    assert selection["source"] == "train" and selection["seed"] == 5
    from faultlab.workers.zoo import load_dataset

    train_labels = load_dataset(spec.dataset).split("train")[1]
    assert selection["size"] == round(0.2 * len(train_labels)) and selection["ids_digest"]


def test_validation_split_of_a_graph_is_carved_from_its_training_nodes() -> None:
    from faultlab.workers.sparsity.selection import selection_split
    from faultlab.workers.zoo import load_dataset

    data = load_dataset(parse_spec({"kind": "sparsity", "model": {"name": "gcn"},
                                    "dataset": {"name": "sbm"}}).dataset)
    split = selection_split(data, 0.2, 3, 1024)
    assert split.ids is not None
    ids = set(split.ids.tolist())
    assert ids <= set(data.split("train").tolist()) and not ids & set(data.split("test").tolist())
    assert split.provenance["size"] == len(ids) == round(0.2 * len(data.split("train")))
    # Seeded: the same seed gives the same nodes, another seed other nodes.
    assert selection_split(data, 0.2, 3, 1024).provenance == split.provenance
    assert selection_split(data, 0.2, 4, 1024).provenance["ids_digest"] != split.provenance[
        "ids_digest"]
