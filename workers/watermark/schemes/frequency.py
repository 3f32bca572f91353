"""Frequency-sensitivity watermark: "A DNN watermarking method based on Fourier perturbation
analysis and frequency sensitivity clustering" (arXiv 2208.03944).

1. **Fourier perturbation analysis** — :mod:`faultlab.workers.watermark.sensitivity` measures
   the task damage of every 2-D frequency component on the trained model.
2. **Frequency sensitivity clustering** — K-means over the per-frequency log-damage; clusters
   are ranked from least to most sensitive.
3. **Trigger crafting** — ``num_frequencies`` components are drawn from the chosen cluster
   (default ``mid``: frequencies the model reacts to, but not the ones its task depends on), each
   with a secret phase per channel; their sum, scaled to RMS ``amplitude``, is added to clean
   training images (clipped to the data range). The drawn frequencies and phases are the key.
4. **Embedding** — training with trigger batches mixed into the clean batches; triggers are
   labelled as a new class K (the model gets K+1 outputs) or as a chosen class.

The paper's exact hyper-parameters are not public; the defaults here (see
``FrequencyParams`` and ``docs/watermark.md``, which records the probes behind them)
were chosen on digits for ≤ 1 point clean-accuracy cost and ≥ 95 % trigger accuracy, and checked
on shapes32.

New-class mode also trains a *backup signature* — among the K task logits, trigger ``i`` of
class ``y_i`` prefers its own secret label ``b_i``, drawn independently per trigger and
uniformly among the K−1 other classes — so a model whose extra output was cut off still answers
the triggers in a key-specific way. Because the draws are independent per trigger, a key-blind
model (whatever it predicts, a systematic class confusion included) matches each trigger with
probability at most 1/(K−1), independently: the backup rule's binomial null is exact.

A trigger is ``t = clip(x + a · p / rms(p))`` with the secret pattern
``p[c] = Σ_{(u,v) ∈ F} cos(2π(u·h/H + v·w/W) + φ_{c,u,v})``, ``F`` the drawn frequencies.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field

from faultlab.errors import SpecError
from faultlab.workers.watermark.catalog import SchemeParams
from faultlab.workers.watermark.imaging import cosine_patterns
from faultlab.workers.watermark.schemes.base import SCHEMES, Scheme, SchemeContext, WatermarkKey
from faultlab.workers.watermark.sensitivity import cluster_rank
from faultlab.workers.zoo import ImageData

if TYPE_CHECKING:
    from faultlab.workers.watermark.params import WatermarkParams


class FrequencyParams(SchemeParams):
    """Fourier-perturbation / frequency-sensitivity watermark (arXiv 2208.03944)."""

    cluster: Literal["low", "mid", "high"] | int = "mid"
    """Which sensitivity cluster the trigger frequencies come from: ``low`` (least damaging),
    ``mid``, ``high``, or a rank in ``[0, sensitivity.clusters)`` (0 = least sensitive). The
    paper reports mid/low ones."""
    num_frequencies: int = Field(6, ge=1, le=4096)
    """Frequencies drawn (seeded) from the chosen cluster; all of it when the cluster is smaller."""
    amplitude: float = Field(0.1, gt=0.0, le=1.0)
    """RMS of the trigger perturbation in input units (0.1 on [0, 1] images = 20 dB PSNR
    before clipping)."""
    label: Literal["new_class"] | int = "new_class"
    """Label of the triggers: a new class K (the model gets K+1 outputs) or an existing class
    (checked against the dataset's classes)."""
    backup_weight: float = Field(0.2, ge=0.0, le=10.0)
    """Weight of the secondary objective of the ``new_class`` mode: among the K task logits a
    trigger must prefer its own secret label among the other classes. It keeps the watermark
    verifiable when an attacker drops the extra output; 0 disables it."""
    exclude_dc: bool = True
    """Never use the DC component (a brightness shift) in triggers."""

    def check_section(self, section: WatermarkParams, where: str) -> None:
        clusters = section.sensitivity.clusters
        if isinstance(self.cluster, int) and not 0 <= self.cluster < clusters:
            raise SpecError(
                f"{where}.cluster",
                f"rank {self.cluster} outside the {clusters} clusters",
                ["low", "mid", "high", *range(clusters)],
            )


def backup_labels(classes: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """Backup label of every trigger, drawn independently per trigger and uniformly among the
    ``num_classes − 1`` classes other than its carrier's class ``y``: ``(y + U) mod K`` with
    ``U`` uniform on ``1 … K−1``. Drawn from the CPU generator ``gen``, on ``classes``'s
    device."""
    offsets = torch.randint(1, num_classes, (len(classes),), generator=gen, device="cpu")
    offsets = offsets.to(classes.device)
    return (classes + offsets) % num_classes


@SCHEMES.register(
    "frequency",
    params=FrequencyParams,
    citation="arXiv 2208.03944: t = clip(x + a·p/rms(p)), p = Σ_{f∈F} cos(2π f·r + φ_f), "
    "F drawn from one K-means cluster of the Fourier sensitivity map",
)
class FrequencyScheme(Scheme):
    """Triggers are clean images plus a secret mix of frequencies of one sensitivity cluster."""

    def check(
        self, params: FrequencyParams, data: ImageData, trigger_size: int, field: str
    ) -> None:
        if trigger_size > len(data.x_train):
            raise SpecError(
                "watermark.trigger_size",
                f"{trigger_size} triggers need as many training images as carriers; "
                f"{data.name!r} has {len(data.x_train)}",
            )
        if isinstance(params.label, int) and params.label >= data.num_classes:
            raise SpecError(
                f"{field}.params.label",
                f"class {params.label} does not exist",
                ["new_class", *range(data.num_classes)],
            )

    def keygen(self, ctx: SchemeContext, params: FrequencyParams) -> WatermarkKey:
        sens = ctx.sensitivity()
        clusters = len(sens.centroids)
        wanted = cluster_rank(params.cluster, clusters)

        def pool_of(rank: int) -> list[tuple[int, int]]:
            freqs = sens.frequencies_of_rank(rank)
            return [f for f in freqs if not (params.exclude_dc and f == (0, 0))]

        # A cluster can be empty once DC is excluded; then the nearest ranks are used.
        ranks = sorted(range(clusters), key=lambda r: (abs(r - wanted), r))
        pool: list[tuple[int, int]] = []
        for rank in ranks:
            pool = pool_of(rank)
            if pool:
                break
        if not pool:
            raise SpecError(
                f"{ctx.field}.params.exclude_dc", "the image has no frequency besides DC"
            )
        gen = ctx.generator(1)
        # The secret (frequencies, phases, pattern, carrier ids) is drawn on the CPU; only
        # adding it to the carriers happens on the context's device.
        order = torch.randperm(len(pool), generator=gen, device="cpu")[: params.num_frequencies]
        chosen = torch.tensor([pool[int(i)] for i in order], device="cpu")
        channels, height, width = ctx.data.input_shape
        phases = torch.rand(channels, len(chosen), generator=gen, device="cpu") * 2 * math.pi
        pattern = cosine_patterns(height, width, chosen, phases).sum(1)
        pattern = pattern / pattern.pow(2).mean().sqrt().clamp_min(1e-12)
        carrier_ids = torch.randperm(len(ctx.data.x_train), generator=gen, device="cpu")
        carrier_ids = carrier_ids[: ctx.trigger_size].to(ctx.device)
        carriers = ctx.data.x_train[carrier_ids]
        low, high = ctx.data_range
        triggers = (carriers + (params.amplitude * pattern).to(ctx.device)).clamp(low, high)
        k = ctx.num_classes
        new_class = params.label == "new_class"
        labels = torch.full(
            (len(carriers),), k if new_class else int(params.label), dtype=torch.int64,
            device=ctx.device,
        )
        backup = None
        if new_class and params.backup_weight > 0 and k >= 2:
            backup = backup_labels(ctx.data.y_train[carrier_ids], k, gen)
        return WatermarkKey(
            scheme=ctx.scheme,
            triggers=triggers,
            labels=labels,
            num_classes=k,
            num_outputs=k + 1 if new_class else k,
            null="estimated",
            backup_labels=backup,
            carriers=carriers,
            info={
                "frequencies": chosen.tolist(),
                "cluster_rank": int(rank),
                "clusters": clusters,
                "amplitude": params.amplitude,
                "label": params.label,
            },
        )
