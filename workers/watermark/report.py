"""The watermark engine's report: ownership statistics over the trial records.

Null calibration per (scheme, seed) and decision rule (``verify.py``: binomial test with the
null rate estimated on independently trained models, a floor, and a leave-one-out false-claim
rate); the embedded models' clean-accuracy cost and imperceptibility; per attack and strength,
pooled rates with Wilson CIs over seeds' counts; and per (scheme, attack) the break point —
the weakest strength at which most seeds fail verification while the test-accuracy drop
stays within the budget.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pandas as pd

from faultlab.stats import mean_with_ci, rate_with_ci
from faultlab.workers.engine import TrialRecord
from faultlab.workers.watermark.catalog import CHAIN
from faultlab.workers.watermark.imaging import radial_fraction
from faultlab.workers.watermark.params import AttackSpec, WatermarkParams, attack_info, sweep
from faultlab.workers.watermark.sensitivity import SensitivityMap
from faultlab.workers.watermark.verify import (
    Evidence,
    NullRate,
    min_matches,
    null_rate,
    ownership_p_value,
)

Cell = tuple[int, int]
"""(scheme index, repetition seed): one watermarked model."""
Counts = tuple[int, int]
"""(correct, total) test-set answers of one model."""
ByType = dict[str, list[TrialRecord]]


def attack_labels(attacks: list[AttackSpec]) -> list[str]:
    """A readable, unique label per attack spec: the name, its parameters when given
    (``ftal(lr=0.01)``), a chain's steps (``chain(prune@*>ftal@2)``), ``#i`` if still ambiguous."""

    def with_params(name: str, params: dict[str, Any]) -> str:
        if not params:
            return name
        return name + "(" + ",".join(f"{k}={params[k]}" for k in sorted(params)) + ")"

    labels = []
    for attack in attacks:
        if attack.name == CHAIN:
            parts = []
            for s in attack.steps:
                strength = "*" if s.strength is None else f"{s.strength:g}"
                parts.append(f"{with_params(s.name, s.params.given())}@{strength}")
            labels.append("chain(" + ">".join(parts) + ")")
        else:
            labels.append(with_params(attack.name, attack.params.given()))
    counts = Counter(labels)
    seen: Counter[str] = Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(f"{label}#{seen[label]}" if counts[label] > 1 else label)
    return out


def report_tables(
    params: WatermarkParams, meta: dict[str, Any], records: list[TrialRecord]
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The report's tables and summary."""
    by_type: ByType = defaultdict(list)
    for r in records:
        by_type[r.trial["type"]].append(r)
    scheme_names = {i: s.name for i, s in enumerate(params.schemes)}
    calibrated, cal_rows, null_rows = _calibrate(
        params, int(meta["num_classes"]), by_type, scheme_names
    )
    embed_rows, wm_test = _embedding_rows(params, by_type, calibrated, scheme_names)
    cells = pd.DataFrame(_attack_rows(params, by_type, calibrated, wm_test, scheme_names))
    robustness, breaks = _robustness(cells, params, attack_labels(params.attacks))
    embeddings = pd.DataFrame(embed_rows)
    summary = _summary(params, by_type, null_rows, embeddings, breaks, scheme_names)
    summary["false_claim_bound"] = max((r["false_claim_bound"] for r in cal_rows), default=1.0)
    tables = {
        "robustness": robustness, "break_points": breaks, "cells": cells, "embeddings": embeddings,
        "calibration": pd.DataFrame(cal_rows), "null_models": pd.DataFrame(null_rows),
        "sensitivity": _sensitivity_table(by_type["sensitivity"]),
    }
    return tables, summary


def _calibrate(
    params: WatermarkParams, k: int, by_type: ByType, scheme_names: dict[int, str]
) -> tuple[dict[Cell, dict[str, NullRate]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Null calibration per (scheme, seed) and rule, and leave-one-out false claims."""
    ver = params.verification
    answers: dict[tuple[int, int], list[tuple[int, Evidence]]] = defaultdict(list)
    for r in by_type["null"]:
        for a in r.result["answers"]:
            answers[(a["scheme_index"], a["seed"])].append(
                (r.trial["null_seed"], Evidence.from_dict(a))
            )
    primary_null = {
        (r.trial["scheme_index"], r.trial["seed"]): r.result["null"] for r in by_type["embed"]
    }
    key_rules = {
        (r.trial["scheme_index"], r.trial["seed"]): r.result["rules"] for r in by_type["embed"]
    }

    def nulls_for(cell: tuple[int, int], exclude: int | None = None) -> dict[str, NullRate]:
        evs = [e for s, e in answers.get(cell, []) if s != exclude]
        rates = {}
        for rule in key_rules[cell]:
            kind = primary_null[cell] if rule == "primary" else "key_blind"
            counts = [e.matches(rule) or 0 for e in evs]
            n = evs[0].n if evs else 0
            rates[rule] = null_rate(
                kind, k, counts, n, confidence=ver.null_confidence, floor=ver.min_null_rate
            )
        return rates

    calibrated = {cell: nulls_for(cell) for cell in primary_null}
    cal_rows, null_rows = [], []
    for (i, seed), rates in sorted(calibrated.items()):
        n = params.trigger_size
        for rule, rate in rates.items():
            cal_rows.append({
                "scheme": scheme_names[i], "seed": seed, "rule": rule, "p0": rate.p0,
                "source": rate.source, "null_matches": rate.null_matches,
                "null_trials": rate.null_trials, "min_matches": min_matches(n, rate.p0, ver.alpha),
                "n": n, "alpha": ver.alpha, "exact": rate.exact,
                "guarantee": "exact" if rate.exact else "estimate",
                "false_claim_bound": rate.false_claim_bound(ver.alpha),
            })
        for null_seed, ev in answers.get((i, seed), []):
            p, decided = ownership_p_value(ev, nulls_for((i, seed), exclude=null_seed))
            null_rows.append({
                "null_seed": null_seed, "scheme": scheme_names[i], "seed": seed,
                "primary": ev.primary, "backup": ev.backup, "n": ev.n, "p_value": p,
                "rule": decided, "false_claim": p <= ver.alpha,
            })
    return calibrated, cal_rows, null_rows


def _embedding_rows(
    params: WatermarkParams, by_type: ByType, calibrated: dict[Cell, dict[str, NullRate]],
    scheme_names: dict[int, str],
) -> tuple[list[dict[str, Any]], dict[Cell, Counts]]:
    """One row per watermarked model, and each one's test accuracy."""
    ver = params.verification
    embed_rows = []
    wm_test: dict[Cell, Counts] = {}
    for r in sorted(by_type["embed"], key=lambda r: (r.trial["scheme_index"], r.trial["seed"])):
        cell = (r.trial["scheme_index"], r.trial["seed"])
        ev = Evidence.from_dict(r.result["evidence"])
        p, rule = ownership_p_value(ev, calibrated[cell])
        test_acc = r.result["test_correct"] / r.result["test_n"]
        base_acc = r.result["base_test_correct"] / r.result["test_n"]
        wm_test[cell] = (int(r.result["test_correct"]), int(r.result["test_n"]))
        embed_rows.append({
            "scheme": scheme_names[cell[0]], "seed": cell[1], "base_test_acc": base_acc,
            "test_acc": test_acc, "clean_acc_drop": 100 * (base_acc - test_acc),
            "trigger_acc": _wm_acc(ev, rule), "matches": _matches(ev, rule), "n": ev.n,
            "p_value": p, "rule": rule,
            "verified": p <= ver.alpha, "psnr": r.result["psnr"], "ssim": r.result["ssim"],
            "num_outputs": r.result["num_outputs"], "embed_source": r.result["embed_source"],
            "elapsed_seconds": r.result["elapsed_seconds"],
        })
    return embed_rows, wm_test


def _attack_rows(
    params: WatermarkParams, by_type: ByType, calibrated: dict[Cell, dict[str, NullRate]],
    wm_test: dict[Cell, Counts], scheme_names: dict[int, str],
) -> list[dict[str, Any]]:
    """One row per attack cell (attack, strength, scheme, seed)."""
    ver = params.verification
    cell_rows = []
    for r in by_type["attack"]:
        t = r.trial
        cell = (t["scheme_index"], t["seed"])
        if cell not in calibrated:
            continue  # its embed trial failed: nothing to compare against
        ev = Evidence.from_dict(r.result["evidence"])
        p, rule = ownership_p_value(ev, calibrated[cell])
        correct, test_n = int(r.result["test_correct"]), int(r.result["test_n"])
        base_correct, _ = wm_test[cell]  # the same test set, before the attack
        cell_rows.append({
            "scheme": scheme_names[cell[0]], "attack": t["attack_label"],
            "attack_index": t["attack_index"], "strength": t["strength"], "seed": cell[1],
            "wm_acc": _wm_acc(ev, rule), "test_acc": correct / test_n, "test_correct": correct,
            "test_n": test_n, "wm_test_correct": base_correct,
            "test_acc_drop": 100 * (base_correct - correct) / test_n,
            "matches": _matches(ev, rule),
            "n": ev.n, "primary_acc": None if ev.primary is None else ev.primary / ev.n,
            "backup_acc": None if ev.backup is None else ev.backup / ev.n, "p_value": p,
            "rule": rule, "verified": p <= ver.alpha, "num_outputs": ev.num_outputs,
            "embed_source": r.result["embed_source"], "attack_seconds": r.result["attack_seconds"],
        })
    return cell_rows


def _summary(
    params: WatermarkParams, by_type: ByType, null_rows: list[dict[str, Any]],
    embeddings: pd.DataFrame, breaks: pd.DataFrame, scheme_names: dict[int, str],
) -> dict[str, Any]:
    ver = params.verification
    sources = [r.result["embed_source"] for r in by_type["embed"] + by_type["attack"]]
    sources += [s for r in by_type["null"] for s in r.result["embed_sources"]]
    computed = sources.count("computed")
    embed_cells = len(by_type["embed"])
    attack_computed = sum(r.result["embed_source"] == "computed" for r in by_type["attack"])
    null_claims = [row["false_claim"] for row in null_rows]
    summary: dict[str, Any] = {
        "schemes": {},
        "false_claims": int(sum(null_claims)),
        "false_claim_rate": rate_with_ci(int(sum(null_claims)), len(null_claims)),
        "null_models": len(by_type["null"]),
        "null_test_acc": rate_with_ci(
            sum(int(r.result["test_correct"]) for r in by_type["null"]),
            sum(int(r.result["test_n"]) for r in by_type["null"]),
        ),
        "alpha": ver.alpha,
        "embed_cells": embed_cells,
        "attack_cells": len(by_type["attack"]),
        "embeddings_computed": computed,
        "embed_reuse": computed <= embed_cells and attack_computed == 0,
        "break_points": {
            name: {
                row["attack"]: row["break_strength"]
                for row in breaks.to_dict("records")
                if row["scheme"] == name
            }
            for name in dict.fromkeys(scheme_names.values())
        },
    }
    for name in dict.fromkeys(scheme_names.values()):
        rows = embeddings[embeddings["scheme"] == name] if len(embeddings) else embeddings
        if len(rows):
            summary["schemes"][name] = {
                "clean_acc_drop": mean_with_ci(rows["clean_acc_drop"].tolist()),
                "trigger_acc": rate_with_ci(int(rows["matches"].sum()), int(rows["n"].sum())),
                "p_value_max": float(rows["p_value"].max()),
                "verified": rate_with_ci(int(rows["verified"].sum()), len(rows)),
                "psnr": mean_with_ci([v for v in rows["psnr"].tolist() if v is not None]),
                "ssim": mean_with_ci([v for v in rows["ssim"].tolist() if v is not None]),
            }
    return summary


def _matches(ev: Evidence, rule: str | None) -> int:
    """Matches of the rule that decided the test (0 when no rule applies)."""
    return int(ev.matches(rule) or 0) if rule else 0


def _wm_acc(ev: Evidence, rule: str | None) -> float:
    """Watermark accuracy: the deciding rule's share of triggers answered as the key says."""
    return _matches(ev, rule) / ev.n if ev.n else float("nan")


def _robustness(
    cells: pd.DataFrame, params: WatermarkParams, labels: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (scheme, attack, strength): pooled rates over seeds with Wilson intervals on the
    pooled counts (trigger matches, test answers; inside [0, 1], and defined for one seed) and
    the pooled test-accuracy drop in points; per (scheme, attack): the
    break point — the weakest strength at which most seeds fail verification while the mean
    test-accuracy drop stays under the budget."""
    rows: list[dict[str, Any]] = []
    break_rows: list[dict[str, Any]] = []
    if cells.empty:
        return pd.DataFrame(rows), pd.DataFrame(break_rows)
    for (scheme, index), group in cells.groupby(["scheme", "attack_index"], sort=False):
        attack = params.attacks[int(index)]
        info = attack_info(attack)
        order = sweep(attack)
        broken_at = None
        per_seed: dict[int, float | None] = {}
        for strength in order:
            g = group[group["strength"] == strength]
            if g.empty:
                continue
            wm = rate_with_ci(int(g["matches"].sum()), int(g["n"].sum()))
            test = rate_with_ci(int(g["test_correct"].sum()), int(g["test_n"].sum()))
            drop = 100 * int((g["wm_test_correct"] - g["test_correct"]).sum()) / int(
                g["test_n"].sum()
            )
            verified = rate_with_ci(int(g["verified"].sum()), len(g))
            within = drop < params.budget_points
            breaks = verified["rate"] < 0.5 and within
            if breaks and broken_at is None:
                broken_at = strength
            for row in g.itertuples():
                seed = int(row.seed)
                if seed not in per_seed:
                    per_seed[seed] = None
                if (
                    per_seed[seed] is None
                    and not row.verified
                    and row.test_acc_drop < params.budget_points
                ):
                    per_seed[seed] = strength
            rows.append({
                "scheme": scheme, "attack": labels[int(index)], "strength": strength,
                "knob": info.knob, "wm_acc": wm["rate"], "wm_acc_ci_low": wm["ci_low"],
                "wm_acc_ci_high": wm["ci_high"], "test_acc": test["rate"],
                "test_acc_ci_low": test["ci_low"], "test_acc_ci_high": test["ci_high"],
                "test_acc_drop": drop, "verified_rate": verified["rate"],
                "verified_ci_low": verified["ci_low"], "verified_ci_high": verified["ci_high"],
                "p_value_median": float(np.median(g["p_value"])),
                "p_value_max": float(g["p_value"].max()), "seeds": len(g), "breaks": breaks,
            })
        break_rows.append({
            "scheme": scheme, "attack": labels[int(index)], "knob": info.knob,
            "stronger": info.stronger, "break_strength": broken_at, "broken": broken_at is not None,
            "budget_points": params.budget_points,
            "seed_break_strengths": [per_seed[s] for s in sorted(per_seed)],
            "strengths": list(order),
        })
    return pd.DataFrame(rows), pd.DataFrame(break_rows)


def _sensitivity_table(records: list[TrialRecord]) -> pd.DataFrame:
    """Per frequency: damage (mean KL) and accuracy drop with CIs over seeds, cluster rank."""
    if not records:
        return pd.DataFrame()
    maps = [
        SensitivityMap.from_dict(
            {
                k: r.result[k]
                for k in (
                    "height",
                    "width",
                    "frequencies",
                    "damage",
                    "accuracy_drop",
                    "rank",
                    "centroids",
                )
            }
        )
        for r in records
    ]
    first = maps[0]
    rows = []
    for j, (u, v) in enumerate(first.frequencies):
        damage = mean_with_ci([m.damage[j] for m in maps])
        drop = mean_with_ci([m.accuracy_drop[j] for m in maps])
        ranks = Counter(m.rank[j] for m in maps)
        rows.append({
            "u": u, "v": v, "radial": float(radial_fraction(u, v, first.height, first.width)),
            "damage": damage["mean"], "damage_ci_low": damage["ci_low"],
            "damage_ci_high": damage["ci_high"], "accuracy_drop": drop["mean"],
            "accuracy_drop_ci_low": drop["ci_low"], "accuracy_drop_ci_high": drop["ci_high"],
            "cluster_rank": ranks.most_common(1)[0][0], "height": first.height,
            "width": first.width, "seeds": len(maps),
        })
    return pd.DataFrame(rows)

