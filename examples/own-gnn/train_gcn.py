"""Writes ``gcn.safetensors`` (a trained PyG GCN's weights) and ``graph.safetensors`` (the graph)
next to this file, for ``faultlab submit examples/own-gnn/gnn.yaml``.

The graph is Zachary's karate club (bundled with PyG: nothing is downloaded), with one labelled
node per community for training and every other node for testing. The model is PyG's own
``torch_geometric.nn.models.GCN``, so the coordinator rebuilds it from ``name: "pyg:GCN"`` and
the options in gnn.yaml, with its message-passing layers in place, and loads these weights: no
code of yours runs there. See docs/own-models.md.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch_geometric.datasets import KarateClub
from torch_geometric.nn.models import GCN

HERE = Path(__file__).resolve().parent


def main() -> None:
    data = KarateClub()[0]
    data.test_mask = ~data.train_mask
    torch.manual_seed(0)
    model = GCN(in_channels=34, hidden_channels=16, num_layers=2, out_channels=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    for _ in range(200):
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        torch.nn.functional.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(data.x, data.edge_index).argmax(1)
    accuracy = (pred[data.test_mask] == data.y[data.test_mask]).float().mean().item()
    print(f"trained GCN: test accuracy {accuracy:.3f}")
    save_file(model.state_dict(), HERE / "gcn.safetensors")
    save_file({"x": data.x, "edge_index": data.edge_index, "y": data.y,
               "train_mask": data.train_mask, "test_mask": data.test_mask},
              HERE / "graph.safetensors")
    print(f"wrote {HERE / 'gcn.safetensors'} and {HERE / 'graph.safetensors'}")


if __name__ == "__main__":
    main()
