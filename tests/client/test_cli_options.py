"""The CLI's options and output: global options anywhere, help examples, zoo tables and JSON,
shell completion, tables that fit the terminal, the demo's headline."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from rich.console import Console

from faultlab.client._commands import headline
from faultlab.client._terminal import fit_table
from faultlab.client.cli import EXAMPLES, build_parser, main, quiet_ray
from faultlab.report import Report


@pytest.mark.parametrize("argv", [
    ["--address", "h:1", "--token", "t", "--json", "list"],
    ["list", "--address", "h:1", "--token", "t", "--json"],
    ["--address", "h:1", "list", "--token", "t", "--json"],
])
def test_global_options_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.address, args.token, args.json) == ("list", "h:1", "t", True)


def test_global_defaults_without_options() -> None:
    args = build_parser().parse_args(["list"])
    assert (args.address, args.token, args.json, args.wide, args.verbose) == (
        None, None, False, False, False)


def test_every_subcommand_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    sub = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert set(sub.choices) == set(EXAMPLES)  # type: ignore[attr-defined]
    for name in sub.choices:  # type: ignore[attr-defined]
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert f"example:\n  {EXAMPLES[name]}" in out, name


def test_zoo_tables_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "models" in out and "digits_cnn" in out and "┃ name" in out
    assert "\\u" not in out
    assert main(["--json", "zoo"]) == 0
    text = capsys.readouterr().out
    listing = json.loads(text)
    assert {"models", "datasets", "transforms"} <= set(listing)
    assert "\\u010d" not in text and "Veličković" in text


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "complete -F _faultlab faultlab" in script
    assert "submit) opts=" in script and "--wait" in script and "--dashboard-port" in script
    assert ("bashcompinit" in script) == (shell == "zsh")


def test_missing_address_is_one_line(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAULTLAB_ADDRESS", raising=False)
    assert main(["list"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no coordinator address") and "\n" not in err


def _render(table: object, width: int) -> str:
    console = Console(width=width, record=True)
    console.print(table)
    return console.export_text()


def test_tables_fit_the_terminal_and_keep_the_layer_column() -> None:
    layers = ["features.0.conv_block.depthwise", "classifier.fc_final"]
    df = pd.DataFrame({
        "layer": layers, "bit": ["31", "30"],
        **{f"metric_{i}": [0.25, 0.5] for i in range(20)},
        "sdc_rate": [0.1, 0.2], "sdc_ci_low": [0.05, 0.1], "sdc_ci_high": [0.2, 0.3],
    })
    text = _render(fit_table(df, "t", width=100), 100)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert all(layer in text.replace("\n", "").replace("│", "").replace(" ", "")
               or layer in text for layer in layers)
    assert "…" not in text
    assert "sdc_rate [CI]" in text  # the rate with its interval is kept
    assert "--wide shows them" in text
    wide = _render(fit_table(df, "t", width=100, wide=True), 400)
    assert "metric_19" in wide and "--wide" not in wide


def test_headline_in_plain_words() -> None:
    report = Report(kind="faults", summary={
        "sdc_rate": 0.123, "sdc_ci_low": 0.1, "sdc_ci_high": 0.15, "trials": 400,
        "fault_model": "bitflip", "target": "weight", "dtypes": ["fp32"],
        "workloads": ["digits_cnn@digits"], "confidence": 0.95,
    }, tables={"per_layer": pd.DataFrame([{"layer": "conv1"}])}, primary="per_layer")
    lines = headline(report).splitlines()
    assert lines[0].startswith("faultlab report: bitflip faults in weight (fp32) of digits_cnn")
    assert any(line.strip().startswith("SDC: 12") and "of faults" in line for line in lines)


def test_ray_chatter_is_silenced_unless_verbose() -> None:
    import ray

    quiet_ray()
    record = logging.LogRecord("ray._private.worker", logging.WARNING, "", 0, "chatter", (), None)
    handlers = logging.getLogger(ray.__name__).handlers
    assert handlers and all(not h.filter(record) for h in handlers)
    record.levelno = logging.ERROR
    assert all(h.filter(record) for h in handlers)
