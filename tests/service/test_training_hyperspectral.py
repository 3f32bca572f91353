"""The hyperspectral workload through the real service (gRPC + Ray + a store), at a reduced
size: CNN, GAN and GAN + CRF cells finish with OA / AA / κ, paired gains with intervals and
classification maps, and a trained discriminator feeds a fault campaign by reference whose
layers are the spectral and spatial convolutions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from faultlab import CampaignState, Client

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCENE = {"height": 16, "width": 16, "bands": 40, "classes": 3}


def _reduced() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(
        (EXAMPLES / "training-hyperspectral-quick.yaml").read_text())
    section = spec["training"]["hyperspectral"]
    section.update({"scene": SCENE, "components": 8, "labels_per_class": [3], "epochs": 15,
                    "batch": 8})
    spec["execution"] = {"shard_seconds": 0.05}
    return spec


def test_hyperspectral_example_and_a_fault_campaign_on_its_gan(  # type: ignore[no-untyped-def]
    server_factory, sqlite_url
) -> None:
    server = server_factory(sqlite_url)
    with Client(server.address, timeout=60) as client:
        job = client.submit(_reduced())
        assert job.wait(timeout=120).state is CampaignState.SUCCEEDED
        report = job.report()
        assert report.summary["workload"] == "hyperspectral" and report.summary["errors"] == 0
        for name in ("hsi_gan_gain", "hsi_crf_gain", "hsi_gan_crf_gain"):
            figure = report.summary[name]
            low, high = figure["ci"]
            assert figure["pairs"] == 2 and low <= figure["estimate"] <= high
        summary = report.tables["summary"]
        assert set(summary["model"]) == {"cnn", "gan", "gan_crf"}
        assert ((summary["oa"] >= 0) & (summary["oa"] <= 1)).all()
        assert set(report.tables["maps"].columns) >= {"truth", "cnn", "gan", "gan_crf"}
        fault = client.submit({
            "kind": "faults", "name": "faults-on-hsi-gan", "seed": 3,
            "model": {"from_campaign": job.id, "cell": {"variant": "gan", "seed": 0}},
            "dataset": {"name": "hsi_patches", "options": {
                "scene": SCENE, "scene_seed": 1, "components": 8, "max_pixels": 64}},
            "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                       "trials": 8, "layers": ["spectral_conv1", "spatial_conv2"]},
        })
        assert fault.wait(timeout=120).state is CampaignState.SUCCEEDED
        model = fault.status().spec["model"]
        assert model["name"] == "training:hsi" and model["options"]["discriminator"] is True
        per_layer = fault.report().tables["per_layer"]
        hit = {str(name).split(".")[0] for name in per_layer["layer"]}
        assert hit and hit <= {"spectral_conv1", "spatial_conv2"}
