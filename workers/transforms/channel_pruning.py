r"""Structured L1/L2 channel pruning that physically removes channels and everything coupled
to them, through Torch-Pruning's dependency graph.

Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023 (Torch-Pruning); L1 filter
norms follow Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017, L2 norms He et al.,
"Soft Filter Pruning for Accelerating Deep Convolutional Neural Networks", IJCAI 2018. A group
``g`` of coupled channels (a filter, its batch-norm entries, the next layers' input channels,
...) scores the mean ``L_p`` norm of its weights,

.. math:: I(g) = \frac{1}{|g|} \sum_{W \in g} \lVert W_{c} \rVert_p, \qquad p \in \{1, 2\}

and the ``sparsity`` fraction of lowest-scoring groups (per layer or globally) is removed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.transforms._common import (
    CONV_TYPES,
    Fraction,
    PerLayerPruningParams,
    Scope,
    example_inputs,
    to_torch_linear,
)
from faultlab.workers.transforms.registry import TRANSFORMS

#: PyG layers whose channels are tied across attention heads in ways a channel mask cannot
#: follow (a head's slice of ``lin`` is reshaped against ``att_src``/``att_dst``).
UNSUPPORTED = ("GATConv", "GATv2Conv", "TransformerConv", "MultiheadAttention", "SuperGATConv")


class Params(PerLayerPruningParams):
    """Parameters of ``channel_l1`` / ``channel_l2``."""

    sparsity: Fraction
    """Fraction of each group's channels removed, in [0, 1) (parameters lose more)."""
    scope: Scope = "layer"
    """``layer``: the fraction of every group's channels; ``global``: ranked across groups."""
    masked: bool = False
    """Zero the channels in place (the masked twin) instead of removing them."""
    max_ratio: Fraction = 0.95
    """Largest fraction of any one group's channels removed, in [0, 1)."""


def unsupported_layers(model: nn.Module) -> list[tuple[str, str]]:
    """``(name, type)`` of every layer structured pruning cannot handle."""
    return [
        (n, type(m).__name__) for n, m in model.named_modules() if type(m).__name__ in UNSUPPORTED
    ]


@dataclass(frozen=True)
class ChannelGroup:
    """A set of coupled channels, named by its root layer (the one whose outputs it prunes)."""

    root: str
    members: tuple[str, ...]
    channels: int


def _dependency_graph(model: nn.Module, data: Any) -> Any:
    import torch_pruning as tp

    with warnings.catch_warnings():
        # Torch-Pruning warns about every bare nn.Parameter (e.g. GCNConv.bias); the default
        # (prune its last non-singleton axis) is right for 1-d biases.
        warnings.simplefilter("ignore")
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs(data))


def output_layers(model: nn.Module, data: Any, graph: Any) -> set[nn.Module]:
    """Weight layers whose output channels are the model's outputs (classes): never pruned."""
    import torch_pruning as tp

    roots = [m for m in model.modules() if isinstance(m, (*CONV_TYPES, nn.Linear))]
    produced: list[tuple[nn.Module, Any]] = []  # holds the outputs alive: ids are not reused
    hooks = [
        m.register_forward_hook(lambda mod, _i, out: produced.append((mod, out))) for m in roots
    ]
    try:
        with torch.no_grad():
            out = model(*example_inputs(data))
    finally:
        for h in hooks:
            h.remove()
    result = {mod for mod, value in produced if value is out}
    for group in graph.get_all_groups(root_module_types=[*CONV_TYPES, nn.Linear]):
        if any(item.dep.target.type == tp.ops.OPTYPE.OUTPUT for item in group):
            result |= {item.dep.target.module for item in group if item.dep.target.module in roots}
    return result


def channel_groups(model: nn.Module, data: Any) -> list[ChannelGroup]:
    """The prunable coupled channel groups of ``model`` (after PyG ``Linear`` → ``nn.Linear``),
    each named by its root layer — the targets of a structured sensitivity scan."""
    model = to_torch_linear(model)
    check_supported(model)
    graph = _dependency_graph(model, data)
    names = {m: n for n, m in model.named_modules()}
    outputs = output_layers(model, data, graph)
    groups = []
    for group in graph.get_all_groups(
        ignored_layers=list(outputs), root_module_types=[*CONV_TYPES, nn.Linear]
    ):
        root = group[0].dep.target.module
        members = sorted(
            {names[it.dep.target.module] for it in group if it.dep.target.module in names}
        )
        groups.append(ChannelGroup(names[root], tuple(members), len(group[0].idxs)))
    return groups


def check_supported(model: nn.Module, field: str = "layers") -> None:
    bad = unsupported_layers(model)
    if bad:
        name, kind = bad[0]
        raise SpecError(
            field,
            f"structured channel pruning cannot handle {kind} layer {name!r} (attention heads "
            "couple its channels); use unstructured, N:M or low-rank methods on this model",
            ["Conv1d/2d/3d", "Linear", "BatchNorm", "GCNConv", "SGConv", "SAGEConv", "GINConv"],
        )


def _keep_one_importance() -> type:
    import torch_pruning as tp

    class KeepOne(tp.importance.GroupMagnitudeImportance):  # type: ignore[misc]
        """Group-mean L_p norm, with each group's most important channel made unprunable."""

        def __call__(self, group: Any) -> torch.Tensor | None:
            imp: torch.Tensor | None = super().__call__(group)
            if imp is not None and imp.numel() > 0:
                imp = imp.clone()
                imp[imp.argmax()] = float("inf")
            return imp

    return KeepOne


def _KeepOneImportance(p: int) -> Any:  # noqa: N802 - reads as the class it builds
    return _keep_one_importance()(p=p)


def _conv_or_linear(module: Any) -> bool:
    return isinstance(module, (*CONV_TYPES, nn.Linear))


def zero_group(group: Any, graph: Any) -> None:
    """The masked twin of ``group.prune()``: the same channels set to zero in place, in every
    coupled tensor (weights, biases, batch-norm scale and shift), so the network computes
    exactly what the physically slimmed one does."""
    with torch.no_grad():
        for item in group:
            target, idxs = item.dep.target, torch.as_tensor(list(item.idxs), dtype=torch.long)
            module: Any = target.module
            out = graph.is_out_channel_pruning_fn(item.dep.handler)
            if isinstance(module, nn.Parameter):
                module.index_fill_(target.pruning_dim, idxs, 0.0)
            elif _conv_or_linear(module):
                if out:
                    module.weight.index_fill_(0, idxs, 0.0)
                    if module.bias is not None:
                        module.bias.index_fill_(0, idxs, 0.0)
                else:
                    module.weight.index_fill_(1, idxs, 0.0)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm):
                for tensor in (module.weight, module.bias):
                    if tensor is not None:
                        tensor.index_fill_(0, idxs, 0.0)
            elif _has_own_parameters(module):
                raise SpecError("masked", f"cannot mask channels of {type(module).__name__}")


def _has_own_parameters(module: Any) -> bool:
    params = getattr(module, "parameters", None)
    return params is not None and next(iter(params(recurse=False)), None) is not None


def _groups(pruner: Any) -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield from pruner.step(interactive=True)


def prune_channels(
    model: nn.Module,
    data: Any,
    *,
    norm: int,
    sparsity: float,
    scope: str = "layer",
    layers: list[str] | None = None,
    exclude: list[str] | None = None,
    per_layer: dict[str, float] | None = None,
    masked: bool = False,
    max_ratio: float = 0.95,
) -> nn.Module:
    """Removes (or, ``masked``, zeroes) the lowest-``L_norm`` coupled channels of ``model``."""
    import torch_pruning as tp

    model = to_torch_linear(model)
    check_supported(model)
    was_training = model.training
    model.eval()
    graph = _dependency_graph(model, data)
    modules = dict(model.named_modules())
    outputs = output_layers(model, data, graph)
    _check_layer_names(modules, layers, exclude, per_layer)
    all_groups = list(graph.get_all_groups(
        ignored_layers=list(outputs), root_module_types=[*CONV_TYPES, nn.Linear]
    ))
    members = [
        {it.dep.target.module for it in group
         if graph.is_out_channel_pruning_fn(it.dep.handler)
         and _conv_or_linear(it.dep.target.module)}
        for group in all_groups
    ]
    ignored = _ignored_layers(modules, members, outputs, layers, exclude)
    ratios, default_ratio = _group_ratios(
        modules, all_groups, members, ignored, sparsity, scope, per_layer
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unwrapped nn.Parameter notices (see _dependency_graph)
        pruner = tp.pruner.BasePruner(
            model,
            example_inputs(data),
            importance=_KeepOneImportance(p=norm),
            global_pruning=scope == "global",
            pruning_ratio=max(0.0, default_ratio),
            pruning_ratio_dict=ratios,
            max_pruning_ratio=max_ratio,
            ignored_layers=list(ignored),
        )
    for group in _groups(pruner):
        if masked:
            zero_group(group, pruner.DG)
        else:
            group.prune()
    model.train(was_training)
    return model


def _check_layer_names(
    modules: dict[str, nn.Module], layers: list[str] | None, exclude: list[str] | None,
    per_layer: dict[str, float] | None,
) -> None:
    roots = {n for n, m in modules.items() if isinstance(m, (*CONV_TYPES, nn.Linear))}
    named = (("layers", layers), ("exclude", exclude), ("per_layer", list(per_layer or {})))
    for key, names in named:
        for i, name in enumerate(names or []):
            if name not in roots:
                field = f"{key}[{i}]" if key != "per_layer" else f"per_layer.{name}"
                problem = f"no convolution or linear layer named {name!r}"
                raise SpecError(field, problem, sorted(roots))


def _ignored_layers(
    modules: dict[str, nn.Module], members: list[set[nn.Module]], outputs: set[nn.Module],
    layers: list[str] | None, exclude: list[str] | None,
) -> set[nn.Module]:
    """The layers Torch-Pruning must leave alone: outputs, excluded ones, and — when ``layers``
    chooses — every group without a chosen layer."""
    # Torch-Pruning skips a whole group as soon as one of its layers is ignored, so choosing
    # layers means ignoring the layers of every *other* group (groups never share a layer).
    ignored = set(outputs)
    if layers is not None:
        wanted = {modules[n] for n in layers}
        for i, name in enumerate(layers):
            if not any(modules[name] in group for group in members):
                raise SpecError(
                    f"layers[{i}]",
                    f"{name!r} is an output (class) layer: its channels cannot be removed",
                )
        for group in members:
            if not group & wanted:
                ignored |= group
    ignored |= {modules[n] for n in exclude or []}  # excluding a layer keeps its whole group
    if not any(not (group & ignored) for group in members):
        raise SpecError(
            "layers",
            "no channel can be removed: every convolution / linear layer left is an output "
            "(class) layer or excluded (e.g. SGC's single layer maps features to classes)",
        )
    return ignored


def _group_ratios(
    modules: dict[str, nn.Module], all_groups: list[Any], members: list[set[nn.Module]],
    ignored: set[nn.Module], sparsity: float, scope: str, per_layer: dict[str, float] | None,
) -> tuple[dict[nn.Module, float], float]:
    """Torch-Pruning's per-group ratios (keyed by root module) and its default ratio."""
    # Torch-Pruning leaves a group untouched when its ratio would remove every channel (a
    # 16-channel layer at 95 %), so each group's ratio is capped to keep one channel; in
    # global ranking each group's most important channel is kept for the same reason.
    module_names = {m: n for n, m in modules.items()}
    ratios: dict[nn.Module, float] = {}
    requested_ratios = dict(per_layer or {})
    active_channels = []
    for group, group_members in zip(all_groups, members, strict=True):
        if group_members & ignored:
            continue
        active_channels.append(len(group[0].idxs))
        named = sorted(module_names[m] for m in group_members)
        requested = next((float(requested_ratios[n]) for n in named if n in requested_ratios), None)
        if requested is None and scope == "global":
            continue
        channels = len(group[0].idxs)
        cap = 1.0 - (1.0 + 1e-6) / channels if channels > 1 else 0.0
        ratios[modules[named[0]]] = max(0.0, min(sparsity if requested is None else requested, cap))
    default_ratio = sparsity
    if scope == "global" and active_channels:
        # The global threshold must leave one channel per group (those are made unprunable).
        kept = len(active_channels) * (1.0 + 1e-6) / sum(active_channels)
        default_ratio = min(sparsity, 1.0 - kept)
    return ratios, default_ratio


_DOC = """Structured {norm_name} channel (filter) pruning with dependency handling: every
    coupled group of channels (a convolution's filters with their batch-norm entries, the
    next layers' input channels, and all layers tied by residual additions or GNN message
    passing) is ranked by the {norm_name} norm of its weights, averaged over the group
    (Torch-Pruning's ``GroupMagnitudeImportance(p={p})``; Fang et al., "DepGraph: Towards Any
    Structural Pruning", CVPR 2023), and the lowest ``sparsity`` fraction of each group
    (``scope: layer``) or across groups (``scope: global``) is physically removed: the
    returned model is smaller and faster. {cite}
    ``sparsity`` is the fraction of channels removed (the achieved parameter sparsity is
    larger, since a channel removes a row and a column). Output (class) layers are never
    pruned. ``masked: true`` instead zeroes the same channels in place (the masked twin, same
    outputs as the slimmed model). PyG ``Linear`` weights become ``nn.Linear``; GAT-style
    attention layers are rejected."""


def _channel_pruning(norm: int) -> Any:
    def prune(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
        return prune_channels(
            model, data, norm=norm, sparsity=params.sparsity, scope=params.scope,
            layers=params.layers, exclude=params.exclude, per_layer=params.per_layer,
            masked=params.masked, max_ratio=params.max_ratio,
        )

    return prune


channel_l1 = _channel_pruning(1)
channel_l1.__doc__ = _DOC.format(
    norm_name="L1", p=1,
    cite='L1 filter norms follow Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017.',
)
channel_l2 = _channel_pruning(2)
channel_l2.__doc__ = _DOC.format(
    norm_name="L2", p=2,
    cite='L2 filter norms follow He et al., "Soft Filter Pruning for Accelerating Deep '
    'Convolutional Neural Networks", IJCAI 2018.',
)
TRANSFORMS.register(
    "channel_l1", params=Params,
    citation="Li et al., ICLR 2017 (DepGraph groups): drop the lowest I(g) = mean ||W_g||_1",
)(channel_l1)
TRANSFORMS.register(
    "channel_l2", params=Params,
    citation="He et al., IJCAI 2018 (DepGraph groups): drop the lowest I(g) = mean ||W_g||_2",
)(channel_l2)
