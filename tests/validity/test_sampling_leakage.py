"""The DAIC evaluation/improvement split is by base image (issue 12 item 4): no image is
fine-tuned on under one shift and evaluated under another."""

from __future__ import annotations

import numpy as np

from faultlab.spec import DatasetSpec
from faultlab.workers.sampling.operational import improvement_split, plan_pool
from faultlab.workers.sampling.params import PoolSpec
from faultlab.workers.zoo import ImageData, load_dataset


def test_split_keeps_every_base_image_on_one_side() -> None:
    dataset = DatasetSpec.model_validate({"name": "digits"})
    data = load_dataset(dataset)
    assert isinstance(data, ImageData)
    pool = PoolSpec.model_validate({"shifts": [
        {"name": name, "severity": 0.5} for name in ("clean", "gaussian_noise", "blur", "contrast")
    ]})
    plan = plan_pool(pool, dataset, data, seed=0)
    improve, evaluate = improvement_split(plan, 0.3, seed=0)
    assert len(np.intersect1d(improve, evaluate)) == 0
    assert len(improve) + len(evaluate) == plan.size
    assert len(np.intersect1d(plan.base_of[improve], plan.base_of[evaluate])) == 0
    share = len(np.unique(plan.base_of[evaluate])) / len(np.unique(plan.base_of))
    assert abs(share - 0.3) < 0.02
    again = improvement_split(plan, 0.3, seed=0)
    assert np.array_equal(again[0], improve) and np.array_equal(again[1], evaluate)
