"""Model transforms (pruning, quantization, low-rank, distillation, weight noise, ...),
one file per method, registered by name and reused by every engine."""

from faultlab.workers.transforms.registry import (
    TRANSFORMS,
    TransformFn,
    apply_transforms,
    run_transform,
    validate_transforms,
)

__all__ = [
    "TRANSFORMS",
    "TransformFn",
    "apply_transforms",
    "run_transform",
    "validate_transforms",
]
