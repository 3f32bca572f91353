"""``hyperspectral``: spectral-spatial 3-D CNN, semi-supervised GAN and GAN + dense CRF on a
hyperspectral scene with few labels (Zhong et al., 2019).

Cells are model (``cnn`` | ``gan`` | ``gan_crf``) × labels per class × seeds
(``training.hyperspectral``, :class:`~faultlab.workers.training.hyperspectral.params.
HyperspectralParams`); the steps live in :mod:`faultlab.workers.training.hyperspectral`
(``workload``, ``cell``, ``report``). A finished cell is the model ``training:hsi`` (the CNN,
or the GAN's discriminator without its "generated" output), which reads the patch dataset
``hsi_patches``. See docs/hyperspectral.md. Torch is imported inside the methods (the spec
parser imports this module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faultlab.workers.training.hyperspectral.params import HyperspectralParams
from faultlab.workers.training.workloads.base import WORKLOADS, OnPoint, SweepWorkload

if TYPE_CHECKING:
    from torch import nn

    from faultlab.report import Report
    from faultlab.spec import CampaignSpec
    from faultlab.workers.engine import Engine, Prepared, TrialRecord
    from faultlab.workers.training.params import TrainingParams


class HyperspectralWorkload(SweepWorkload):
    """3-D CNN / semi-supervised GAN / GAN + CRF classifiers of hyperspectral scenes."""

    name = "hyperspectral"
    params_type = HyperspectralParams
    families = ("hsi",)

    def cells(self, params: TrainingParams) -> int:
        section = self.section(params)
        return len(section.models) * len(section.labels_per_class) * params.seeds

    def validate(self, spec: CampaignSpec, params: TrainingParams) -> None:
        from faultlab.workers.training.hyperspectral import workload as steps

        section = self.section(params)
        steps.check_scene(steps.load_scene(section), section)

    def prepare(self, spec: CampaignSpec, params: TrainingParams) -> Prepared:
        from faultlab.workers.engine import Prepared
        from faultlab.workers.training.hyperspectral import workload as steps

        section = self.section(params)
        prepared, meta = steps.prepare_scene(section)
        return Prepared(steps.HsiContext(prepared, section, max(1, int(spec.execution.num_cpus)),
                                         params.curve_points), meta)

    def plan(self, spec: CampaignSpec, params: TrainingParams,
             meta: dict[str, Any]) -> list[dict[str, Any]]:
        from faultlab.workers.training.hyperspectral import workload as steps

        return steps.plan_cells(self.section(params), spec.seed, params.seeds, meta)

    def train(self, context: Any, trial: dict[str, Any], on_point: OnPoint | None
              ) -> dict[str, Any]:
        from faultlab.workers.training.hyperspectral import workload as steps

        return steps.train_trial(context, trial, on_point)

    def aggregate(self, engine: Engine[Any], spec: CampaignSpec, meta: dict[str, Any],
                  records: list[TrialRecord]) -> Report:
        from faultlab.workers.training.hyperspectral.report import aggregate

        return aggregate(engine, spec, meta, records)

    def plots(self, report: Report) -> dict[str, Any]:
        from faultlab.workers.training.hyperspectral.report import plots

        return plots(report)

    def reference(self, trial: dict[str, Any]) -> dict[str, Any]:
        from faultlab.workers.training.hyperspectral import workload as steps

        return steps.model_reference(trial)

    def build_model(self, family: str, options: dict[str, Any], data: Any, field: str
                    ) -> nn.Module:
        from faultlab.workers.training.hyperspectral import workload as steps

        return steps.build_classifier(options, data, field)


WORKLOADS.register("hyperspectral", params=HyperspectralParams, citation=(
    "Zhong, Li, Zhang, Zhang, 'Generative adversarial networks and conditional random fields "
    "for hyperspectral image classification', IEEE Trans. Cybernetics 50(7), 2020 "
    "(arXiv:1905.04621)"))(HyperspectralWorkload())

__all__ = ["HyperspectralWorkload"]
