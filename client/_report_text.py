"""The words of a report: its headline (what was evaluated, the key rates with their CIs) and
the definition of every metric it shows. Shared by the HTML report, the dashboard and the CLI.
"""

from __future__ import annotations

from typing import Any

from faultlab.client._report_format import rate_words
from faultlab.report import Report

DEFINITIONS: dict[str, dict[str, str]] = {
    "faults": {
        "trial": "One fault injection: a fault (site, element, bit) applied to the model, the "
                 "evaluation set run once, the fault removed (the model is restored exactly).",
        "masked": "The output is bit-identical to the fault-free (golden) output on every input.",
        "SDC": "Silent data corruption: some output differs from the golden output and no error "
               "was raised (critical SDCs included).",
        "critical SDC": "An SDC that changes the top-1 prediction on an input the golden model "
                        "classified correctly: the user gets a wrong answer.",
        "DUE": "Detected unrecoverable error: the faulty model produced NaN/Inf or raised.",
        "failure": "Critical SDC or DUE: the user gets no answer or a wrong one.",
        "population": "The size of the fault space of a stratum (sites × elements × bits); rates "
                      "are estimates of the fraction of this space with each outcome.",
        "sampled fraction": "Trials ÷ population: how much of the fault space was tried. An "
                            "enumerated stratum (fraction 1) is exact; its CI has zero width.",
        "stratum": "A cell of the stratification (layer, bit, dtype); merged rows weight their "
                   "strata by population.",
        "mitigation": "A protection (e.g. Ranger range clipping) run on the same faults as the "
                      "unprotected model; its effect is a paired difference.",
        "reduction": "1 − mitigated rate ÷ unprotected rate (positive = the mitigation helps).",
        "top-k changed": "The set of the 5 highest-scoring classes changed on some input (a "
                         "softer corruption than a top-1 change).",
        "logit deviation": "The largest absolute output difference from the golden output in "
                           "a trial; `faultlab report --sdc-tolerance T` re-counts SDC at T.",
        "target": "Where the faults land (weight, activation, message, …); a multi-target "
                  "campaign reports each target in its own rows (per_target).",
    },
    "sparsity": {
        "achieved sparsity": "Fraction of the prunable weights that are exactly zero after "
                             "pruning (not the requested level).",
        "accuracy": "Top-1 accuracy on the evaluation split, mean over seeds.",
        "accuracy drop": "Dense accuracy minus the compressed model's accuracy.",
        "Pareto front": "Cells no other cell beats on both accuracy and sparsity.",
        "theoretical speedup": "1 ÷ (1 − sparsity) for unstructured sparsity: the FLOP ratio.",
        "realized speedup": "Measured dense latency ÷ compressed latency on this machine.",
    },
    "watermark": {
        "watermark accuracy": "Fraction of trigger inputs classified as their watermark label.",
        "test accuracy": "Top-1 accuracy on clean test inputs.",
        "break point": "The weakest attack strength at which the watermark is no longer "
                       "verified (watermark accuracy below the verification threshold).",
        "strength": "The attack's knob (pruned fraction, noise σ, JPEG quality, ...).",
    },
    "sampling": {
        "budget": "Number of labelled inputs the estimator may use.",
        "RMSE": "Root mean squared error of the accuracy estimate over repetitions.",
        "coverage": "Fraction of repetitions whose CI contains the true accuracy (nominal: "
                    "the confidence level).",
        "operational accuracy": "Accuracy on the operational (shifted) input distribution.",
    },
    "training": {
        "steps to target": "Optimizer steps until the validation metric first reaches the target.",
        "learning curve": "A metric against training steps, mean over seeds.",
    },
    "common": {
        "CI": "Confidence interval at the campaign's confidence level (Wilson score interval "
              "for rates, with the finite-population correction for enumerated strata; "
              "percentile or t intervals over seeds otherwise). Digits shown follow the CI width.",
    },
}

_FAULT_RATES = (("critical_sdc", "critical SDC"), ("sdc", "SDC"), ("due", "DUE"),
                ("masked", "masked"))
_PER_INPUT = (("per_input_critical_sdc", "critical SDC"), ("per_input_sdc", "SDC"))


def _what(report: Report) -> str:
    s = report.summary
    workloads = s.get("workloads") or [w for w in (s.get("model"), s.get("dataset")) if w]
    subject = ", ".join(map(str, workloads)) if workloads else ""
    if report.kind == "faults":
        dtypes = "/".join(map(str, s.get("dtypes", [])))
        return (f"{s.get('fault_model', 'fault')} faults in {s.get('target', 'the model')} "
                f"({dtypes}) of {subject}")
    return f"{report.kind} campaign on {subject}" if subject else f"{report.kind} campaign"


def _fault_lines(s: dict[str, Any]) -> list[str]:
    lines = []
    for stem, name in _FAULT_RATES:
        if f"{stem}_rate" in s:
            words = rate_words(s.get(f"{stem}_rate"), s.get(f"{stem}_ci_low"),
                               s.get(f"{stem}_ci_high"))
            lines.append(f"{name}: {words} of faults")
    for stem, name in _PER_INPUT:
        if f"{stem}_rate" in s:
            words = rate_words(s.get(f"{stem}_rate"), s.get(f"{stem}_ci_low"),
                               s.get(f"{stem}_ci_high"))
            lines.append(f"{name} per input: {words} of (fault, input) pairs")
    pop, trials = s.get("population"), s.get("trials")
    if pop and trials:
        lines.append(f"{trials:,} trials out of a fault space of {pop:,.0f} "
                     f"(sampled fraction {trials / pop:.2g}), {s.get('sampling', '')} sampling")
    return lines


def _generic_lines(s: dict[str, Any]) -> list[str]:
    """Every summary number that comes with a CI, then the other scalar numbers."""
    lines = []
    for key, value in s.items():
        stem = key[: -len("_rate")] if key.endswith("_rate") else key
        low = s.get(f"{stem}_ci_low", s.get(f"{key}_ci_low"))
        high = s.get(f"{stem}_ci_high", s.get(f"{key}_ci_high"))
        if isinstance(value, float) and low is not None and high is not None:
            lines.append(f"{key.replace('_', ' ')}: {rate_words(value, low, high)}")
    for key, value in s.items():
        if len(lines) >= 8:
            break
        if isinstance(value, int | float) and not isinstance(value, bool) and "ci_" not in key \
                and not any(line.startswith(key.replace("_", " ")) for line in lines):
            lines.append(f"{key.replace('_', ' ')}: {value:.4g}" if isinstance(value, float)
                         else f"{key.replace('_', ' ')}: {value:,}")
    return lines


def _target_lines(report: Report) -> list[str]:
    """One line per target of a multi-target fault campaign (its unmitigated rows)."""
    table = report.tables.get("per_target")
    if table is None or table.empty:
        return []
    rows = table[table["mitigation"] == "none"] if "mitigation" in table else table
    return [f"{r['target']} faults ({r['workload']}, {r['dtype']}): critical SDC "
            + rate_words(*(r[f"critical_sdc_{c}"] for c in ("rate", "ci_low", "ci_high")))
            for r in rows.to_dict("records")]


def headline(report: Report) -> list[str]:
    """The title, then one plain-words line per key result."""
    title = f"faultlab report: {_what(report)}"
    s = report.summary
    if s.get("trials") == 0 or not any(len(t) for t in report.tables.values()):
        return [title, "No finished trials yet."]
    lines = _fault_lines(s) + _target_lines(report) if report.kind == "faults" \
        else _generic_lines(s)
    confidence = s.get("confidence")
    if confidence:
        lines.append(f"Intervals are {100 * float(confidence):g} % confidence intervals.")
    return [title, *lines]
