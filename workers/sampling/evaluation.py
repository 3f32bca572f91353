"""How estimators are judged: replay metrics, labels saved at equal RMSE, oracle quality and
the DAIC summaries (pandas + scipy.stats; every figure with its confidence interval).

Replay metrics per (sampler, budget), over the repetitions, with ``e = θ̂ − θ``:

* bias ``mean(e)`` (Student-t CI), RMSE ``sqrt(mean(e²))`` (CI: square roots of the t-interval
  of the mean squared error), 95 % CI coverage per budget (Wilson CI) with ``under_coverage``
  set when even the coverage's upper bound is below nominal, mean CI width, labels spent and
  mispredictions found;
* ``rmse_ratio_vs_srs`` — RMSE over simple random sampling's empirical RMSE at the same budget;
  ``rmse_ratio_vs_srs_theory`` — over SRS's exact RMSE ``sqrt(θ(1−θ)(N−n) / ((N−1) n))``;
* ``srs_equivalent_labels`` — labels SRS needs for the same RMSE, from that exact formula:
  ``n_eq = N θ(1−θ) / ((N−1) RMSE² + θ(1−θ))``; ``labels_saved = n_eq − labels spent``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from faultlab.stats import mean_with_ci, rate_with_ci


def srs_rmse(truth: float, size: int, n: float) -> float:
    """Exact RMSE of the SRS sample mean without replacement (Cochran eq. 2.12)."""
    if n >= size:
        return 0.0
    return math.sqrt(truth * (1.0 - truth) * (size - n) / ((size - 1) * n))


def srs_equivalent_labels(truth: float, size: int, rmse: float) -> float:
    """Labels simple random sampling needs to reach ``rmse`` (inverse of :func:`srs_rmse`)."""
    variance = truth * (1.0 - truth)
    return size * variance / ((size - 1) * rmse**2 + variance) if variance > 0 else 1.0


def replay_table(rows: list[dict[str, Any]], truth: float, size: int,
                 confidence: float) -> pd.DataFrame:
    """One row per (sampler, budget) with bias, RMSE, coverage, width, labels saved, ..."""
    frame = pd.DataFrame(rows)
    out = []
    for (label, budget), group in frame.groupby(["sampler", "budget"], sort=False):
        errors = (group["estimate"] - truth).to_list()
        squared = [e * e for e in errors]
        bias = mean_with_ci(errors, confidence)
        mse = mean_with_ci(squared, confidence)
        rmse = math.sqrt(mse["mean"])
        covered = int(group["covered"].sum())
        coverage = rate_with_ci(covered, len(group), confidence)
        width = mean_with_ci((group["ci_high"] - group["ci_low"]).to_list(), confidence)
        found = mean_with_ci(group["mispredictions_found"].astype(float).to_list(), confidence)
        labels = float(group["labels_spent"].mean())
        equivalent = srs_equivalent_labels(truth, size, rmse) if rmse > 0 else math.inf
        out.append({
            "sampler": label,
            "budget": int(budget),
            "repetitions": len(group),
            "bias": bias["mean"], "bias_ci_low": bias["ci_low"], "bias_ci_high": bias["ci_high"],
            "rmse": rmse,
            "rmse_ci_low": math.sqrt(max(0.0, mse["ci_low"])),
            "rmse_ci_high": math.sqrt(max(0.0, mse["ci_high"])),
            "coverage": coverage["rate"],
            "coverage_ci_low": coverage["ci_low"], "coverage_ci_high": coverage["ci_high"],
            "nominal": confidence, "under_coverage": coverage["ci_high"] < confidence,
            "ci_width": width["mean"],
            "ci_width_ci_low": width["ci_low"], "ci_width_ci_high": width["ci_high"],
            "labels_spent": labels,
            "mispredictions_found": found["mean"],
            "mispredictions_found_ci_low": found["ci_low"],
            "mispredictions_found_ci_high": found["ci_high"],
            "srs_rmse_theory": srs_rmse(truth, size, labels),
            "srs_equivalent_labels": equivalent,
            "labels_saved": equivalent - labels,
            "labels_saved_fraction": 1.0 - labels / equivalent if equivalent > 0 else math.nan,
            "ci_method": str(group["ci_method"].iloc[0]),
        })
    table = pd.DataFrame(out)
    srs = table[table["sampler"] == "srs"].set_index("budget")["rmse"]
    table["rmse_ratio_vs_srs"] = [
        row.rmse / srs[row.budget] if row.budget in srs.index and srs[row.budget] > 0 else math.nan
        for row in table.itertuples()
    ]
    table["rmse_ratio_vs_srs_theory"] = [
        row.rmse / srs_rmse(truth, size, row.budget) if srs_rmse(truth, size, row.budget) > 0
        else math.nan for row in table.itertuples()
    ]
    return table


def best_sampler(table: pd.DataFrame, budget: int, confidence: float,
                 tolerance: float = 0.02) -> dict[str, Any] | None:
    """The lowest-RMSE sampler other than SRS at ``budget`` among those whose coverage is
    within ``tolerance`` of nominal (an estimator with a wrong CI does not win); the
    lowest-RMSE one overall when none qualifies."""
    rows = table[(table["budget"] == budget) & (table["sampler"] != "srs")]
    if rows.empty:
        return None
    valid = rows[rows["coverage"] >= confidence - tolerance]
    chosen = (valid if not valid.empty else rows).sort_values("rmse").iloc[0]
    return {str(k): v for k, v in chosen.to_dict().items()}


def auroc_with_ci(suspicion: np.ndarray, failed: np.ndarray,
                  confidence: float = 0.95) -> dict[str, float]:
    """AUROC of a suspicion score for detecting mispredictions (Mann–Whitney U / n₁n₀) with
    the Hanley & McNeil (1982) standard error."""
    positives, negatives = suspicion[failed], suspicion[~failed]
    n1, n0 = len(positives), len(negatives)
    if n1 == 0 or n0 == 0:
        return {"auroc": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    u = stats.mannwhitneyu(positives, negatives, alternative="two-sided").statistic
    a = float(u) / (n1 * n0)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt(max(0.0, (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a))
                       / (n1 * n0)))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return {"auroc": a, "ci_low": max(0.0, a - z * se), "ci_high": min(1.0, a + z * se)}


def daic_tables(rows: list[dict[str, Any]], control: str,
                confidence: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-row cycle table, and per (arm, iteration) means with CIs plus the paired gain of
    each arm's true operational accuracy over the control's (same repetition)."""
    frame = pd.DataFrame(rows)
    summary = []
    for (arm, iteration), group in frame.groupby(["arm", "iteration"], sort=False):
        accuracy = mean_with_ci(group["operational_accuracy"].to_list(), confidence)
        estimate = mean_with_ci(group["estimate"].to_list(), confidence)
        error = mean_with_ci((group["estimate"] - group["estimand"]).abs().to_list(), confidence)
        found = mean_with_ci(group["mispredictions_found"].astype(float).to_list(), confidence)
        base = frame[(frame["arm"] == control) & (frame["iteration"] == iteration)]
        paired = group.merge(base, on="repetition", suffixes=("", "_control"))
        gain = mean_with_ci((paired["operational_accuracy"]
                             - paired["operational_accuracy_control"]).to_list(), confidence)
        summary.append({
            "arm": arm, "iteration": int(iteration),
            "labels_total": float(group["labels_total"].mean()),
            "operational_accuracy": accuracy["mean"],
            "operational_ci_low": accuracy["ci_low"], "operational_ci_high": accuracy["ci_high"],
            "estimate": estimate["mean"],
            "estimate_ci_low": estimate["ci_low"], "estimate_ci_high": estimate["ci_high"],
            "abs_error_vs_estimand": error["mean"],
            "coverage_of_estimand": float(group["covered"].mean()),
            "mispredictions_found": found["mean"],
            "gain_vs_control": gain["mean"],
            "gain_ci_low": gain["ci_low"], "gain_ci_high": gain["ci_high"],
            "repetitions": len(group),
        })
    return frame, pd.DataFrame(summary)


def synthetic_pool(size: int, accuracy: float, seed: int) -> tuple[Any, np.ndarray]:
    """A fully labelled synthetic operational pool with known truth, for validity checks:
    each input's probability of being right is drawn ``Beta`` with mean ``accuracy``, its
    correctness from it, and the ``msp`` pseudo-oracle reports a noisy (but informative)
    version of that probability; the representation clusters failures in 2-D. Returns
    (pool, labels) with the model predicting class 0 everywhere."""
    from faultlab.workers.sampling.samplers import OperationalPool
    from faultlab.workers.sampling.samplers.base import OracleScores

    rng = np.random.default_rng([seed, 0x51D])
    strength = 4.0
    p_true = rng.beta(accuracy * strength, (1.0 - accuracy) * strength, size)
    correct = rng.random(size) < p_true
    noisy = np.clip(p_true + rng.normal(0.0, 0.1, size), 0.0, 1.0)
    embedding = rng.normal(0.0, 1.0, (size, 2)) + np.where(correct, 0.0, 1.5)[:, None]
    pool = OperationalPool(np.zeros(size, np.int64),
                           {"msp": OracleScores(1.0 - noisy, noisy)}, embedding)
    return pool, np.where(correct, 0, 1).astype(np.int64)


def simulate_coverage(sampler: Any, budgets: list[int], reps: int, confidence: float,
                      *, size: int = 2000, accuracy: float = 0.9,
                      seed: int = 0) -> list[dict[str, Any]]:
    """Monte Carlo coverage of one sampler's interval on :func:`synthetic_pool` (known truth):
    per budget, the share of ``reps`` repetitions whose interval covers the truth (Wilson
    CI), the mean width and how many intervals left [0, 1]. A budget the sampler refuses
    (``SpecError`` from its ``check_budget``) gives a row with ``refused`` set."""
    from faultlab.errors import SpecError
    from faultlab.workers.sampling.samplers import SAMPLERS, LabelOracle

    pool, labels = synthetic_pool(size, accuracy, seed)
    truth = float((labels == pool.predictions).mean())
    impl = SAMPLERS.get(sampler.name).impl
    rows = []
    for budget in budgets:
        try:
            sampler.params.check_budget(budget, "sampling.samplers.0", "sampling.budgets")
        except SpecError as refusal:
            rows.append({"sampler": sampler.display, "budget": budget, "refused": True,
                         "reason": refusal.problem})
            continue
        rng = np.random.default_rng([seed, budget])
        covered = outside = 0
        widths = []
        for _ in range(reps):
            result = impl(pool, LabelOracle(labels, pool.predictions), budget, sampler.params,
                          rng, confidence)
            covered += int(result.ci_low <= truth <= result.ci_high)
            outside += int(result.ci_low < 0.0 or result.ci_high > 1.0)
            widths.append(result.ci_high - result.ci_low)
        coverage = rate_with_ci(covered, reps, confidence)
        rows.append({"sampler": sampler.display, "budget": budget, "refused": False,
                     "coverage": coverage["rate"], "coverage_ci_low": coverage["ci_low"],
                     "coverage_ci_high": coverage["ci_high"], "reps": reps,
                     "ci_width": float(np.mean(widths)), "outside_unit": outside,
                     "ci_method": result.ci_method})
    return rows
