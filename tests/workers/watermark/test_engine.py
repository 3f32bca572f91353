"""Watermark engine: statistics, spec errors, embed reuse, an end-to-end sweep (the schemes and
attacks themselves: ``test_schemes.py`` and ``test_attacks.py`` beside this file; the shared
fixtures: ``conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from scipy import stats

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.local import run_local
from faultlab.workers.watermark import cache
from faultlab.workers.watermark.imaging import psnr, ssim, unique_frequencies
from faultlab.workers.watermark.sensitivity import analyse
from faultlab.workers.watermark.verify import (
    Evidence,
    binomial_p_value,
    clopper_pearson_upper,
    min_matches,
    null_rate,
    ownership_p_value,
)
from faultlab.workers.zoo import ImageData
from tests.workers.watermark import FAST


def spec(**watermark: Any) -> dict[str, Any]:
    return {
        "kind": "watermark",
        "seed": 0,
        "model": FAST.model_dump(mode="json"),
        "dataset": {"name": "digits"},
        "watermark": watermark,
    }


# ----------------------------------------------------------------------------- statistics


def test_binomial_thresholds_match_the_field_numbers() -> None:
    assert min_matches(100, 0.1, 0.05) == 16
    assert min_matches(100, 0.1, 1e-6) == 28
    for n, p0, alpha in [(100, 0.1, 0.05), (50, 0.2, 1e-3), (200, 0.01, 1e-6)]:
        k = min_matches(n, p0, alpha)
        assert k is not None
        assert stats.binom.sf(k - 1, n, p0) <= alpha < stats.binom.sf(k - 2, n, p0)
    assert min_matches(5, 0.5, 1e-6) is None  # five queries can never reach 1e-6


def test_p_values_are_exact_binomial_tails() -> None:
    assert binomial_p_value(28, 100, 0.1) == pytest.approx(stats.binom.sf(27, 100, 0.1), rel=1e-9)
    assert binomial_p_value(100, 100, 0.1) == pytest.approx(1e-100, rel=1e-6)
    assert binomial_p_value(0, 100, 0.1) == 1.0


def test_null_rates_per_rule() -> None:
    uniform = null_rate("uniform", 10, [50, 60], 100, confidence=0.99, floor=0.01)
    assert uniform.p0 == pytest.approx(0.1) and uniform.source == "uniform"
    # No null model ever says the watermark class: Clopper-Pearson upper bound of 0/1000.
    none = null_rate("estimated", 10, [0] * 10, 100, confidence=0.99, floor=0.0)
    assert none.p0 == pytest.approx(clopper_pearson_upper(0, 1000, 0.99))
    assert none.p0 == pytest.approx(1 - 0.01 ** (1 / 1000), rel=1e-6)
    assert null_rate("estimated", 10, [0] * 10, 100, confidence=0.99, floor=0.05).p0 == 0.05
    # One null model that loves the target class dominates (heterogeneous nulls).
    assert null_rate(
        "estimated", 10, [0, 0, 40], 100, confidence=0.99, floor=0.0
    ).p0 == pytest.approx(0.4)
    assert null_rate("estimated", 10, [], 100, confidence=0.99, floor=0.0).source == "fallback"
    # Backup labels are drawn per trigger among the K-1 other classes: no key-blind model
    # matches a trigger with probability above 1/(K-1), whatever null models did.
    blind = null_rate("key_blind", 10, [30], 100, confidence=0.99, floor=0.01)
    assert blind.p0 == pytest.approx(1 / 9) and blind.exact
    assert not none.exact and none.false_claim_bound(1e-3) == pytest.approx(1 / 11)


def test_bonferroni_and_dropped_class() -> None:
    nulls = {
        "primary": null_rate("estimated", 10, [0] * 10, 100, confidence=0.99, floor=0.01),
        "backup": null_rate("key_blind", 10, [2] * 10, 100, confidence=0.99, floor=0.01),
    }
    both = Evidence(n=100, primary=90, backup=80, num_outputs=11)
    p, rule = ownership_p_value(both, nulls)
    assert rule == "primary"
    assert p == pytest.approx(2 * binomial_p_value(90, 100, nulls["primary"].p0))
    # The attacker cut the 11th output: only the backup rule applies, and it still verifies.
    dropped = Evidence(n=100, primary=None, backup=80, num_outputs=10)
    p, rule = ownership_p_value(dropped, nulls)
    assert rule == "backup" and p < 1e-6
    assert ownership_p_value(Evidence(100, None, None, 10), nulls) == (1.0, None)


# ----------------------------------------------------------------------------- spec errors


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"schemes": [{"name": "nope"}]}, "watermark.schemes[0].name"),
        (
            {"schemes": [{"name": "frequency", "params": {"amplitud": 0.1}}]},
            "watermark.schemes[0].params.amplitud",
        ),
        (
            {"schemes": [{"name": "frequency", "params": {"cluster": 7}}]},
            "watermark.schemes[0].params.cluster",
        ),
        (
            {"attacks": [{"name": "prune", "strengths": [0.5]}, {"name": "nope"}]},
            "watermark.attacks[1].name",
        ),
        (
            {"attacks": [{"name": "jpeg", "strengths": [50, 101]}]},
            "watermark.attacks[0].strengths[1]",
        ),
        ({"attacks": [{"name": "prune", "strengths": [1.5]}]}, "watermark.attacks[0].strengths[0]"),
        (
            {"attacks": [{"name": "weight_quantization", "strengths": [1]}]},
            "watermark.attacks[0].strengths[0]",
        ),
        ({"attacks": [{"name": "ftal", "strengths": [2.5]}]}, "watermark.attacks[0].strengths[0]"),
        ({"attacks": [{"name": "ftal", "params": {"lr": -1}}]}, "watermark.attacks[0].params.lr"),
        (
            {"attacks": [{"name": "chain", "steps": [{"name": "prune", "strength": 0.5}]}]},
            "watermark.attacks[0].steps",
        ),
        (
            {
                "attacks": [
                    {
                        "name": "chain",
                        "steps": [{"name": "prune"}, {"name": "ftal", "strength": 2000}],
                    }
                ]
            },
            "watermark.attacks[0].steps[1].strength",
        ),
        ({"trigger_size": 0}, "watermark.trigger_size"),
    ],
)
def test_bad_specs_name_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec(**section))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("scheme", "size"),
    [({"name": "zhang", "params": {"kind": "content", "source_class": 3}}, 200),
     ({"name": "frequency"}, 5000)],
)
def test_trigger_set_larger_than_the_data_allows(scheme: dict[str, Any], size: int) -> None:
    parsed = parse_spec(spec(schemes=[scheme], trigger_size=size))
    with pytest.raises(SpecError) as info:
        get_engine("watermark").validate(parsed)
    assert info.value.field == "watermark.trigger_size"
    assert "triggers" in info.value.problem


# ----------------------------------------------------------------------------- pieces


def test_image_metrics_and_frequencies() -> None:
    x = torch.rand(4, 3, 16, 16)
    assert torch.allclose(ssim(x, x, 1.0), torch.ones(4))
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert bool((ssim(x, noisy, 1.0) < 0.9).all())
    assert float(psnr(x, x, 1.0).min()) == 100.0
    assert float(psnr(x, x + 0.1, 1.0).mean()) == pytest.approx(20.0, abs=1e-3)
    assert len(unique_frequencies(8, 8)) == 34  # 8·3 + 2·5 distinct real components
    assert len(unique_frequencies(32, 32)) == 32 * 15 + 2 * 17


def test_sensitivity_map_clusters_every_frequency(
    digits: ImageData, model: torch.nn.Module
) -> None:
    sens = analyse(
        model, digits.x_train[:32], digits.y_train[:32], epsilon=0.1, repeats=1, clusters=3, seed=0
    )
    assert len(sens.frequencies) == len(sens.damage) == len(sens.rank) == 34
    assert set(sens.rank) == {0, 1, 2}
    assert sens.centroids == sorted(sens.centroids)
    by_rank = {
        r: [d for d, k in zip(sens.damage, sens.rank, strict=True) if k == r] for r in range(3)
    }
    assert max(by_rank[0]) <= min(by_rank[2])


# ----------------------------------------------------------------------------- end to end


@pytest.fixture()
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAULTLAB_HOME", str(tmp_path))
    cache.forget_memory()
    return tmp_path


def test_twenty_cell_sweep_embeds_once(fresh_home: Path) -> None:
    section = {
        "seeds": 1, "trigger_size": 40, "embed": {"epochs": 10},
        "sensitivity": {"probe_size": 32, "repeats": 1},
        "verification": {"null_models": 0},
        "attacks": [
            {"name": "prune"}, {"name": "gaussian_noise"}, {"name": "jpeg"},
            {"name": "weight_noise"},
        ],
    }
    report, records = run_local(spec(**section))
    assert report.summary["attack_cells"] == 20
    assert report.summary["embeddings_computed"] == 1
    assert report.summary["embed_reuse"] is True
    assert {r.result["embed_source"] for r in records if r.trial["type"] == "attack"} == {"memory"}
    log = [json.loads(line) for line in cache.log_path().read_text().splitlines()]
    assert [entry["kind"] for entry in log].count("embedding") == 1
    # A second campaign (another process would read the disk) computes nothing.
    cache.forget_memory()
    report, records = run_local(spec(**section))
    assert report.summary["embeddings_computed"] == 0 and report.summary["embed_reuse"] is True
    assert {r.result["embed_source"] for r in records if r.trial["type"] == "embed"} == {"disk"}
    assert len(cache.log_path().read_text().splitlines()) == len(log)


def test_end_to_end_sweep_on_digits(tmp_path: Path) -> None:
    section = {
        "seeds": 2,
        "trigger_size": 50,
        "embed": {"epochs": 15},
        "schemes": [
            {"name": "frequency"},
            {"name": "adi"},
            {"name": "zhang", "params": {"kind": "unrelated"}},
        ],
        "sensitivity": {"probe_size": 32, "repeats": 1},
        "verification": {"null_models": 3},
        "attacks": [
            {"name": "prune", "strengths": [0.3, 0.95]},
            {
                "name": "chain",
                "strengths": [0.5],
                "steps": [{"name": "prune"}, {"name": "ftll", "strength": 1}],
            },
            {"name": "rtll", "strengths": [1]},
            {"name": "lowpass", "strengths": [0.5]},
        ],
    }
    report, records = run_local(spec(**section))
    embeddings = report.table("embeddings", readable=False)
    assert len(embeddings) == 6 and bool(embeddings["verified"].all())
    assert float(embeddings["p_value"].max()) < 1e-6
    frequency = embeddings[embeddings["scheme"] == "frequency"]
    assert bool((frequency["psnr"] > 15).all()) and bool((frequency["ssim"] > 0.5).all())
    calibration = report.table("calibration", readable=False)
    adi = calibration[(calibration["scheme"] == "adi") & (calibration["rule"] == "primary")]
    assert set(adi["source"]) == {"uniform"} and set(adi["p0"]) == {0.1}
    frequency_nulls = calibration[calibration["scheme"] == "frequency"]
    assert set(frequency_nulls["rule"]) == {"primary", "backup"}
    assert set(frequency_nulls["source"]) == {"estimated", "key_blind"}
    assert len(report.table("null_models", readable=False)) == 3 * 6
    assert report.summary["false_claims"] == 0
    cells = report.table("cells", readable=False)
    assert len(cells) == 3 * 2 * 5
    rtll = cells[cells["attack"] == "rtll"]
    assert set(rtll["num_outputs"]) == {10}  # re-initialised head: the extra class is gone
    assert set(rtll[rtll["scheme"] == "frequency"]["rule"]) <= {"backup", None}
    robustness = report.table("robustness", readable=False)
    assert {"wm_acc_ci_low", "wm_acc_ci_high", "test_acc_ci_low", "verified_rate"} <= set(
        robustness.columns
    )
    breaks = report.table("break_points", readable=False)
    assert len(breaks) == 3 * 4
    assert "chain(prune@*>ftll@1)" in set(breaks["attack"])
    assert report.summary["embed_reuse"] is True
    assert report.table("sensitivity", readable=False)["seeds"].iloc[0] == 2
    report_json = json.loads(report.to_json())
    assert report_json["provenance"]["engine_version"] == "2"
    paths = {p.name for p in report.save_plots(tmp_path)}
    assert {"sensitivity_map.png", "robustness_prune.png", "tradeoff.png"} <= paths
    engine = get_engine("watermark")
    replay = engine.run_shard(
        engine.prepare(parse_spec(spec(**section))).context, [records[-1].trial]
    )
    assert engine.outcomes_equal(records[-1].result, replay[0])


def test_shapes32_campaign_maps_its_frequencies(fresh_home: Path) -> None:
    """The generated 3×32×32 set runs end to end and gives a 32×32 sensitivity map."""
    small = {
        "kind": "watermark",
        "seed": 0,
        "model": {"name": "digits_cnn", "options": {"epochs": 1}},
        "dataset": {"name": "shapes32", "options": {"num_per_class": 12}},
        "watermark": {
            "seeds": 1,
            "trigger_size": 10,
            "embed": {"epochs": 1},
            "sensitivity": {"probe_size": 4, "repeats": 1},
            "verification": {"null_models": 0},
            "attacks": [
                {"name": "bandstop", "strengths": [0.2]},
                {"name": "jpeg", "strengths": [50]},
            ],
        },
    }
    report, _ = run_local(small)
    sens = report.table("sensitivity", readable=False)
    assert len(sens) == 32 * 15 + 2 * 17 and set(sens["height"]) == {32}
    assert len(report.table("cells", readable=False)) == 2
    assert report.summary["embed_reuse"] is True


def test_shapes32_is_deterministic() -> None:
    from faultlab.workers.zoo.shapes import load_shapes

    a, b = load_shapes(num_per_class=5, seed=3), load_shapes(num_per_class=5, seed=3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.input_shape == (3, 32, 32) and a.num_classes == 10
    assert float(a.x_train.min()) >= 0.0 and float(a.x_train.max()) <= 1.0
    with pytest.raises(SpecError) as info:
        load_shapes(size=4)
    assert info.value.field == "dataset.options.size"
