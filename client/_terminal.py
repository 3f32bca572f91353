"""Terminal tables that fit: rates merged with their CIs, the most important columns kept.

A table wider than the terminal keeps its identifying columns (layer, bit, name, ...) and its
rate columns, drops the rest (naming them under the table) and wraps long cells instead of
cutting them to ``conv…``; ``wide=True`` (the CLI's ``--wide``) shows every column.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 250
"""Width of a console that is not a terminal (a pipe, a file), unless ``COLUMNS`` says."""


def console(stderr: bool = False) -> Console:
    """A console as wide as the terminal (``COLUMNS`` wins; a pipe gets :data:`PIPE_WIDTH`)."""
    stream = sys.stderr if stderr else sys.stdout
    if os.environ.get("COLUMNS", "").isdigit():
        return Console(width=int(os.environ["COLUMNS"]), stderr=stderr)
    return Console(stderr=stderr) if stream.isatty() else Console(width=PIPE_WIDTH, stderr=stderr)


def compact(df: pd.DataFrame) -> pd.DataFrame:
    """Merges every ``X``/``X_ci_low``/``X_ci_high`` triple (and ``X_rate``/``X_ci_*``) into one
    ``X [CI]`` text column."""
    out = pd.DataFrame(index=df.index)
    used: set[str] = set()
    for col in df.columns:
        if col in used:
            continue
        stem = col[: -len("_rate")] if col.endswith("_rate") else col
        candidates = [f"{stem}_ci_low", f"{col}_ci_low"]
        if col in {"mean", "rate", "estimate", "value"}:
            candidates.append("ci_low")
        low = next((c for c in candidates if c in df.columns), None)
        high = low.replace("_low", "_high") if low else None
        if low and high and high in df.columns and df[col].dtype.kind == "f" and low not in used:
            out[f"{col} [CI]"] = [
                "-" if pd.isna(v) else f"{v:.3g} [{lo:.3g}, {hi:.3g}]"
                for v, lo, hi in zip(df[col], df[low], df[high], strict=True)
            ]
            used.update({col, low, high})
        elif not col.endswith(("_ci_low", "_ci_high")) and col not in {"ci_low", "ci_high"}:
            out[col] = df[col]
            used.add(col)
    return out


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _priority(df: pd.DataFrame, col: str) -> int:
    """0: identifying (text) columns, 1: rates with CIs, 2: counts and the rest."""
    if col.endswith("[CI]") or col.endswith("_rate"):
        return 1
    return 0 if df[col].dtype.kind == "O" else 2


def _widths(df: pd.DataFrame) -> dict[str, int]:
    return {c: max([len(str(c)), *(len(_cell(v)) for v in df[c])]) + 3 for c in df.columns}


def pick_columns(df: pd.DataFrame, width: int) -> list[str]:
    """The columns that fit in ``width``, most important first, in the table's own order."""
    widths = _widths(df)
    ranked = sorted(df.columns, key=lambda c: (_priority(df, c), list(df.columns).index(c)))
    keep: list[str] = []
    used = 1
    for col in ranked:
        need = min(widths[col], 40) if _priority(df, col) == 0 else widths[col]
        if keep and used + need > width:
            continue
        keep.append(col)
        used += need
    return [c for c in df.columns if c in keep]


def fit_table(df: pd.DataFrame, title: str = "", *, width: int = PIPE_WIDTH,
              wide: bool = False) -> Table:
    """A rich table of ``df`` (CIs merged) that fits ``width`` columns unless ``wide``."""
    df = compact(df)
    columns = list(df.columns) if wide else pick_columns(df, width)
    hidden = [c for c in df.columns if c not in columns]
    caption = (f"{len(hidden)} more columns: {', '.join(map(str, hidden))} (--wide shows them)"
               if hidden else None)
    table = Table(title=title or None, caption=caption, show_lines=False)
    widths = _widths(df)
    for col in columns:
        numeric = df[col].dtype.kind in "fi"
        table.add_column(str(col), justify="right" if numeric else "left", overflow="fold",
                         min_width=min(widths[col] - 3, 24) if not numeric else None)
    for row in df[columns].itertuples(index=False):
        table.add_row(*[_cell(v) for v in row])
    return table


def print_table(df: pd.DataFrame, title: str = "", *, wide: bool = False) -> None:
    out = console()
    out.print(fit_table(df, title, width=out.width, wide=wide))
