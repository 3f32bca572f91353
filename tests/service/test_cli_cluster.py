"""The cluster workflow through the CLI: `faultlab serve` in its own process, Redis store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.service.cluster import ServeProcess, cli
from tests.service.specs import fault_spec


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    import uuid

    from tests.redis_server import ensure_redis

    base = ensure_redis()
    prefix = f"fltest-cli-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    proc = ServeProcess(f"{base}?prefix={prefix}", log=log)
    yield proc
    proc.stop()


def test_cli_workflow(serve: ServeProcess, tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(fault_spec(trials=30, seed=4)))

    out = cli("submit", str(spec_file), "--address", serve.address)
    campaign_id = out.stdout.strip().splitlines()[-1]
    assert len(campaign_id) == 16

    watched = cli("watch", campaign_id, address=serve.address)  # FAULTLAB_ADDRESS from env
    assert "SUCCEEDED" in watched.stdout.splitlines()[-1]

    status = cli("status", campaign_id, address=serve.address).stdout
    assert "SUCCEEDED" in status and "30/30" in status
    as_json = json.loads(cli("status", campaign_id, "--json", address=serve.address).stdout)
    assert as_json["state"] == "SUCCEEDED" and as_json["progress"] == 1.0

    assert campaign_id in cli("list", address=serve.address).stdout

    table = cli("results", campaign_id, "--format", "table", address=serve.address).stdout
    assert "ci" in table.lower()
    csv_file = tmp_path / "r.csv"
    cli("results", campaign_id, "--format", "csv", "-o", str(csv_file), address=serve.address)
    parquet = tmp_path / "r.parquet"
    cli("results", campaign_id, "--format", "parquet", "-o", str(parquet), address=serve.address)
    from_parquet, from_csv = pd.read_parquet(parquet), pd.read_csv(csv_file)
    assert from_parquet.equals(from_csv) or len(from_parquet) == len(from_csv)
    trials = json.loads(cli("results", campaign_id, "--table", "trials", "--format", "json",
                            address=serve.address).stdout)
    assert len(trials) == 30

    events = [json.loads(line) for line in
              cli("events", campaign_id, address=serve.address).stdout.splitlines()]
    states = [e["state"] for e in events if e["type"] == "state"]
    assert states == ["QUEUED", "RUNNING", "SUCCEEDED"]

    replay = cli("replay", campaign_id, trials[0]["key"], address=serve.address)
    assert json.loads(replay.stdout)["identical"] is True

    # Cancelling a finished campaign leaves its terminal state alone.
    assert "SUCCEEDED" in cli("cancel", campaign_id, address=serve.address).stdout


def test_cli_cancel(serve: ServeProcess, tmp_path: Path) -> None:
    spec_file = tmp_path / "big.yaml"
    spec_file.write_text(yaml.safe_dump(fault_spec(trials=5000, seed=8, size=200)))
    submitted = cli("submit", str(spec_file), address=serve.address)
    campaign_id = submitted.stdout.strip().splitlines()[-1]
    out = cli("cancel", campaign_id, address=serve.address).stdout
    assert "CANCELLED" in out
    assert "CANCELLED" in cli("status", campaign_id, address=serve.address).stdout


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["status", "nope"], 3, "not found"),
        (["submit", "/no/such/spec.yaml"], 2, "spec"),
        (["results", "nope", "--format", "json"], 3, "not found"),
    ],
)
def test_cli_errors_are_one_line(
    serve: ServeProcess, args: list[str], code: int, needle: str
) -> None:
    proc = cli(*args, address=serve.address, check=False)
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0].lower()


def test_cli_without_address_says_how() -> None:
    proc = cli("list", check=False)
    assert proc.returncode != 0 and "FAULTLAB_ADDRESS" in proc.stderr
