"""Bad hyperspectral inputs are refused naming the field (INVALID_ARGUMENT before any
training); the public-scene loaders read the .mat files from the data folder only; the
metrics are scikit-learn's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.io import savemat

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.training.hyperspectral.loaders import load_public_scene
from faultlab.workers.training.hyperspectral.metrics import map_metrics, paired_gain


def _spec(**section: Any) -> dict[str, Any]:
    return {"kind": "training", "training": {"workload": "hyperspectral", "seeds": 1,
                                             "hyperspectral": section}}


@pytest.mark.parametrize("section,field", [
    ({"scene": {"bands": 2}}, "training.hyperspectral.scene.bands"),
    ({"scene": {"classes": 1}}, "training.hyperspectral.scene.classes"),
    ({"scene": {"classes": 3, "proportions": [1, 1]}}, "training.hyperspectral.scene"),
    ({"labels_per_class": [0]}, "training.hyperspectral.labels_per_class"),
    ({"patch": 4}, "training.hyperspectral.patch"),
    ({"models": ["svm"]}, "training.hyperspectral.models.0"),
    ({"crf": {"iterations": 0}}, "training.hyperspectral.crf.iterations"),
    ({"source": "salinas"}, "training.hyperspectral.source"),
])
def test_bad_section_names_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(_spec(**section))
    assert err.value.field == field


def test_labels_larger_than_a_class_are_refused_at_validation() -> None:
    spec = parse_spec(_spec(scene={"height": 16, "width": 16, "bands": 10, "classes": 4},
                            labels_per_class=[5, 200], components=None))
    with pytest.raises(SpecError) as err:
        get_engine("training").validate(spec)
    assert err.value.field == "training.hyperspectral.labels_per_class"
    assert "200 labels per class is larger than class" in err.value.problem


def test_public_scene_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTLAB_HOME", str(tmp_path))
    with pytest.raises(SpecError) as err:
        load_public_scene("pavia_university")
    assert err.value.field == "training.hyperspectral.source" and "PaviaU.mat" in str(err.value)
    folder = tmp_path / "data" / "hyperspectral"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    savemat(folder / "PaviaU.mat", {"paviaU": rng.random((12, 10, 103))})
    gt = rng.integers(0, 10, (12, 10))
    savemat(folder / "PaviaU_gt.mat", {"paviaU_gt": gt})
    scene = load_public_scene("pavia_university")
    assert scene.cube.shape == (12, 10, 103) and scene.num_classes == 9
    np.testing.assert_array_equal(scene.labels, np.where(gt > 0, gt - 1, -1))
    crop = load_public_scene("pavia_university", window=(2, 3, 8, 5))
    assert crop.cube.shape == (8, 5, 103)
    with pytest.raises(SpecError):
        load_public_scene("pavia_university", max_pixels=50)


def test_metrics() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    m = map_metrics(truth, pred, 3)
    assert m["oa"] == pytest.approx(6 / 8)
    assert m["aa"] == pytest.approx((3 / 4 + 1 + 1 / 2) / 3)
    p_o, p_e = 6 / 8, (4 * 4 + 2 * 3 + 2 * 1) / 64
    assert m["kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))
    gain = paired_gain({0: 0.8, 1: 0.7, 2: 0.9}, {0: 0.7, 1: 0.7, 2: 0.8, 3: 0.1})
    assert gain["n"] == 3 and gain["mean"] == pytest.approx(0.2 / 3)
    assert gain["ci_low"] < gain["mean"] < gain["ci_high"]


@pytest.mark.parametrize("name", ["training-hyperspectral.yaml",
                                  "training-hyperspectral-quick.yaml"])
def test_examples_validate(name: str) -> None:
    text = (Path(__file__).resolve().parents[4] / "examples" / name).read_text()
    spec = parse_spec(text)
    engine = get_engine("training")
    engine.validate(spec)
    assert engine.params(spec).workload == "hyperspectral"


def test_intervals_over_seeds_stay_in_range() -> None:
    from faultlab.workers.training.hyperspectral.metrics import over_seeds

    stat = over_seeds([0.99, 1.0, 0.7], bounds=(0.0, 1.0))
    assert stat["ci_high"] == 1.0 and stat["ci_low"] < stat["mean"]
