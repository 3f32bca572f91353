"""Training recipes of the image workload: MoEx, mixup and CutMix (one module each)."""

from faultlab.workers.training.recipes.base import (
    AUGMENTATIONS,
    Augmentation,
    Pipeline,
    soft_cross_entropy,
)

__all__ = ["AUGMENTATIONS", "Augmentation", "Pipeline", "soft_cross_entropy"]
