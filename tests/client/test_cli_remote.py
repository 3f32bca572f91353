"""CLI commands against a served coordinator: `validate --deep --address`, `list`, `compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from faultlab.client.cli import main
from tests.service.specs import fault_spec


@pytest.fixture
def address(server_factory: Any, sqlite_url: str) -> str:
    return str(server_factory(sqlite_url).address)


def test_validate_deep_on_the_coordinator(address: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(fault_spec(trials=12, size=16)))
    assert main(["validate", str(good), "--deep", "--address", address]) == 0
    assert capsys.readouterr().out.startswith(f"ok on {address}: faults campaign")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(fault_spec(trials=12, size=16, layers=["conv1", "conv3"])))
    assert main(["--address", address, "validate", "--deep", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown layer 'conv3'" in err and "did you mean 'conv" in err
    assert main(["--address", address, "--json", "list"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # validating stored nothing


def test_list_and_compare(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    from faultlab.client import Client

    client = Client(address)
    first = client.submit(fault_spec(trials=24, size=16, name="dense"))
    second = client.submit(fault_spec(trials=24, size=16, name="again"))
    first.wait()
    second.wait()
    assert main(["list", "--address", address]) == 0
    out = capsys.readouterr().out
    assert first.id in out and "SUCCEEDED" in out
    assert main(["compare", first.id, second.id, "--address", address, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["labels"][0] != data["labels"][1]
    assert main(["compare", first.id, second.id, "--address", address]) == 0
    assert "each campaign minus" in capsys.readouterr().out
