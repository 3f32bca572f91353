"""The model/data zoo: datasets that ship in packages or are generated, and models trained
on first use and cached by content hash (no downloads at run time).

Add a family by dropping a module into this package that calls
:func:`~faultlab.workers.zoo.registry.register_model` / ``register_dataset``.
"""

from faultlab.workers.zoo.registry import (
    Dataset,
    GraphData,
    ImageData,
    build_model,
    dataset_entries,
    load_dataset,
    model_digest,
    model_entries,
    register_dataset,
    register_model,
    trained_model,
)
from faultlab.workers.zoo.training import evaluate, predict_logits

__all__ = [
    "Dataset",
    "GraphData",
    "ImageData",
    "build_model",
    "dataset_entries",
    "evaluate",
    "load_dataset",
    "model_digest",
    "model_entries",
    "predict_logits",
    "register_dataset",
    "register_model",
    "trained_model",
]
