"""The plug-in API of watermarking schemes: ``keygen → embed → verify``, and their registry.

A scheme turns a trained model into a secret :class:`WatermarkKey` (trigger inputs and the
labels the watermarked model must give them), embeds the key by training, and counts how many
triggers a suspect model answers as the key says
(:class:`~faultlab.workers.watermark.verify.Evidence`).
The statistics of the ownership test live in :mod:`faultlab.workers.watermark.verify`.

Add a scheme by dropping a module into this package that defines its ``Params`` model (a
:class:`~faultlab.workers.watermark.catalog.SchemeParams`) and a :class:`Scheme` subclass
registered in :data:`SCHEMES` with ``@SCHEMES.register(name, params=..., citation=...)``; a
scheme is a stateless class, instantiated where it is used.

**Devices.** A scheme works on the device of the context's data and model (the shard's device,
:attr:`SchemeContext.device`). Keys are drawn on the CPU from CPU generators
(:meth:`SchemeContext.generator`) and only then combined with the data on its device, so a key —
triggers, labels, frequencies — is bit-identical whichever worker drew it (the frequency
scheme's given the same sensitivity map, which is measured on the device and cached); the keys
it returns live on the context's device.
"""

from __future__ import annotations

import abc
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.registry import Registry
from faultlab.workers.watermark.embedding import (
    Preprocess,
    embed_by_training,
    final_linear,
    logits,
    model_device,
    predictions,
    resize_outputs,
)
from faultlab.workers.watermark.params import EmbedParams
from faultlab.workers.watermark.sensitivity import SensitivityMap
from faultlab.workers.watermark.verify import Evidence
from faultlab.workers.zoo import ImageData


@dataclass
class WatermarkKey:
    """The owner's secret: triggers, their labels and how to test them."""

    scheme: str
    """The registered name of the scheme that drew the key."""
    triggers: torch.Tensor
    """``n×C×H×W`` trigger inputs."""
    labels: torch.Tensor
    """Label the watermarked model gives each trigger (the primary rule)."""
    num_classes: int
    """Classes of the task (K)."""
    num_outputs: int
    """Outputs of the watermarked model (K, or K+1 in new-class mode)."""
    null: Literal["uniform", "estimated"]
    """Null of the primary rule: ``uniform`` = 1/K (labels drawn independently of the
    triggers), ``estimated`` = calibrated on unwatermarked models."""
    backup_labels: torch.Tensor | None = None
    """Labels among the K task logits (new-class mode), tested when the extra class is gone."""
    carriers: torch.Tensor | None = None
    """Clean images the triggers were made from (for PSNR/SSIM), when there are any."""
    info: dict[str, Any] = field(default_factory=dict)
    """JSON-able details (frequencies, cluster, classes) shown in reports."""

    def to(self, device: torch.device | str) -> WatermarkKey:
        """This key with its tensors on ``device`` (itself when they are there already)."""
        def on(value: torch.Tensor | None) -> torch.Tensor | None:
            return None if value is None else value.to(device)

        triggers, labels = self.triggers.to(device), self.labels.to(device)
        backup, carriers = on(self.backup_labels), on(self.carriers)
        mine = (self.triggers, self.labels, self.backup_labels, self.carriers)
        if all(a is b for a, b in zip((triggers, labels, backup, carriers), mine, strict=True)):
            return self
        return replace(self, triggers=triggers, labels=labels, backup_labels=backup,
                       carriers=carriers)

    def state(self) -> dict[str, Any]:
        """A ``torch.save``-able dict (loads with ``weights_only=True``)."""
        state: dict[str, Any] = {
            "scheme": self.scheme,
            "triggers": self.triggers,
            "labels": self.labels,
            "num_classes": self.num_classes,
            "num_outputs": self.num_outputs,
            "null": self.null,
            "info": json.dumps(self.info, sort_keys=True),
        }
        if self.backup_labels is not None:
            state["backup_labels"] = self.backup_labels
        if self.carriers is not None:
            state["carriers"] = self.carriers
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WatermarkKey:
        return cls(
            scheme=state["scheme"],
            triggers=state["triggers"],
            labels=state["labels"],
            num_classes=int(state["num_classes"]),
            num_outputs=int(state["num_outputs"]),
            null=state["null"],
            backup_labels=state.get("backup_labels"),
            carriers=state.get("carriers"),
            info=json.loads(state["info"]),
        )


@dataclass
class SchemeContext:
    """What a scheme may use: the data, the trained model and the repetition's seed."""

    data: ImageData
    model: nn.Module
    """The trained, unwatermarked model (never modified)."""
    seed: int
    trigger_size: int
    field: str
    """Dotted spec path of the scheme, for errors (``watermark.schemes[0]``)."""
    sensitivity: Callable[[], SensitivityMap]
    """The model's frequency sensitivity map (computed once, cached)."""
    build_fresh: Callable[[int], nn.Module]
    """An untrained model of the campaign's architecture with the given number of outputs."""
    scheme: str
    """The scheme's registered name (stamped on its key)."""

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def data_range(self) -> tuple[float, float]:
        return float(self.data.x_train.min()), float(self.data.x_train.max())

    @property
    def device(self) -> torch.device:
        """Where the scheme computes: the device of the data (the shard's device)."""
        return self.data.x_train.device

    def generator(self, salt: int) -> torch.Generator:
        """A CPU generator private to this scheme, seed and purpose (keys are drawn on the
        CPU, the same on every device)."""
        return torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + salt)


class Scheme(abc.ABC):
    """A trigger-set watermarking scheme."""

    def check(  # noqa: B027
        self, params: Any, data: ImageData, trigger_size: int, field: str
    ) -> None:
        """Checks that need the dataset (class ids, enough carrier images); raises SpecError."""

    @abc.abstractmethod
    def keygen(self, ctx: SchemeContext, params: Any) -> WatermarkKey:
        """Draws the secret key (deterministic in ``ctx.seed``)."""

    def embed(
        self, ctx: SchemeContext, key: WatermarkKey, params: Any, embed: EmbedParams
    ) -> nn.Module:
        """The watermarked model: the trained one fine-tuned (or a fresh one trained) with
        trigger batches mixed into the clean batches."""
        extra = key.num_outputs > ctx.num_classes
        if embed.from_scratch:
            model = ctx.build_fresh(key.num_outputs)
        else:
            model = copy.deepcopy(ctx.model)
            if extra:
                head = final_linear(model, ctx.num_classes)
                if head is None:
                    raise SpecError(
                        f"{ctx.field}.params.label",
                        "the model has no final nn.Linear to give an extra class; use a class id",
                    )
                model = resize_outputs(model, head[0], key.num_outputs)
        backup_weight = float(getattr(params, "backup_weight", 0.0))
        return embed_by_training(
            model,
            ctx.data.x_train,
            ctx.data.y_train,
            key.triggers,
            key.labels,
            epochs=embed.epochs,
            lr=embed.lr,
            batch_size=embed.batch_size,
            trigger_batch=embed.trigger_batch,
            seed=ctx.seed,
            backup_labels=key.backup_labels,
            backup_weight=backup_weight,
            num_classes=ctx.num_classes,
        )

    def verify(
        self, model: nn.Module, key: WatermarkKey, preprocess: Preprocess | None = None
    ) -> Evidence:
        """Counts the triggers a suspect model answers as the key says, by each rule that
        its outputs allow (a model without the extra class only has the backup rule). Runs on
        the model's device (the key is moved there when it lives elsewhere)."""
        key = key.to(model_device(model))
        out = logits(model, key.triggers, preprocess)
        num_outputs = int(out.shape[1])
        primary = None
        if int(key.labels.max()) < num_outputs:
            primary = int((predictions(out) == key.labels).sum())
        backup = None
        if key.backup_labels is not None and num_outputs >= key.num_classes:
            task = predictions(out[:, : key.num_classes])
            backup = int((task == key.backup_labels).sum())
        return Evidence(n=len(key.labels), primary=primary, backup=backup, num_outputs=num_outputs)


#: Every scheme, registered by the name of its file with its ``Params`` and citation.
SCHEMES: Registry[type[Scheme]] = Registry(
    "scheme", "faultlab.workers.watermark.schemes", "watermark.schemes.name"
)
