"""The DAIC improvement cycle (DNN Assessment and Improvement Cycle, seed paper 1).

One arm, one repetition::

    M_0 = the assessed model
    for k = 0 … K:
        score the arm's pseudo-oracle with M_k over the unlabelled improvement inputs
        sample `budget` of them with the arm's sampler, buy their labels,
        estimate M_k's operational accuracy (estimate + CI)
        if k < K: fine-tune M_k on every input labelled so far (mispredictions included,
                  mixed with replayed training inputs against forgetting) → M_{k+1}

Each row reports the estimate, the quantity it estimates (M_k's accuracy on the unlabelled
improvement inputs, known here because the zoo pool is fully labelled), and M_k's true
operational accuracy on the *evaluation* inputs, a slice of the pool that is never labelled
or trained on. The slice is cut by base input (``operational.improvement_split``): every shifted
copy of an evaluation image is in it, so no sibling of an evaluated input is ever trained on.
The control arm is the same loop with simple random sampling, i.e. the same
labels spent on random inputs.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faultlab.stats import wilson_interval
from faultlab.workers.sampling.oracles import ORACLES, ScoringContext
from faultlab.workers.sampling.params import SamplerSpec
from faultlab.workers.sampling.samplers import SAMPLERS, LabelOracle, OperationalPool
from faultlab.workers.zoo import ImageData


def batched_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """The model's logits on ``x``, in eval mode, without gradients."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def fine_tune(model: nn.Module, x_labelled: torch.Tensor, y_labelled: torch.Tensor,
              train: ImageData, *, epochs: int, lr: float, batch_size: int, replay_ratio: float,
              seed: int) -> None:
    """Adam on cross-entropy over the labelled operational inputs; every step also replays
    ``replay_ratio`` training inputs per labelled one (deterministic in ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    count = len(x_labelled)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(count, generator=gen)
            for i in range(0, count, batch_size):
                index = order[i : i + batch_size]
                xb, yb = x_labelled[index], y_labelled[index]
                replay = int(round(len(index) * replay_ratio))
                if replay:
                    rows = torch.randint(len(train.x_train), (replay,), generator=gen)
                    xb = torch.cat([xb, train.x_train[rows]])
                    yb = torch.cat([yb, train.y_train[rows]])
                optimiser.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                optimiser.step()
    model.eval()


def run_cycle(context: Any, trial: dict[str, Any]) -> dict[str, Any]:
    """One arm × repetition of the cycle; ``context`` is the engine's ``SamplingContext``."""
    started = time.perf_counter()
    sampler = SamplerSpec.model_validate(trial["sampler"])
    rng = np.random.default_rng(trial["seed"])
    model = copy.deepcopy(context.model)  # one copy per cycle: fine-tuning changes weights
    labels = context.labels
    y_all = torch.from_numpy(labels)
    labelled = np.empty(0, dtype=np.int64)
    rows: list[dict[str, Any]] = []
    for k in range(trial["iterations"] + 1):
        logits = batched_logits(model, context.x_pool)
        predicted = logits.argmax(1).numpy()
        correct = predicted == labels
        remainder = np.setdiff1d(context.improve_ids, labelled)
        names = ["msp"] + ([sampler.oracle] if sampler.oracle else [])
        scoring = ScoringContext(model, context.x_pool[torch.from_numpy(remainder)],
                                 logits[torch.from_numpy(remainder)], context.train,
                                 context.model_spec, context.oracle_settings, trial["seed"] + k)
        pool = OperationalPool(
            predicted[remainder],
            {name: ORACLES.get(name).impl(scoring) for name in dict.fromkeys(names)},
            scoring.representation("pool").numpy(),
        )
        oracle = LabelOracle(labels[remainder], predicted[remainder])
        result = SAMPLERS.get(sampler.name).impl(
            pool, oracle, trial["budget"], sampler.params, rng, trial["confidence"]
        )
        operational = float(correct[context.eval_ids].mean())
        low, high = wilson_interval(int(correct[context.eval_ids].sum()), len(context.eval_ids))
        estimand = float(correct[remainder].mean())
        rows.append({
            "iteration": k,
            "labels_total": int(len(labelled) + result.labels_spent),
            "estimate": result.estimate,
            "ci_low": result.ci_low,
            "ci_high": result.ci_high,
            "estimand": estimand,
            "covered": bool(result.ci_low <= estimand <= result.ci_high),
            "operational_accuracy": operational,
            "operational_ci_low": low,
            "operational_ci_high": high,
            "mispredictions_found": result.mispredictions_found,
        })
        labelled = np.concatenate([labelled, remainder[result.sampled]])
        if k == trial["iterations"]:
            break
        index = torch.from_numpy(labelled)
        fine_tune(model, context.x_pool[index], y_all[index], context.train,
                  epochs=trial["epochs"], lr=trial["lr"], batch_size=trial["batch_size"],
                  replay_ratio=trial["replay_ratio"],
                  seed=trial["finetune_seed"] + 7919 * (k + 1))
    return {"rows": rows, "cycle_seconds": time.perf_counter() - started}
