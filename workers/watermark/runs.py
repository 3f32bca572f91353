"""Running the watermark engine's trials: sensitivity maps, embeddings, null models, attacks.

Each ``run_*`` function takes the campaign's :class:`WatermarkContext` and one trial and
returns its result (raw counts; the statistics are ``report.py``'s). A watermarked model is
embedded once per (scheme, seed) and cached on disk by content
(:mod:`~faultlab.workers.watermark.cache`); every result that uses one records where it came
from (``embed_source``: ``computed``, ``disk`` or ``memory``).

**Devices.** A shard runs on the device its context was moved to (:func:`context_on`, once per
worker): the data, the trained models, the watermarked and attacked models and the keys all live
there. Randomness is drawn on the CPU and moved (see ``attacks/base.py`` and
``schemes/base.py``), and fresh models are initialised on the CPU, so keys, batch orders, noise
and initial weights do not depend on the worker; GPU kernels round differently from CPU ones,
which is the only way a shard's outcome can depend on its device. Cached embeddings are stored
on the CPU and keyed without the device: a watermarked model is embedded once, by whichever
worker gets there first, and every worker then loads the same weights.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.spec import CampaignSpec, ModelSpec
from faultlab.workers.engine import move_to
from faultlab.workers.watermark import cache
from faultlab.workers.watermark.attacks.base import AttackContext
from faultlab.workers.watermark.attacks.base import run_attack as apply_attack
from faultlab.workers.watermark.embedding import final_linear, logits, predictions, resize_outputs
from faultlab.workers.watermark.imaging import psnr, ssim
from faultlab.workers.watermark.params import AttackSpec, EmbedParams, WatermarkParams
from faultlab.workers.watermark.schemes.base import (
    SCHEMES,
    SchemeContext,
    WatermarkKey,
)
from faultlab.workers.watermark.sensitivity import SensitivityMap, analyse
from faultlab.workers.zoo import ImageData, build_model, trained_model


@dataclass
class WatermarkContext:
    """What every shard gets: the spec, the data and each seed's trained model."""

    spec: CampaignSpec
    data: ImageData
    base: dict[int, tuple[nn.Module, str]]
    """Repetition seed -> (trained model, digest)."""
    params: WatermarkParams
    version: str
    """The engine version: part of the on-disk cache keys of embeddings and sensitivity maps."""
    device: str = "cpu"
    """Where the shards run (:func:`context_on`): ``data`` and the ``base`` models live there."""
    host_data: ImageData | None = None
    """The data on the CPU when ``data`` lives elsewhere (None: ``data`` is on the CPU)."""

    @property
    def host(self) -> ImageData:
        """The data on the CPU: null models train from it, cache keys digest it."""
        return self.host_data if self.host_data is not None else self.data

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def eval_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data.split(self.spec.dataset.split)
        size = self.spec.dataset.size
        return (x[:size], y[:size]) if size else (x, y)


def module_on(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` when all its tensors are on ``device``, else a copy moved there (never moved in
    place: the zoo's cached models and the caller's context stay where they are)."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    if all(t.device == device for t in tensors):
        return model
    return copy.deepcopy(model).to(device)


def context_on(ctx: WatermarkContext, device: torch.device) -> WatermarkContext:
    """A copy of ``ctx`` on ``device``: the data and every seed's trained model moved there, the
    CPU data kept beside them (``host_data``). ``ctx`` itself is not changed."""
    host = ctx.host
    on_cpu = device.type == "cpu"
    if ctx.data.x_train.device == device:
        data = ctx.data
    else:
        data = host if on_cpu else move_to(host, device)
    return replace(
        ctx,
        data=data,
        base={seed: (module_on(m, device), d) for seed, (m, d) in ctx.base.items()},
        device=str(device),
        host_data=None if on_cpu else host,
    )


def fresh_builder(
    spec: ModelSpec, data: ImageData, seed: int, device: torch.device | str = "cpu"
) -> Callable[[int], nn.Module]:
    """Untrained models of the campaign's architecture, seeded, with a chosen output count:
    initialised on the CPU (the same weights everywhere), then moved to ``device``."""

    def build(num_outputs: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + 97)
            model = build_model(spec, data)
            if num_outputs != data.num_classes:
                head = final_linear(model, data.num_classes)
                if head is None:
                    raise SpecError("model.name", "the model has no final nn.Linear with K outputs")
                model = resize_outputs(model, head[0], num_outputs)
        return model.to(device)

    return build


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, preprocess: Any = None) -> int:
    return int((predictions(logits(model, x, preprocess)) == y).sum())



def sensitivity_map(
    ctx: WatermarkContext, seed: int, options: dict[str, Any]
) -> tuple[SensitivityMap, cache.Source]:
    """The Fourier sensitivity map of ``seed``'s trained model (cached on disk)."""
    model, model_digest = ctx.base[seed]
    key = digest({"version": ctx.version, "base": model_digest, "data": ctx.host.digest,
                  "params": options, "seed": seed})

    def compute() -> dict[str, Any]:
        gen = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + 5)
        ids = torch.randperm(len(ctx.data.x_train), generator=gen, device="cpu")
        ids = ids[: options["probe_size"]].to(ctx.torch_device)
        sens = analyse(
            model, ctx.data.x_train[ids], ctx.data.y_train[ids], epsilon=options["epsilon"],
            repeats=options["repeats"], clusters=options["clusters"], seed=seed,
        )
        return {"map": sens.to_dict()}

    value, source = cache.load_or_compute("sensitivity", key, compute, {"seed": seed})
    return SensitivityMap.from_dict(value["map"]), source

def run_sensitivity(ctx: WatermarkContext, trial: dict[str, Any]) -> dict[str, Any]:
    """A ``sensitivity`` trial: the map of one seed's model."""
    started = time.perf_counter()
    sens, source = sensitivity_map(ctx, trial["seed"], trial["sensitivity"])
    return {**sens.to_dict(), "sensitivity_source": source,
            "elapsed_seconds": time.perf_counter() - started}

def watermarked(
    ctx: WatermarkContext, trial: dict[str, Any]
) -> tuple[nn.Module, WatermarkKey, cache.Source]:
    """The watermarked model and key of (scheme, seed): memory → disk → embed once."""
    seed = trial["seed"]
    base_model, base_digest = ctx.base[seed]
    scheme_spec = trial["scheme"]
    scheme = SCHEMES.get(scheme_spec["name"]).impl()
    params = SCHEMES.parse_params(scheme_spec["name"], scheme_spec["params"])
    fields = {k: trial[k] for k in ("scheme", "embed", "trigger_size", "sensitivity")}
    key = digest({"version": ctx.version, "base": base_digest, "data": ctx.host.digest,
                  "seed": seed, **fields})
    build_fresh = fresh_builder(ctx.spec.model, ctx.host, seed, ctx.device)

    def compute() -> dict[str, Any]:
        sens_options = trial["sensitivity"] or ctx.params.sensitivity.model_dump(
            mode="json", exclude={"enabled"}
        )
        sctx = SchemeContext(
            data=ctx.data, model=base_model, seed=seed, trigger_size=trial["trigger_size"],
            field=f"watermark.schemes[{trial['scheme_index']}]",
            sensitivity=lambda: sensitivity_map(ctx, seed, sens_options)[0],
            build_fresh=build_fresh,
            scheme=scheme_spec["name"],
        )
        started = time.perf_counter()
        wm_key = scheme.keygen(sctx, params)
        model = scheme.embed(sctx, wm_key, params, EmbedParams.model_validate(trial["embed"]))
        cpu = torch.device("cpu")  # stored on the CPU: any worker loads it
        return {
            "state_dict": move_to(model.state_dict(), cpu),
            "key": move_to(wm_key.state(), cpu),
            "embed_seconds": time.perf_counter() - started,
        }

    describe = {"scheme": scheme_spec["name"], "seed": seed}
    value, source = cache.load_or_compute("embedding", key, compute, describe)
    wm_key = WatermarkKey.from_state(value["key"]).to(ctx.torch_device)
    model = copy.deepcopy(base_model)
    if wm_key.num_outputs != ctx.data.num_classes:
        head = final_linear(model, ctx.data.num_classes)
        if head is None:
            raise SpecError("model.name", "the model has no final nn.Linear with K outputs")
        model = resize_outputs(model, head[0], wm_key.num_outputs)
    model.load_state_dict(value["state_dict"])
    model.eval()
    return model, wm_key, source

def run_embed(ctx: WatermarkContext, trial: dict[str, Any]) -> dict[str, Any]:
    """An ``embed`` trial: the watermarked model's accuracy, evidence and imperceptibility."""
    started = time.perf_counter()
    model, key, source = watermarked(ctx, trial)
    scheme = SCHEMES.get(trial["scheme"]["name"]).impl()
    x, y = ctx.eval_split()
    base_model, _ = ctx.base[trial["seed"]]
    result: dict[str, Any] = {
        "test_n": len(y),
        "base_test_correct": _correct(base_model, x, y),
        "test_correct": _correct(model, x, y),
        "evidence": scheme.verify(model, key).to_dict(),
        "null": key.null,
        "rules": ["primary"] + (["backup"] if key.backup_labels is not None else []),
        "num_outputs": key.num_outputs,
        "key_info": key.info,
        "embed_source": source,
        "psnr": None,
        "ssim": None,
    }
    if key.carriers is not None:
        low, high = float(ctx.data.x_train.min()), float(ctx.data.x_train.max())
        result["psnr"] = float(psnr(key.carriers, key.triggers, high - low).mean())
        result["ssim"] = float(ssim(key.carriers, key.triggers, high - low).mean())
    result["elapsed_seconds"] = time.perf_counter() - started
    return result

def run_null(ctx: WatermarkContext, trial: dict[str, Any]) -> dict[str, Any]:
    """A ``null`` trial: an independently trained model's answers to every key."""
    started = time.perf_counter()
    model, _ = trained_model(ctx.spec.model, ctx.host, seed=trial["null_seed"])
    model = module_on(model, ctx.torch_device)  # a copy: the zoo's cached model stays put
    x, y = ctx.eval_split()
    answers, sources = [], []
    for key_trial in trial["keys"]:
        _, key, source = watermarked(ctx, key_trial)
        scheme = SCHEMES.get(key_trial["scheme"]["name"]).impl()
        answers.append({"scheme_index": key_trial["scheme_index"], "seed": key_trial["seed"],
                        **scheme.verify(model, key).to_dict()})
        sources.append(source)
    return {
        "test_n": len(y),
        "test_correct": _correct(model, x, y),
        "answers": answers,
        "embed_sources": sources,
        "elapsed_seconds": time.perf_counter() - started,
    }

def run_attack(ctx: WatermarkContext, trial: dict[str, Any]) -> dict[str, Any]:
    """An ``attack`` trial: one attack at one strength on a cached watermarked model."""
    model, key, source = watermarked(ctx, trial)
    scheme = SCHEMES.get(trial["scheme"]["name"]).impl()
    actx = AttackContext(
        data=ctx.data,
        seed=trial["seed"],
        attacker_fraction=trial["attacker_fraction"],
        build_fresh=fresh_builder(ctx.spec.model, ctx.host, trial["seed"] + 7, ctx.device),
        field=f"watermark.attacks[{trial['attack_index']}]",
    )
    started = time.perf_counter()
    attacked = apply_attack(model, AttackSpec.model_validate(trial["attack"]), trial["strength"],
                            actx)
    attack_seconds = time.perf_counter() - started
    x, y = ctx.eval_split()
    return {
        "test_n": len(y),
        "test_correct": _correct(attacked.model, x, y, attacked.preprocess),
        "evidence": scheme.verify(attacked.model, key, attacked.preprocess).to_dict(),
        "embed_source": source,
        "attack_seconds": attack_seconds,
    }


#: The runner of each trial type.
RUNNERS: dict[str, Callable[[WatermarkContext, dict[str, Any]], dict[str, Any]]] = {
    "sensitivity": run_sensitivity,
    "embed": run_embed,
    "null": run_null,
    "attack": run_attack,
}
