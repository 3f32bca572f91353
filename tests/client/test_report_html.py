"""The HTML report: parsed (html5lib) for its headline, definitions, embedded plots, provenance
and ranked tables; rendered in headless Chromium to check nothing overflows at 1280 px."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from typing import Any

import html5lib
import numpy as np
import pandas as pd
import pytest

from faultlab.client._report_format import digits_for, formatted, rate_words
from faultlab.kinds import plots_function
from faultlab.report import Report
from faultlab.spec import parse_spec
from faultlab.workers.local import run_local
from tests.marks import CHROMIUM, needs_chromium

NS = "{http://www.w3.org/1999/xhtml}"


@pytest.fixture(scope="module")
def report() -> Report:
    spec = parse_spec({
        "kind": "faults", "seed": 5, "model": {"name": "digits_cnn"},
        "dataset": {"name": "digits", "size": 120},
        "faults": {"sampling": "stratified", "stratify": ["layer"], "margin": 0.25,
                   "mitigations": [{"name": "ranger"}]},
    })
    report, _ = run_local(spec)
    return report


@pytest.fixture(scope="module")
def page(report: Report) -> Any:
    return html5lib.parse(report.to_html())


def _text(node: Any) -> str:
    return "".join(node.itertext()).strip()


def _by_id(root: Any, ident: str) -> Any:
    node = root.find(f".//*[@id='{ident}']")
    assert node is not None, f"no element #{ident}"
    return node


def test_headline_says_what_was_evaluated_and_the_rates_with_cis(page: Any) -> None:
    headline = _by_id(page, "headline")
    title = _text(headline.find(f".//{NS}h1"))
    assert "bitflip faults in weight (fp32) of digits_cnn@digits" in title
    lines = [_text(li) for li in headline.iter(f"{NS}li")]
    critical = next(line for line in lines if line.startswith("critical SDC:"))
    assert re.search(r"\d+(\.\d+)? % \(CI \d+(\.\d+)?–\d+(\.\d+)? %\) of faults", critical)
    assert any(line.startswith("DUE:") for line in lines)
    assert any("sampled fraction" in line for line in lines)


def test_every_metric_is_defined(page: Any) -> None:
    terms = {_text(dt) for dt in _by_id(page, "definitions").iter(f"{NS}dt")}
    assert {"SDC", "critical SDC", "DUE", "masked", "population", "sampled fraction",
            "CI"} <= terms


def test_each_plot_is_an_embedded_png(report: Report, page: Any) -> None:
    names = list(plots_function("faults")(report))
    assert {"per_layer", "mitigation"} <= set(names) and any(n.startswith("heatmap") for n in names)
    for name in names:
        figure = _by_id(page, "plot-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower())
        src = figure.find(f".//{NS}img").get("src")
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    sources = [img.get("src") for img in page.iter(f"{NS}img")]
    assert all(s.startswith("data:") for s in sources)  # self-contained: nothing fetched
    assert page.find(f".//{NS}link") is None and page.find(f".//{NS}script") is None


def test_provenance_is_a_small_table(report: Report, page: Any) -> None:
    rows = {_text(tr.find(f"{NS}th")): tr.find(f"{NS}td")
            for tr in _by_id(page, "provenance").iter(f"{NS}tr")}
    assert {"spec hash", "code version", "seed", "model digest"} <= set(rows)
    assert rows["spec hash"].get("title") == report.provenance["spec_hash"]


def test_tables_rank_the_most_vulnerable_layers_first(report: Report, page: Any) -> None:
    table = _by_id(page, "table-per-layer")
    headers = [_text(th) for th in table.iter(f"{NS}th")]
    assert headers[:4] == ["workload", "dtype", "layer", "mitigation"]
    column = headers.index("critical SDC rate (CI)")
    cells = [[_text(td) for td in tr.iter(f"{NS}td")] for tr in table.iter(f"{NS}tr")][1:]
    rates = [float(row[column].split(" ")[0]) for row in cells]
    assert rates == sorted(rates, reverse=True) and len(rates) == len(report.tables["per_layer"])
    # Long per-bit tables come after the primary table, folded.
    sections = [node.get("id") for node in page.iter() if (node.get("id") or "").startswith(
        "section-")]
    assert sections[0] == "section-per-layer"
    assert sections.index("section-per-bit") > sections.index("section-mitigation")


def test_numbers_are_printed_to_the_precision_of_their_ci() -> None:
    # two significant figures of the CI width
    assert digits_for(0.30, 0.62) == 2 and digits_for(0.001, 0.094) == 3
    assert digits_for(0.4999, 0.5001) == 5 and digits_for(10.0, 30.0) == 0
    df = pd.DataFrame({"layer": ["a"], "sdc_rate": [0.4576233403214535], "sdc_ci_low": [0.3043],
                       "sdc_ci_high": [0.6193], "trials": [98.0]})
    assert formatted(df).iloc[0].to_dict() == {"layer": "a", "sdc_rate (CI)": "0.46 (0.30–0.62)",
                                               "trials": "98"}
    assert rate_words(0.0101, 0.001, 0.094) == "1.0 % (CI 0.1–9.4 %)"


def test_table_puts_key_columns_first_and_reads_well(report: Report) -> None:
    table = report.table(readable=False)
    assert list(table.columns[:5]) == ["workload", "dtype", "layer", "mitigation", "trials"]
    assert table.columns[5] == "critical_sdc_rate"
    readable = report.table()  # what a user sees by default: readable names, same order
    assert {"critical SDC rate", "critical SDC CI low", "DUE rate"} <= set(readable.columns)
    assert list(readable.columns[:3]) == ["workload", "dtype", "layer"]
    assert readable.shape == table.shape and readable.equals(table.set_axis(readable.columns,
                                                                              axis=1))


def _wide(report: Report) -> Report:
    """The real report plus a table far wider than the page (it must scroll in its box)."""
    wide = pd.DataFrame(np.random.default_rng(0).random((3, 40)),
                        columns=[f"a_rather_long_metric_name_{i}" for i in range(40)])
    return Report(report.kind, report.summary, {**report.tables, "wide": wide}, report.primary,
                  report.provenance)


@needs_chromium
def test_no_horizontal_overflow_at_1280_px(report: Report, tmp_path: Path) -> None:
    probe = ("<script>addEventListener('load', () => document.body.setAttribute('data-width',"
             " document.documentElement.scrollWidth + 'x' + window.innerWidth));</script>")
    path = tmp_path / "report.html"
    path.write_text(_wide(report).to_html().replace("</body>", probe + "</body>"))
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=2000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    match = re.search(r'data-width="(\d+)x(\d+)"', out)
    assert match, out[-2000:]
    scroll, inner = int(match.group(1)), int(match.group(2))
    assert inner == 1280 and scroll <= inner, (scroll, inner)
