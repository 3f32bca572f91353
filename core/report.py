"""Campaign reports: named tables (every rate with its CI), a summary and provenance.

A report travels as JSON over gRPC and becomes DataFrames, CSV, Parquet, JSON, HTML and PNG
plots on the client.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns that name a stratum (what a row is about), in the order they are shown.
KEY_COLUMNS = (
    "workload", "model", "dataset", "dtype", "layer", "target", "bit", "degree", "mitigation",
    "transform", "recipe", "variant", "family", "method", "granularity", "schedule", "level",
    "scheme", "attack", "knob", "strength", "sampler", "shift", "arm", "iteration", "budget",
)

#: Metric columns shown right after the keys, most important first.
LEAD_METRICS = (
    "trials", "critical_sdc_rate", "sdc_rate", "due_rate", "failure_rate", "masked_rate",
    "accuracy", "achieved_sparsity", "wm_acc", "test_acc", "rmse", "coverage",
)

_WORDS = {
    "sdc": "SDC", "due": "DUE", "ci": "CI", "wm": "watermark", "acc": "accuracy",
    "rmse": "RMSE", "daic": "DAIC", "fp32": "fp32", "kl": "KL",
}


def ordered(df: pd.DataFrame) -> pd.DataFrame:
    """The same table with its key columns first, then the lead metrics, then the rest."""
    keys = [c for c in KEY_COLUMNS if c in df.columns]
    lead = [c for c in LEAD_METRICS if c in df.columns]
    rest = [c for c in df.columns if c not in keys and c not in lead]
    return df[keys + lead + rest]


def readable_name(column: str) -> str:
    """``critical_sdc_ci_low`` → ``critical SDC CI low``."""
    words = [_WORDS.get(w, w) for w in column.replace(".", "_").split("_") if w]
    return " ".join(words)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _clean(value.item())
    return value


@dataclass
class Report:
    """An engine's aggregate output."""

    kind: str
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    primary: str = ""
    """Name of the table shown by default (``faultlab results``)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """spec hash, code version, seed, engine version, model and dataset digests."""

    def table(self, name: str | None = None, *, readable: bool = True) -> pd.DataFrame:
        """A table for reading: its key columns (layer, bit, method, ...) first, then its
        headline metrics, with readable column names (``critical_sdc_ci_low`` →
        ``critical SDC CI low``). Code that indexes columns by their stored names asks for
        ``readable=False`` (same order, stored names) or reads ``report.tables[name]``."""
        name = name or self.primary
        if name not in self.tables:
            from faultlab.errors import SpecError

            raise SpecError("table", f"no table {name!r} in this report", sorted(self.tables))
        table = ordered(self.tables[name])
        return table.rename(columns=readable_name) if readable else table

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": _clean(self.summary),
            "primary": self.primary,
            "provenance": _clean(self.provenance),
            "tables": {
                name: _clean(df.to_dict(orient="records")) for name, df in self.tables.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            kind=data["kind"],
            summary=data.get("summary", {}),
            primary=data.get("primary", ""),
            provenance=data.get("provenance", {}),
            tables={name: pd.DataFrame(rows) for name, rows in data.get("tables", {}).items()},
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    def to_html(self) -> str:
        """One self-contained HTML page: headline, plots (embedded PNG), definitions,
        provenance and ranked tables (:mod:`faultlab.client.report_html`)."""
        from faultlab.client.report_html import render_report

        return render_report(self)

    def save_plots(self, directory: str | Path) -> list[Path]:
        """Writes the kind's PNG plots into ``directory``.

        The plotting function is the kind's ``plots`` entry in :mod:`faultlab.kinds`.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        from faultlab.kinds import plots_function

        paths = []
        for name, fig in plots_function(self.kind)(self).items():
            path = out / f"{name}.png"
            fig.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
        return paths
