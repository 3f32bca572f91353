"""The image workload through the real service (gRPC + Ray + a store): the quick MoEx and
frequency examples run end to end with paired comparisons and the channel map, and a
MoEx-trained CNN feeds a fault campaign by reference (``model: {from_campaign, cell}``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from faultlab import CampaignState, Client

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _quick(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    spec["execution"] = {"shard_seconds": 0.05}
    return spec


def test_moex_example_and_a_fault_campaign_on_its_cell(  # type: ignore[no-untyped-def]
    server_factory, sqlite_url
) -> None:
    server = server_factory(sqlite_url)
    with Client(server.address, timeout=60) as client:
        job = client.submit(_quick("training-moex-quick.yaml"))
        assert job.wait(timeout=120).state is CampaignState.SUCCEEDED
        report = job.report()
        assert report.summary["workload"] == "image" and report.summary["errors"] == 0
        for name in ("recipe:moex-baseline", "recipe:mixup-baseline"):
            figure = report.summary[name]
            assert figure["pairs"] == 2 and figure["ci"][0] <= figure["estimate"]
        assert set(report.tables["summary"]["recipe"]) == {"baseline", "moex", "mixup"}
        fault = client.submit({
            "kind": "faults", "name": "faults-on-moex", "seed": 3,
            "model": {"from_campaign": job.id,
                      "cell": {"recipe": "moex", "seed": 0}},
            "dataset": {"name": "shapes32", "options": {"num_per_class": 8}},
            "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                       "trials": 8},
        })
        assert fault.wait(timeout=120).state is CampaignState.SUCCEEDED
        model = fault.status().spec["model"]
        assert model["name"] == "training:image" and model["file"].startswith("sha256:")
        assert model["options"]["model"] == "resnet_small" and fault.report().summary


def test_frequency_example_reports_the_channel_map(  # type: ignore[no-untyped-def]
    server_factory, sqlite_url
) -> None:
    server = server_factory(sqlite_url)
    with Client(server.address, timeout=60) as client:
        job = client.submit(_quick("training-frequency-quick.yaml"))
        assert job.wait(timeout=120).state is CampaignState.SUCCEEDED
        report = job.report()
    cells = report.tables["cells"]
    assert set(cells["status"]) == {"completed"}
    ratios = dict(zip(cells["variant"], cells["input_ratio"], strict=False))
    assert ratios["resnet_small-freq48"] == ratios["resnet_small-down16"] == 0.25
    channels = report.tables["channels"]
    assert len(channels) == 192 and (channels["cells"] == 2).all()
    assert abs(channels["selected_share"].sum() - 48) < 1e-9  # 48 channels kept per cell
    assert "variant:resnet_small-freq48-resnet_small-down16" in report.summary
    assert 0.0 <= report.summary["frequency:resnet_small-freq48:y_share"] <= 1.0
