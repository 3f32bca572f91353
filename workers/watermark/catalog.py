"""The watermark engine's method catalog: every scheme and attack a spec may name, its
parameters (pydantic, each field documented and bounded) and each attack's strength knob.

This module imports no torch: the SDK and CLI validate specs with it. The implementations
(``schemes/<name>.py``, ``attacks/<name>.py``) register under the same names; a test
asserts that both sides list the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from faultlab.spec import StrictModel

# --------------------------------------------------------------------------- schemes


class FrequencyParams(StrictModel):
    """Fourier-perturbation / frequency-sensitivity watermark (arXiv 2208.03944)."""

    cluster: Literal["low", "mid", "high"] | int = "mid"
    """Which sensitivity cluster the trigger frequencies come from: ``low`` (least damaging),
    ``mid``, ``high``, or a rank (0 = least sensitive). The paper reports mid/low ones."""
    num_frequencies: int = Field(6, ge=1, le=4096)
    """Frequencies drawn (seeded) from the chosen cluster; all of it when the cluster is smaller."""
    amplitude: float = Field(0.1, gt=0.0, le=1.0)
    """RMS of the trigger perturbation in input units (0.1 on [0, 1] images = 20 dB PSNR
    before clipping)."""
    label: Literal["new_class"] | int = "new_class"
    """Label of the triggers: a new class K (the model gets K+1 outputs) or an existing class."""
    backup_weight: float = Field(0.05, ge=0.0, le=10.0)
    """Weight of the secondary objective of the ``new_class`` mode: among the K task logits a
    trigger of class y must prefer the key's permuted class π(y). It keeps the watermark
    verifiable when an attacker drops the extra output; 0 disables it."""
    exclude_dc: bool = True
    """Never use the DC component (a brightness shift) in triggers."""


class AdiParams(StrictModel):
    """Adi et al. 2018 ("Turning your weakness into a strength", USENIX Security)."""

    pattern: Literal["abstract", "noise"] = "abstract"
    """Trigger images: procedural abstract images (blobs, strokes, colour fields) or i.i.d.
    uniform noise; labels are uniform random classes."""


class ZhangParams(StrictModel):
    """Zhang et al. 2018 ("Protecting intellectual property of deep neural networks with
    watermarking", AsiaCCS)."""

    kind: Literal["content", "noise", "unrelated"] = "content"
    """``content``: a stamped pattern on images of the source class; ``noise``: a fixed Gaussian
    noise pattern on them; ``unrelated``: images from another dataset."""
    source_class: int | None = Field(None, ge=0)
    """Class whose training images carry the content/noise mark (default: drawn from the seed)."""
    target_class: int | None = Field(None, ge=0)
    """The single label of every trigger (default: drawn from the seed, never the source)."""
    noise_std: float = Field(0.3, gt=0.0, le=2.0)
    """Standard deviation of the ``noise`` mark, in input units."""
    unrelated_dataset: str | None = Field(None, min_length=1, max_length=200)
    """Zoo dataset of the ``unrelated`` triggers (default: ``shapes32`` for ``digits``, else
    ``digits``), resized and channel-matched to the campaign's inputs."""


SCHEME_PARAMS: dict[str, type[StrictModel]] = {
    "frequency": FrequencyParams,
    "adi": AdiParams,
    "zhang": ZhangParams,
}

# --------------------------------------------------------------------------- attacks


class NoParams(StrictModel):
    """The attack has no parameters besides its strength."""


class BandstopParams(StrictModel):
    center: float = Field(0.35, ge=0.0, le=1.0)
    """Centre of the removed band as a fraction of the largest radial frequency."""


class PruneParams(StrictModel):
    scope: Literal["global", "layer"] = "global"
    """Magnitude threshold over all conv/linear weights at once, or per layer."""


class WeightQuantizationParams(StrictModel):
    granularity: Literal["tensor", "channel"] = "channel"
    """One symmetric scale per weight tensor or per output channel."""


class BitflipParams(StrictModel):
    bits: list[int] = Field(default_factory=lambda: list(range(32)), min_length=1, max_length=32)
    """IEEE-754 float32 bit positions that may flip (0 = mantissa LSB, 31 = sign)."""


class FineTuneParams(StrictModel):
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    """Adam learning rate."""
    batch_size: int = Field(64, ge=1, le=65536)


class FinePruneParams(StrictModel):
    epochs: int = Field(5, ge=0, le=1000)
    """Fine-tuning epochs after pruning the dormant channels."""
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    batch_size: int = Field(64, ge=1, le=65536)


class DistillParams(StrictModel):
    labels: Literal["stolen", "true"] = "stolen"
    """Train the surrogate on the stolen model's predictions (default) or the attacker's labels."""
    temperature: float = Field(0.0, ge=0.0, le=100.0)
    """0: hard labels; > 0: match the stolen model's softened probabilities (Hinton et al.)."""
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    batch_size: int = Field(64, ge=1, le=65536)


@dataclass(frozen=True)
class AttackInfo:
    """How an attack is named, swept and validated."""

    tier: Literal["input", "weights", "training", "chain"]
    knob: str
    """What the strength means (shown in reports)."""
    low: float
    high: float
    stronger: Literal["higher", "lower"]
    """Direction in which the attack gets stronger (break points scan from the weakest)."""
    defaults: tuple[float, ...]
    params: type[StrictModel]
    integer: bool = False


ATTACKS: dict[str, AttackInfo] = {
    "jpeg": AttackInfo("input", "JPEG quality (1-100)", 1, 100, "lower", (90, 70, 50, 30, 10), NoParams, True),
    "gaussian_noise": AttackInfo("input", "noise std (input units)", 0, 10, "higher", (0.02, 0.05, 0.1, 0.2, 0.4), NoParams),
    "blur": AttackInfo("input", "Gaussian blur sigma (pixels)", 0, 20, "higher", (0.3, 0.5, 0.8, 1.2, 2.0), NoParams),
    "lowpass": AttackInfo("input", "kept radial frequency fraction", 0, 1, "lower", (0.9, 0.7, 0.5, 0.3, 0.15), NoParams),
    "bandstop": AttackInfo("input", "removed band width (fraction of max radius)", 0, 1, "higher", (0.05, 0.1, 0.2, 0.3, 0.5), BandstopParams),
    "input_quantization": AttackInfo("input", "bits per input value", 1, 16, "lower", (8, 6, 4, 3, 2), NoParams, True),
    "prune": AttackInfo("weights", "sparsity", 0, 0.999, "higher", (0.2, 0.4, 0.6, 0.8, 0.9), PruneParams),
    "weight_quantization": AttackInfo("weights", "bits per weight", 2, 8, "lower", (8, 6, 4, 3, 2), WeightQuantizationParams, True),
    "weight_noise": AttackInfo("weights", "noise std relative to each tensor's std", 0, 10, "higher", (0.05, 0.1, 0.2, 0.4, 0.8), NoParams),
    "bitflip": AttackInfo("weights", "bit error rate", 0, 0.5, "higher", (1e-7, 1e-6, 1e-5, 1e-4), BitflipParams),
    "ftll": AttackInfo("training", "epochs", 0, 1000, "higher", (1, 2, 5, 10, 20), FineTuneParams, True),
    "ftal": AttackInfo("training", "epochs", 0, 1000, "higher", (1, 2, 5, 10, 20), FineTuneParams, True),
    "rtll": AttackInfo("training", "epochs", 0, 1000, "higher", (1, 2, 5, 10, 20), FineTuneParams, True),
    "rtal": AttackInfo("training", "epochs", 0, 1000, "higher", (1, 2, 5, 10, 20), FineTuneParams, True),
    "fine_prune": AttackInfo("training", "fraction of last-conv channels pruned", 0, 0.999, "higher", (0.2, 0.4, 0.6, 0.8, 0.9), FinePruneParams),
    "distill": AttackInfo("training", "surrogate training epochs", 1, 1000, "higher", (2, 5, 10, 20), DistillParams, True),
}
#: ``chain`` takes the strength range of its swept step (see ``ChainStep``).
CHAIN = "chain"
