"""Model transforms (pruning, quantization, low-rank, distillation, weight noise, ...),
one file per method, registered by name and reused by every engine."""

from faultlab.workers.transforms.registry import (
    TransformEntry,
    apply_transforms,
    get_transform,
    register_transform,
    transform_entries,
    validate_transforms,
)

__all__ = [
    "TransformEntry",
    "apply_transforms",
    "get_transform",
    "register_transform",
    "transform_entries",
    "validate_transforms",
]
