"""``graph``: GNN variants trained full batch on node-classification graphs (the default).

The sweep itself (grids of variants × recipes × datasets × seeds, the cells, curves,
summary and paired comparisons) is the training engine's built-in path
(:mod:`faultlab.workers.training.engine`; Xu, Zhang, Jegelka, Kawaguchi, ICML 2021 — linear
convergence of linearized GNNs, ``L(θ_t) − L* ≤ (1 − ηλ)^t (L(θ_0) − L*)``; Wu et al., ICML
2019 — SGC, ``softmax(S^K X W)``). This entry provides what every workload shares: how one
cell trains (:func:`~faultlab.workers.training.loop.train_cell`) and how a finished cell is
a model again (``training:<gcn|gin|sgc>`` with the variant's architecture as options).
Its spec fields are the top-level ones of ``training:`` (``variants``, ``recipes``,
``datasets``, ``targets``), so it has no section of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faultlab.registry import NoParams
from faultlab.workers.training.workloads.base import WORKLOADS, OnPoint, Workload

if TYPE_CHECKING:
    from torch import nn

ARCH_OPTIONS = ("depth", "width", "skip", "linear", "norm", "bias")
"""The variant fields a ``training:<family>`` model takes as options."""


class GraphWorkload(Workload):
    """GNN variants (GCN, GIN, SGC) on node-classification graphs."""

    name = "graph"
    params_type = NoParams
    families = ("gcn", "gin", "sgc")

    def train(self, context: Any, trial: dict[str, Any], on_point: OnPoint | None
              ) -> dict[str, Any]:
        from faultlab.workers.training.loop import train_cell

        return train_cell(context.graphs[trial["dataset"]], trial["variant"], trial["recipe"],
                          trial["targets"], int(trial["seed"]), int(trial["curve_points"]),
                          on_point)

    def reference(self, trial: dict[str, Any]) -> dict[str, Any]:
        variant = trial["variant"]
        return {"name": f"training:{variant['family']}",
                "options": {k: variant[k] for k in ARCH_OPTIONS}}

    def build_model(self, family: str, options: dict[str, Any], data: Any, field: str
                    ) -> nn.Module:
        from faultlab.workers.zoo import GraphData
        from faultlab.workers.zoo.sources import training_variant

        graph = data if isinstance(data, GraphData) else None
        return training_variant.build(family, options, field=field,
                                      in_channels=graph.num_features if graph else None,
                                      num_classes=graph.num_classes if graph else None)


WORKLOADS.register("graph", citation="Xu et al., ICML 2021; Wu et al., ICML 2019")(
    GraphWorkload())

__all__ = ["ARCH_OPTIONS", "GraphWorkload"]
