"""Model transforms (``workers/transforms/``): masks against torch's reference, slimmed vs
masked twins, int8 tolerance, every transform on every GNN, and parameter errors naming the
field."""

from __future__ import annotations

import copy
import importlib
import re
import warnings
from collections.abc import Iterator
from typing import Any, cast

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from faultlab.errors import SpecError
from faultlab.spec import DatasetSpec, ModelSpec, TransformSpec
from faultlab.workers.transforms import TRANSFORMS, run_transform, validate_transforms
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
    return run_transform(name, model, data, params, seed=0)


# ---------------------------------------------------------------- masks vs torch.nn.utils.prune


@pytest.mark.parametrize(
    ("model_name", "dataset"),
    [("digits_cnn", DIGITS), ("resnet_small", DIGITS), ("gcn", KARATE), ("sage", KARATE)],
)
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
            [(layer.module, "weight") for layer in layers],
            pruning_method=prune.L1Unstructured,
            amount=sparsity,
        )
        for mine, theirs in zip(weight_layers(ours), layers, strict=True):
            assert torch.equal(mine.weight != 0, theirs.module.weight_mask.bool()), mine.name
        # baked in: no parametrization or pruning hook left behind
        assert not any(
            hasattr(m, "weight_mask") or hasattr(m, "parametrizations") for m in ours.modules()
        )


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
        src = (
            orig.weight.detach().movedim(1, -1) if w.dim() > 2 else orig.weight.detach()
        ).reshape(-1, 4)
        assert bool(((groups != 0).sum(1) == 2).all())
        kept = src.abs().topk(2, dim=1).values.sort(1).values
        assert torch.equal(groups.abs().sort(1).values[:, 2:], kept)


# ---------------------------------------------------------------- structured: slimmed == masked


@pytest.mark.parametrize(
    ("model_name", "dataset"),
    [
        ("digits_cnn", DIGITS),
        ("resnet_small", DIGITS),
        ("gcn", KARATE),
        ("sage", KARATE),
        ("gin", KARATE),
    ],
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
        changed = {
            n.rsplit(".", 1)[0] for n, p in model.named_parameters() if shapes[n].shape != p.shape
        }
        assert group.root in changed and changed <= set(group.members), group.root


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
    ("magnitude", {"sparsity": 0.5}),
    ("global_magnitude", {"sparsity": 0.5}),
    ("random", {"sparsity": 0.5}),
    ("gradient_magnitude", {"sparsity": 0.5, "samples": 8}),
    ("nm", {"n": 1, "m": 2}),
    ("channel_l2", {"sparsity": 0.5}),
    ("int8_dynamic", {}),
    ("int8_static", {}),
    ("fake_quant", {"bits": 4}),
    ("low_rank", {"rank_ratio": 0.25, "force": True}),
    ("distill", {"width_ratio": 0.5, "epochs": 3}),
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


# ---------------------------------------------------------------- shipped to workers


@pytest.mark.parametrize(("model_name", "dataset"), [("digits_cnn", DIGITS), ("gcn", KARATE)])
def test_every_transformed_model_survives_rays_pickling(model_name: str,
                                                        dataset: DatasetSpec) -> None:
    """A campaign's context (its transformed models) leaves the prepare task through Ray's
    cloudpickle. An FX-converted int8 model once failed there: the zoo's postponed
    annotations left the string "torch.Tensor" as a graph global, and GraphModule's pickling
    cannot name a string (the campaign failed with "'str' object has no attribute
    '__name__'")."""
    import ray.cloudpickle

    model, data = skeleton(model_name, dataset)
    graph = model_name == "gcn"
    args = (data.data.x, data.data.edge_index) if graph else (data.split("test")[0][:16],)
    for name, params in GNN_TRANSFORMS:
        if name in ("distill", "finetune", "gradient_magnitude"):
            continue  # training: their output is an ordinary module of the same classes
        out = apply(name, copy.deepcopy(model), data, **params).eval()
        back = ray.cloudpickle.loads(ray.cloudpickle.dumps(out))
        with torch.no_grad():
            a, b = out(*args), back(*args)
        a, b = (t.dequantize() if t.is_quantized else t for t in (a, b))
        assert torch.equal(a, b), name


# ---------------------------------------------------------------- bad parameters


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


@pytest.mark.parametrize(
    ("transform", "field"),
    [
        ({"name": "nm", "params": {"m": 2}}, "n"),  # n defaults to 2: N < M still checked
        ({"name": "magnitude", "params": {}}, "sparsity"),
        ({"name": "magnitude", "params": {"sparsity": True}}, "sparsity"),
        (
            {"name": "magnitude", "params": {"sparsity": 0.5, "per_layer": {"conv1": 1.0}}},
            "per_layer.conv1",
        ),
        ({"name": "finetune", "params": {"batch_size": 3.0}}, "batch_size"),
        ({"name": "distill", "params": {"student_options": None}}, "student_options"),
        ({"name": "int8_static", "params": {"mode": "jit"}}, "mode"),
        ({"name": "channel_l2", "params": {"sparsity": 0.5, "max_ratio": 1.0}}, "max_ratio"),
    ],
)
def test_params_keep_the_accepted_values(transform: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        validate_transforms([TransformSpec.model_validate(transform)])
    assert err.value.field == f"model.transforms[0].params.{field}"


def test_unknown_transform_names_the_field_with_the_allowed_names() -> None:
    with pytest.raises(SpecError) as err:
        validate_transforms(
            [TransformSpec.model_validate({"name": "prunex"})], "sparsity.chains[0]"
        )
    assert err.value.field == "sparsity.chains[0][0].name"
    assert err.value.allowed == ", ".join(TRANSFORMS.names()) and "magnitude" in TRANSFORMS


def test_every_transform_cites_its_paper_and_documents_its_params() -> None:
    from faultlab.workers.sparsity.params import PRUNING_METHODS

    assert set(PRUNING_METHODS.values()) <= set(TRANSFORMS.names())
    for name, method in TRANSFORMS.entries().items():
        module = importlib.import_module(method.impl.__module__)
        assert re.search(r"(19|20)\d\d", module.__doc__ or ""), name
        assert ".. math::" in (module.__doc__ or ""), name
        assert re.search(r"(19|20)\d\d", method.citation) and method.summary, name
        for field, info in method.params.model_fields.items():
            assert info.description, (name, field)
