"""Bring your own model and data to a served coordinator: real gRPC, Ray and a store.

The client runs from a temporary directory the server cannot import from; files go up as
artifacts, and the coordinator runs no code and opens no path that a spec names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from faultlab import CampaignState, Client, PermissionDeniedError, SpecError
from faultlab.spec import DatasetSpec, ModelSpec
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.workers.zoo import GraphData, ImageData, load_dataset, trained_model
from tests.service.specs import fault_spec


@pytest.fixture
def client(server_factory, store_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    server = server_factory(store_url)
    with Client(server.address, timeout=60) as c:
        yield c


def _by_site(client: Client, campaign_id: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Each trial's outcome, by the fault sites it hit (module.tensor, index, bits)."""
    results = client.get(campaign_id).results()
    out = {}
    for row in results.records:
        sites = tuple((f["site"], f["index"], tuple(f["bits"])) for f in row["trial"]["faults"])
        result = row["result"]
        out[sites] = {k: result[k] for k in ("outcome", "accuracy", "sdc_inputs")}
    return out


def test_exported_cnn_matches_eager_trial_by_trial(client: Client) -> None:
    data = load_dataset(DatasetSpec(name="digits"))
    assert isinstance(data, ImageData)
    module, _ = trained_model(ModelSpec(name="digits_cnn"), data)
    eager = client.submit(fault_spec(trials=36))
    spec = fault_spec(trials=36)
    spec["model"] = {"label": "digits_cnn"}  # the same workload name, so the same plan
    exported = client.submit(spec, model=module, example_inputs=data.x_test[:4])
    for job in (eager, exported):
        status = job.wait(timeout=600)
        assert status.state is CampaignState.SUCCEEDED, status.error
    assert exported.status().trials_cached == 0  # another model digest: nothing reused
    a, b = _by_site(client, eager.id), _by_site(client, exported.id)
    assert len(a) == 36 and a == b
    digests = {job.report().provenance["model_digest"] for job in (eager, exported)}
    assert len(digests) == 2


def _gcn_spec(weights: str, graph: str) -> dict[str, Any]:
    return {
        "kind": "faults", "seed": 5,
        "model": {"name": "pyg:GCN", "file": weights,
                  "options": {"hidden_channels": 16, "num_layers": 2}},
        "dataset": {"name": "tensors", "file": graph, "split": "test"},
        "execution": {"shard_seconds": 0.5},
        "faults": {"fault_model": "bitflip", "target": "weight", "bits": [23, 30],
                   "sampling": "uniform", "trials": 16},
    }


def _write_gcn(tmp: Path, scale: float) -> tuple[str, str]:
    from safetensors.torch import save_file
    from torch_geometric.nn.models import GCN

    karate = load_dataset(DatasetSpec(name="karate"))
    assert isinstance(karate, GraphData)
    graph = karate.data
    save_file({"x": graph.x, "edge_index": graph.edge_index, "y": graph.y,
               "train_mask": graph.train_mask, "test_mask": graph.test_mask},
              str(tmp / "karate.safetensors"))
    torch.manual_seed(0)
    gcn = GCN(graph.num_node_features, 16, 2, out_channels=int(graph.y.max()) + 1)
    state = {k: (v * scale).contiguous() for k, v in gcn.state_dict().items()}
    save_file(state, str(tmp / "gcn.safetensors"))
    return "gcn.safetensors", "karate.safetensors"


def test_own_gcn_and_graph_edited_weights_recompute(client: Client, tmp_path: Path) -> None:
    weights, graph = _write_gcn(tmp_path, 1.0)
    first = client.submit(_gcn_spec(weights, graph)).wait(timeout=600)
    assert first.state is CampaignState.SUCCEEDED, first.error
    again = client.submit(_gcn_spec(weights, graph)).wait(timeout=600)
    assert again.trials_cached == again.trials_total  # same content: served from the cache
    _write_gcn(tmp_path, 2.0)  # the weights file edited in place
    edited = client.submit(_gcn_spec(weights, graph))
    status = edited.wait(timeout=600)
    assert status.state is CampaignState.SUCCEEDED, status.error
    assert status.trials_cached == 0 and status.trials_done == status.trials_total
    old = client.get(first.id).report().provenance["model_digest"]
    assert edited.report().provenance["model_digest"] != old
    assert "gcn" in str(edited.report().to_dict())


def test_factory_refused_without_side_effect(client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for section in ("model", "dataset"):
        spec = fault_spec(trials=4)
        spec[section] = {"name": "custom", "factory": "subprocess:getoutput",
                         "options": {"cmd": f"touch {marker}"}, "weights": "random"}
        if section == "dataset":
            del spec[section]["weights"]
        with pytest.raises(PermissionDeniedError, match="--allow-factory"):
            client.submit(spec)
    assert not marker.exists()


@pytest.mark.parametrize(("section", "value", "field"), [
    ("model", {"name": "pyg:GCN", "file": "/etc/passwd"}, "model.file"),
    ("dataset", {"name": "planetoid", "options": {"root": "/etc"}}, "dataset.options.root"),
])
def test_server_path_in_spec_is_invalid_argument(
    client: Client, section: str, value: dict[str, Any], field: str
) -> None:
    spec = fault_spec(trials=4)
    spec[section] = value
    request = pb.SubmitCampaignRequest(spec=json.dumps(spec), request_id=f"probe-{section}")
    with pytest.raises(SpecError) as err:  # the raw RPC: no SDK upload on the way
        client._call(client._stub.SubmitCampaign, request)
    assert err.value.field == field


def test_validation_never_trains(client: Client) -> None:
    import time

    spec = fault_spec(trials=4, name="finetune-500")
    spec["model"] = {"name": "gcn", "options": {"hidden": 16, "epochs": 1000},
                     "transforms": [{"name": "magnitude", "params": {"sparsity": 0.5}},
                                    {"name": "finetune", "params": {"epochs": 500}}]}
    spec["dataset"] = {"name": "sbm", "options": {"num_nodes": 4000}}
    spec["faults"]["layers"] = []
    start = time.perf_counter()
    job = client.submit(spec)  # accepted: validation built an untrained skeleton only
    assert time.perf_counter() - start < 5.0
    job.cancel()
