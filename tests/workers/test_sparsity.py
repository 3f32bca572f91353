"""Sparsity / compression: transforms against torch's reference masks, slimmed vs masked
twins, int8 tolerance, spec errors naming the field, and end-to-end campaigns."""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator
from typing import Any, cast

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from faultlab.errors import SpecError
from faultlab.spec import DatasetSpec, ModelSpec, TransformSpec, parse_spec
from faultlab.workers import get_engine
from faultlab.workers.local import run_local
from faultlab.workers.sparsity.planning import cubic_schedule, sensitivity_allocation
from faultlab.workers.transforms import get_transform, validate_transforms
from faultlab.workers.transforms._common import weight_layers
from faultlab.workers.zoo import build_model, evaluate, load_dataset, trained_model

warnings.filterwarnings("ignore")

DIGITS = DatasetSpec.model_validate({"name": "digits"})
KARATE = DatasetSpec.model_validate({"name": "karate"})


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread, as in a Ray shard task (more threads than free cores make
    PyTorch's OpenMP pool spin on a busy 2-core machine); restored for other modules."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def skeleton(name: str, dataset: DatasetSpec, seed: int = 0) -> tuple[nn.Module, Any]:
    data = load_dataset(dataset)
    torch.manual_seed(seed)
    return build_model(ModelSpec.model_validate({"name": name}), data).eval(), data


def apply(name: str, model: nn.Module, data: Any, **params: Any) -> nn.Module:
    return get_transform(name).fn(model, data, seed=0, **params)


# ---------------------------------------------------------------- masks vs torch.nn.utils.prune


@pytest.mark.parametrize(("model_name", "dataset"), [("digits_cnn", DIGITS), ("resnet_small", DIGITS), ("gcn", KARATE), ("sage", KARATE)])
def test_magnitude_masks_equal_torch_prune(model_name: str, dataset: DatasetSpec) -> None:
    model, data = skeleton(model_name, dataset)
    for sparsity in (0.3, 0.5, 0.9):
        ours = apply("magnitude", copy.deepcopy(model), data, sparsity=sparsity)
        ref = copy.deepcopy(model)
        for layer in weight_layers(ref):
            prune.l1_unstructured(layer.module, "weight", amount=sparsity)
        for mine, theirs in zip(weight_layers(ours), weight_layers(ref), strict=True):
            assert torch.equal(mine.weight != 0, theirs.module.weight_mask.bool()), mine.name

        ours = apply("global_magnitude", copy.deepcopy(model), data, sparsity=sparsity)
        ref = copy.deepcopy(model)
        layers = weight_layers(ref)
        prune.global_unstructured(
            [(layer.module, "weight") for layer in layers], pruning_method=prune.L1Unstructured, amount=sparsity
        )
        for mine, theirs in zip(weight_layers(ours), layers, strict=True):
            assert torch.equal(mine.weight != 0, theirs.module.weight_mask.bool()), mine.name
        # baked in: no parametrization or pruning hook left behind
        assert not any(hasattr(m, "weight_mask") or hasattr(m, "parametrizations") for m in ours.modules())


def test_random_and_gradient_prune_exact_counts() -> None:
    model, data = skeleton("digits_cnn", DIGITS)
    for name, extra in (("random", {}), ("gradient_magnitude", {"samples": 64})):
        for scope in ("layer", "global"):
            pruned = apply(name, copy.deepcopy(model), data, sparsity=0.6, scope=scope, **extra)
            layers = weight_layers(pruned)
            zeros = [int((layer.weight == 0).sum()) for layer in layers]
            sizes = [layer.weight.numel() for layer in layers]
            if scope == "layer":
                assert zeros == [round(0.6 * n) for n in sizes]
            else:
                assert sum(zeros) == round(0.6 * sum(sizes))
    # Gradual (increasing levels) only grows the mask, and hits the count exactly.
    for name, extra in (("random", {}), ("gradient_magnitude", {"samples": 64})):
        once = apply(name, copy.deepcopy(model), data, sparsity=0.4, **extra)
        twice = apply(name, copy.deepcopy(once), data, sparsity=0.7, **extra)
        for a, b in zip(weight_layers(once), weight_layers(twice), strict=True):
            assert bool(((a.weight == 0) <= (b.weight == 0)).all())
            assert int((b.weight == 0).sum()) == round(0.7 * b.weight.numel())


def test_nm_two_four() -> None:
    model, data = skeleton("digits_cnn", DIGITS)
    pruned = apply("nm", copy.deepcopy(model), data, n=2, m=4)
    for layer, orig in zip(weight_layers(pruned), weight_layers(model), strict=True):
        w = layer.weight.detach()
        if w.shape[1] % 4:
            assert torch.equal(w, orig.weight.detach())  # conv1 (1 input channel) stays dense
            continue
        groups = (w.movedim(1, -1) if w.dim() > 2 else w).reshape(-1, 4)
        src = (orig.weight.detach().movedim(1, -1) if w.dim() > 2 else orig.weight.detach()).reshape(-1, 4)
        assert bool(((groups != 0).sum(1) == 2).all())
        kept = src.abs().topk(2, dim=1).values.sort(1).values
        assert torch.equal(groups.abs().sort(1).values[:, 2:], kept)


# ---------------------------------------------------------------- structured: slimmed == masked


@pytest.mark.parametrize(
    ("model_name", "dataset"),
    [("digits_cnn", DIGITS), ("resnet_small", DIGITS), ("gcn", KARATE), ("sage", KARATE), ("gin", KARATE)],
)
def test_slimmed_equals_masked_twin(model_name: str, dataset: DatasetSpec) -> None:
    model, data = skeleton(model_name, dataset)
    if model_name == "resnet_small":  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                cast(torch.Tensor, m.running_mean).uniform_(-0.5, 0.5)
                cast(torch.Tensor, m.running_var).uniform_(0.5, 2.0)
    for norm in ("channel_l1", "channel_l2"):
        slim = apply(norm, copy.deepcopy(model), data, sparsity=0.5)
        masked = apply(norm, copy.deepcopy(model), data, sparsity=0.5, masked=True)
        n_slim = sum(p.numel() for p in slim.parameters())
        assert n_slim < sum(p.numel() for p in model.parameters())
        nonzero = [sum(int((p != 0).sum()) for p in m.parameters()) for m in (slim, masked)]
        assert nonzero[0] == nonzero[1]  # the twin zeroes exactly what the slim model removes
        with torch.no_grad():
            args: tuple[Any, ...] = (
                (data.data.x, data.data.edge_index) if data.kind == "graph" else (data.x_test[:64],)
            )
            torch.testing.assert_close(slim(*args), masked(*args), rtol=1e-4, atol=1e-5)


def test_structured_prunes_one_coupled_group_at_a_time() -> None:
    from faultlab.workers.transforms.channel_pruning import channel_groups

    model, data = skeleton("resnet_small", DIGITS)
    groups = channel_groups(copy.deepcopy(model), data)
    assert len(groups) == 6 and "fc" not in {g.root for g in groups}
    for group in groups:
        pruned = apply("channel_l1", copy.deepcopy(model), data, sparsity=0.5, layers=[group.root])
        shapes = dict(pruned.named_parameters())
        changed = {n.rsplit(".", 1)[0] for n, p in model.named_parameters() if shapes[n].shape != p.shape}
        assert group.root in changed and changed <= set(group.members), group.root


def test_structured_rejects_attention_and_single_layer_models() -> None:
    for name in ("gat", "sgc"):
        spec = {"kind": "sparsity", "model": {"name": name}, "dataset": {"name": "karate"},
                "sparsity": {"methods": ["magnitude", "channel_l1"]}}
        with pytest.raises(SpecError) as err:
            get_engine("sparsity").validate(parse_spec(spec))
        assert err.value.field == "sparsity.methods[1]"


# ---------------------------------------------------------------- quantization, low rank


def test_int8_within_tolerance_of_fp32() -> None:
    """Stated tolerance: post-training int8 loses at most 2 accuracy points on the zoo models."""
    for name, dataset in (("digits_cnn", DIGITS), ("gcn", KARATE)):
        data = load_dataset(dataset)
        model, _ = trained_model(ModelSpec.model_validate({"name": name}), data)
        fp32 = evaluate(model, data)
        for transform in ("int8_dynamic", "int8_static"):
            q = apply(transform, copy.deepcopy(model), data)
            assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in q.modules())
            assert evaluate(q, data) >= fp32 - 0.02, (name, transform)


def test_fake_quant_levels_and_low_rank_full_rank() -> None:
    model, data = skeleton("digits_cnn", DIGITS)
    q = apply("fake_quant", copy.deepcopy(model), data, bits=3)
    for layer in weight_layers(q):
        for row in layer.weight.detach().reshape(layer.weight.shape[0], -1):
            assert row.unique().numel() <= 2**3 - 1
    full = apply("low_rank", copy.deepcopy(model), data, rank_ratio=1.0, force=True)
    assert isinstance(full.fc1, nn.Sequential)
    x = data.x_test[:32]
    with torch.no_grad():
        torch.testing.assert_close(full(x), model(x), rtol=1e-4, atol=1e-4)
    small = apply("low_rank", copy.deepcopy(model), data, rank_ratio=0.25)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


GNN_TRANSFORMS: list[tuple[str, dict[str, Any]]] = [
    ("magnitude", {"sparsity": 0.5}), ("global_magnitude", {"sparsity": 0.5}), ("random", {"sparsity": 0.5}),
    ("gradient_magnitude", {"sparsity": 0.5, "samples": 8}), ("nm", {"n": 1, "m": 2}),
    ("channel_l2", {"sparsity": 0.5}), ("int8_dynamic", {}), ("int8_static", {}), ("fake_quant", {"bits": 4}),
    ("low_rank", {"rank_ratio": 0.25, "force": True}), ("distill", {"width_ratio": 0.5, "epochs": 3}),
    ("finetune", {"epochs": 2}),
]


@pytest.mark.parametrize("model_name", ["gcn", "sgc", "gat", "gin", "sage"])
def test_every_transform_on_every_gnn(model_name: str) -> None:
    model, data = skeleton(model_name, KARATE)
    args = (data.data.x, data.data.edge_index)
    for name, params in GNN_TRANSFORMS:
        if name in ("channel_l2", "distill") and model_name in ("gat", "sgc"):
            with pytest.raises(SpecError):
                apply(name, copy.deepcopy(model), data, **params)
            continue
        out = apply(name, copy.deepcopy(model), data, **params).eval()
        with torch.no_grad():
            logits = out(*args)
        logits = logits.dequantize() if logits.is_quantized else logits
        assert logits.shape == (34, 4) and bool(torch.isfinite(logits).all()), name
        if name in ("magnitude", "global_magnitude", "random", "gradient_magnitude", "nm"):
            zeros = [float((layer.weight == 0).float().mean()) for layer in weight_layers(out)]
            assert zeros and max(zeros) >= 0.45, name  # the PyG convs' own weights were pruned


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


@pytest.mark.parametrize(
    ("transform", "field"),
    [
        ({"name": "magnitude", "params": {"sparsity": 1.0}}, "sparsity"),
        ({"name": "global_magnitude", "params": {"sparsity": -0.2}}, "sparsity"),
        ({"name": "nm", "params": {"n": 3, "m": 2}}, "n"),
        ({"name": "low_rank", "params": {"rank_ratio": 0}}, "rank_ratio"),
        ({"name": "fake_quant", "params": {"bits": 9}}, "bits"),
        ({"name": "channel_l1", "params": {"sparsity": 0.5, "colour": 1}}, "colour"),
    ],
)
def test_bad_transform_params_name_the_field(transform: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        validate_transforms([TransformSpec.model_validate(transform)])
    assert err.value.field == f"model.transforms[0].params.{field}"


def test_bad_layers_need_the_model() -> None:
    engine = get_engine("sparsity")
    spec = parse_spec({"kind": "sparsity", "sparsity": {"sensitivity": {"layers": ["conv1", "relu1"]}}})
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
    cells = report.table()
    methods = set(cells["method"])
    assert {"magnitude", "random", "channel_l1", "nm", "int8_dynamic", "fake_quant", "low_rank"} <= methods
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
    assert {p.name for p in report.save_plots(tmp_path)} == {"accuracy_vs_sparsity.png", "sensitivity_heatmap.png"}
    # Replay: a cell and a sensitivity trial reproduce their stored outcome (timings aside).
    engine = get_engine("sparsity")
    prepared = engine.prepare(parse_spec(spec))
    json.dumps([prepared.meta, [(r.trial, r.result) for r in records]], allow_nan=False)  # wire-safe
    picks = [r for r in records if r.trial["type"] == "sensitivity"][:1]
    picks += [r for r in records if r.trial.get("method") == "magnitude" and r.trial.get("schedule") == "gradual"][:1]
    again = engine.run_shard(prepared.context, [r.trial for r in picks])
    for rec, res in zip(picks, again, strict=True):
        assert engine.outcomes_equal(rec.result, res)


def test_gnn_sweep_counts_edges() -> None:
    spec = {
        "kind": "sparsity", "model": {"name": "gcn"}, "dataset": {"name": "karate"},
        "sparsity": {"methods": ["magnitude", "channel_l2"], "levels": {"values": [0.5]}, "seeds": 1,
                     "quantization": {"int8": ["dynamic"]}, "latency": {"repeats": 2, "warmup": 0}},
    }
    report, _ = run_local(spec)
    assert report.summary["errors"] == 0, report.summary.get("first_error")
    cells = report.table()
    dense = cells[cells["family"] == "dense"].iloc[0]
    edges_plus_loops = 156 + 34
    assert dense["aggregation_macs"] == pytest.approx(edges_plus_loops * (32 + 4))
    assert (cells[cells["method"] == "channel_l2"]["aggregation_macs"] < dense["aggregation_macs"]).all()


def test_composed_fault_campaign_uses_identical_plan() -> None:
    spec: dict[str, Any] = {
        "kind": "sparsity", "model": {"name": "digits_cnn"}, "dataset": {"name": "digits", "size": 100},
        "sparsity": {
            "methods": ["magnitude"], "levels": {"values": [0.5]}, "seeds": 1,
            "latency": {"repeats": 1, "warmup": 0},
            "compose": {"chains": [{"name": "m50", "transforms": [{"name": "magnitude", "params": {"sparsity": 0.5}}]}],
                        "faults": {"sampling": "uniform", "trials": 40}},
        },
    }
    report, records = run_local(spec)
    faults = [r.trial for r in records if r.trial["type"] == "fault"]
    dense = [t["fault"]["faults"] for t in faults if t["variant"] == "dense"]
    pruned = [t["fault"]["faults"] for t in faults if t["variant"] == "m50"]
    assert len(dense) == 40 and dense == pruned
    comp = report.tables["composition"]
    assert list(comp["variant"]) == ["dense", "m50"]
    assert {"sdc_rate", "sdc_ci_low", "dense_vs_variant_sdc_ratio", "mcnemar_p"} <= set(comp.columns)
    # The twin is the dense model itself, pruned (not a retrained copy).
    workloads = get_engine("sparsity").prepare(parse_spec(spec)).context.faults.workloads
    dense_model, pruned_model = (wl.models["fp32"] for wl in workloads.values())
    for a, b in zip(weight_layers(dense_model), weight_layers(pruned_model), strict=True):
        kept = b.weight != 0
        assert torch.equal(a.weight[kept], b.weight[kept]) and float(kept.float().mean()) == pytest.approx(0.5, abs=0.01)
    bad = {**spec, "sparsity": {**spec["sparsity"], "compose": {
        "chains": [{"name": "slim", "transforms": [{"name": "channel_l1", "params": {"sparsity": 0.5}}]}],
        "faults": {"sampling": "uniform", "trials": 4}}}}
    with pytest.raises(SpecError) as err:
        get_engine("sparsity").prepare(parse_spec(bad))
    assert err.value.field == "sparsity.compose.chains[0]"
