"""``training:<family>``: a GNN variant of a training campaign, rebuilt from its options.

The architecture is :func:`~faultlab.workers.training.models.build_variant`'s (GCN / GIN
variants with depth, width, skip connections, linearized activations, normalisation —
Xu, Zhang, Jegelka, Kawaguchi, ICML 2021 — and SGC, ``softmax(S^K X W)``, Wu et al.,
ICML 2019); the weights are a finished cell's checkpoint artifact. A spec rarely names it by
hand: ``model: {from_campaign: ID, cell: {...}}`` resolves to it at submit
(:mod:`faultlab.server.checkpoints`). Options are bounded like the training spec's own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from faultlab.errors import SpecError
from faultlab.registry import pydantic_error
from faultlab.workers.training.params import MAX_DEPTH, MAX_WIDTH, Norm, Skip

FAMILIES = ("gcn", "gin", "sgc")


class VariantOptions(BaseModel):
    """The architecture of one variant (a training cell's ``variant`` without its family)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    depth: int = Field(2, ge=1, le=MAX_DEPTH)
    """Graph convolutions (sgc: hops K)."""
    width: int = Field(32, ge=0, le=MAX_WIDTH)
    """Hidden channels (0 for sgc)."""
    skip: Skip = "none"
    linear: bool = False
    norm: Norm = "none"
    bias: bool = False


def build(family: str, options: dict[str, Any], *, field: str, in_channels: int | None,
          num_classes: int | None, data: Any = None) -> nn.Module:
    """The untrained variant ``family`` with ``options`` for a graph of ``in_channels``
    features and ``num_classes`` classes; another workload's family (``training:image``
    …) is built by that workload for ``data``."""
    from faultlab.workers.training.models import build_variant

    if family not in FAMILIES:
        from faultlab.workers.training.workloads import workload_for_family

        other = workload_for_family(family)
        if other is not None:
            return other.build_model(family, options, data, field)
        raise SpecError(f"{field}.name", f"unknown training family {family[:40]!r}",
                        [f"training:{f}" for f in FAMILIES])
    if in_channels is None or num_classes is None:
        raise SpecError(f"{field}.name", "a training: model needs a graph dataset")
    try:
        arch = VariantOptions.model_validate(options)
    except ValidationError as exc:
        raise pydantic_error(exc, f"{field}.options") from None
    if family != "sgc" and arch.width < 1:
        raise SpecError(f"{field}.options.width", "must be at least 1")
    variant = {"family": family, **arch.model_dump()}
    return build_variant(variant, in_channels, num_classes)


__all__ = ["FAMILIES", "VariantOptions", "build"]
