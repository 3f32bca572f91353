"""How report tables read: key columns first, readable names, ranked rows and numbers
printed to the precision their confidence interval supports.

Generic over every kind: tables are handled by their column names, so a column an engine adds
or drops changes nothing here.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

#: Metric used to rank a table's rows (most vulnerable / most damaging first).
RANK_BY = ("critical_sdc_rate", "failure_rate", "sdc_rate", "accuracy_drop", "rmse", "damage")

def rank_column(df: pd.DataFrame) -> str | None:
    """The column a table is ranked by, if it has one."""
    return next((c for c in RANK_BY if c in df.columns and df[c].notna().any()), None)


def ranked(df: pd.DataFrame) -> pd.DataFrame:
    """Rows ranked by the table's headline metric, highest first (ties keep their order)."""
    column = rank_column(df)
    if column is None:
        return df
    return df.sort_values(column, ascending=False, kind="stable", na_position="last")


def ci_columns(columns: list[str], metric: str) -> tuple[str, str] | None:
    """The (low, high) CI columns of ``metric`` (``sdc_rate`` → ``sdc_ci_low``)."""
    stem = metric[: -len("_rate")] if metric.endswith("_rate") else metric
    for low, high in ((f"{stem}_ci_low", f"{stem}_ci_high"),
                      (f"{metric}_ci_low", f"{metric}_ci_high")):
        if low in columns and high in columns:
            return low, high
    return None


def digits_for(low: float, high: float) -> int:
    """Decimals that resolve a CI of this width to about two significant figures."""
    width = abs(high - low)
    if not math.isfinite(width) or width == 0:
        return 4
    return max(0, min(8, 1 - math.floor(math.log10(width))))


def fmt(value: Any, decimals: int | None = None) -> str:
    """A cell as text: integers plain, floats to ``decimals`` or 4 significant figures."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15 and decimals is None:
        return f"{int(value):,}"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:.4g}"


def formatted(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text. A metric with a CI becomes one ``value (low–high)`` column, all
    three printed to the digits the CI width decides; the CI columns are dropped."""
    columns = list(df.columns)
    pairs = {m: p for m in columns if (p := ci_columns(columns, m)) is not None and m not in p}
    dropped = {c for pair in pairs.values() for c in pair}
    out = pd.DataFrame(index=df.index)
    for col in columns:
        if col in dropped:
            continue
        if col in pairs:
            low, high = pairs[col]
            out[f"{col} (CI)"] = [_with_ci(v, lo, hi)
                                  for v, lo, hi in zip(df[col], df[low], df[high], strict=True)]
        else:
            out[col] = [fmt(_plain(v)) for v in df[col]]
    return out


def _with_ci(value: Any, low: Any, high: Any) -> str:
    lo, hi = _num(low), _num(high)
    if math.isnan(lo) or math.isnan(hi):
        return fmt(_plain(value))
    if lo == hi:
        return fmt(_plain(value))
    decimals = digits_for(lo, hi)
    return f"{fmt(_num(value), decimals)} ({fmt(lo, decimals)}–{fmt(hi, decimals)})"


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def rate_words(rate: float | None, low: float | None, high: float | None) -> str:
    """``4.6 % (95 % CI 3.0–6.2 %)`` — a rate and its CI in percent, digits set by the CI."""
    if rate is None or low is None or high is None:
        return "not measured"
    decimals = max(0, digits_for(100 * low, 100 * high))
    return (f"{100 * rate:.{decimals}f} % "
            f"(CI {100 * low:.{decimals}f}–{100 * high:.{decimals}f} %)")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
