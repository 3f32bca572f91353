"""Injection mechanics: exact restore, addressing by name and call index, PyG hooks, int8,
and suffix re-execution giving the same outputs as the full forward."""

from __future__ import annotations

import pytest
import torch

from faultlab.workers.faults.formats import raw_view
from faultlab.workers.faults.inject import Injector
from faultlab.workers.faults.models import FAULT_MODELS
from faultlab.workers.faults.sites import dynamic_sites, parameter_sites
from faultlab.workers.faults.suffix import SuffixRunner
from faultlab.workers.zoo import model_digest
from tests.workers.fault_toys import Shared, TinyResNet

BITFLIP = FAULT_MODELS.get("bitflip").impl()


def _sites(model, target, x, per_sample=True):
    if target in ("weight", "bias"):
        return {s.name: s for s in parameter_sites(model, target, int8=False)}
    return {s.name: s for s in dynamic_sites(model, target, lambda: model(x), per_sample)}


def test_parameter_fault_changes_exactly_one_element_and_restores_bit_for_bit() -> None:
    model = TinyResNet()
    before = model_digest(model)
    sites = _sites(model, "weight", None)
    w = model.conv_a.weight
    snapshot = raw_view(w.data).clone()
    fault = {"site": "conv_a.weight", "index": 17, "bits": [30]}
    with Injector(model, [fault], sites, BITFLIP, per_sample=True):
        now = raw_view(w.data)
        changed = (now != snapshot).nonzero().flatten().tolist()
        assert changed == [17]
        assert int(now[17]) ^ int(snapshot[17]) == 1 << 30
    assert model_digest(model) == before
    # the same element hit twice (BER can do that) still restores exactly
    with Injector(model, [fault, {**fault, "bits": [2]}], sites, BITFLIP, per_sample=True):
        pass
    assert model_digest(model) == before


def test_restore_happens_when_the_forward_raises() -> None:
    model = TinyResNet()
    before = model_digest(model)
    sites = _sites(model, "weight", None)
    with pytest.raises(RuntimeError), Injector(
        model, [{"site": "fc.weight", "index": 3, "bits": [31]}], sites, BITFLIP, True
    ):
        raise RuntimeError("faulty forward")
    assert model_digest(model) == before


def test_module_called_twice_is_addressed_by_call_index() -> None:
    model = Shared().eval()
    x = torch.randn(5, 6)
    sites = _sites(model, "activation", x)
    assert {"act#0", "act#1", "lin#0", "lin#1", "head#0"} <= set(sites)
    assert sites["act#1"].call == 1
    with torch.no_grad():
        golden_h1 = model.act(model.lin(x))
        golden = model(x)
        for call in (0, 1):
            fault = {"site": f"act#{call}", "index": 2, "bits": [30]}
            inj = Injector(model, [fault], sites, BITFLIP, per_sample=True)
            with inj:
                inj.reset_calls()
                out = model(x)
            h = golden_h1.clone()
            if call == 0:
                h[:, 2] = _flip_col(h, 2)
                expected = model.head(model.act(model.lin(h)))
            else:
                h2 = model.act(model.lin(golden_h1))
                h2[:, 2] = _flip_col(h2, 2)
                expected = model.head(h2)
            assert torch.equal(out, expected), call
            assert not torch.equal(out, golden)
        # hooks are gone afterwards
        assert torch.equal(model(x), golden)


def _flip_col(h: torch.Tensor, col: int) -> torch.Tensor:
    c = h[:, col].clone().contiguous()
    raw_view(c).bitwise_xor_(1 << 30)
    return c


def _karate():
    from faultlab.spec import DatasetSpec, ModelSpec
    from faultlab.workers.zoo import build_model, load_dataset

    data = load_dataset(DatasetSpec(name="karate"))
    torch.manual_seed(0)
    model = build_model(ModelSpec(name="gcn"), data).eval()
    return model, data.data


def test_messagepassing_message_and_aggregate_hooks() -> None:
    model, g = _karate()
    run = lambda: model(g.x, g.edge_index)  # noqa: E731
    msg = {s.name: s for s in dynamic_sites(model, "message", run, False)}
    agg = {s.name: s for s in dynamic_sites(model, "aggregation", run, False)}
    assert set(msg) == {"conv1:message#0", "conv2:message#0"}
    assert set(agg) == {"conv1:aggregate#0", "conv2:aggregate#0"}
    hidden = msg["conv1:message#0"].shape[1]
    num_edges = msg["conv1:message#0"].shape[0]
    assert num_edges >= g.edge_index.shape[1]  # GCN adds self loops

    seen: dict[str, torch.Tensor] = {}
    handle = model.conv1.register_aggregate_forward_hook(
        lambda m, i, out: seen.__setitem__("agg", out.clone()))
    with torch.no_grad():
        run()
        golden_agg = seen["agg"]
        edge = 5
        fault = {"site": "conv1:message#0", "index": edge * hidden + 1}
        inj = Injector(model, [fault], msg, FAULT_MODELS.get("zero").impl(), per_sample=False)
        with inj:
            inj.reset_calls()
            run()
    handle.remove()
    changed_rows = (seen["agg"] != golden_agg).any(1).nonzero().flatten().tolist()
    assert changed_rows == [int(g.edge_index[1, edge])]  # only the message's target node

    # a fault in the aggregation output changes exactly that aggregated value
    fault = {"site": "conv2:aggregate#0", "index": 4, "bits": [30]}
    with torch.no_grad():
        golden = run()
        inj = Injector(model, [fault], agg, BITFLIP, per_sample=False)
        with inj:
            inj.reset_calls()
            out = run()
    assert (out != golden).nonzero().tolist() == [[4 // out.shape[1], 4 % out.shape[1]]]


def test_edge_weight_and_edge_index_faults_leave_inputs_untouched() -> None:
    model, g = _karate()
    run = lambda: model(g.x, g.edge_index)  # noqa: E731
    ew = {s.name: s for s in dynamic_sites(model, "edge_weight", run, False)}
    assert "conv1:edge_weight#0" in ew
    ei_before = g.edge_index.clone()
    with torch.no_grad():
        golden = run()
        inj = Injector(model, [{"site": "conv1:edge_weight#0", "index": 0, "bits": [30]}], ew,
                       BITFLIP, per_sample=False)
        with inj:
            inj.reset_calls()
            out = run()
    assert not torch.equal(out, golden)
    assert torch.equal(g.edge_index, ei_before)


def test_int8_quantized_weights_flip_the_stored_integer_and_restore() -> None:
    from torch.ao.quantization import quantize_dynamic

    model = quantize_dynamic(Shared().eval(), {torch.nn.Linear}, dtype=torch.qint8)
    sites = {s.name: s for s in parameter_sites(model, "weight", int8=True)}
    assert set(sites) == {"lin.weight", "head.weight"}
    assert sites["lin.weight"].width == 8 and not sites["lin.weight"].floating
    stored = model.lin.weight().int_repr().clone()
    x = torch.randn(4, 6)
    golden = model(x)
    fault = {"site": "lin.weight", "index": 7, "bits": [6]}
    with Injector(model, [fault], sites, BITFLIP, per_sample=True):
        now = model.lin.weight().int_repr()
        diff = (now != stored).nonzero().tolist()
        assert diff == [[1, 1]]
        assert (int(now[1, 1]) & 0xFF) ^ (int(stored[1, 1]) & 0xFF) == 1 << 6
        assert not torch.equal(model(x), golden)
    assert torch.equal(model.lin.weight().int_repr(), stored)
    assert torch.equal(model(x), golden)


def test_suffix_reexecution_is_bit_identical_to_the_full_forward() -> None:
    model = TinyResNet()
    x = torch.rand(32, 1, 8, 8)
    sites = _sites(model, "weight", None)
    runner = SuffixRunner(model)
    (golden,) = runner.cache_golden([(x,)])
    with torch.no_grad():
        assert torch.equal(golden, model(x))
    for name in ["stem.0.weight", "conv_a.weight", "conv_b.weight", "short_b.weight", "fc.weight"]:
        s = sites[name]
        prog = runner.program(s.module, s.tensor)
        assert prog is not None
        for index, bit in [(0, 30), (s.numel - 1, 22), (s.numel // 2, 3)]:
            fault = {"site": name, "index": index, "bits": [bit]}
            with Injector(model, [fault], sites, BITFLIP, True), torch.no_grad():
                full = model(x)
                fast = runner.run(prog, 0)
            assert torch.equal(full, fast) or (full.isnan().any() and torch.equal(
                full.isnan(), fast.isnan())), name
    # the faulted layer's predecessors are never recomputed
    prog = runner.program("fc", "weight")
    assert prog is not None and not any(
        n.op == "call_module" and n.target.startswith(("stem", "conv"))
        for n in prog.module.graph.nodes
    )


def test_batched_faults_match_one_fault_per_forward() -> None:
    from faultlab.workers.faults.batched import BatchedRunner

    model = TinyResNet()
    x = torch.rand(16, 1, 8, 8)
    sites = _sites(model, "weight", None)
    runner = BatchedRunner(model, (x,))
    for name in ["stem.0.weight", "conv_a.weight", "short_b.weight", "fc.weight"]:
        s = sites[name]
        trials = [[{"site": name, "index": i % s.numel, "bits": [b]}]
                  for i, b in [(0, 30), (5, 22), (s.numel - 1, 31), (7, 2)]]
        batched = runner.run(s, trials, BITFLIP)
        assert batched.shape[:2] == (4, 16)
        for k, faults in enumerate(trials):
            with Injector(model, faults, sites, BITFLIP, True), torch.no_grad():
                single = model(x)
            assert torch.equal(single.isnan(), batched[k].isnan())
            ok = ~single.isnan()
            assert torch.allclose(single[ok], batched[k][ok], rtol=1e-4, atol=1e-5), name
    assert model_digest(model) == model_digest(TinyResNet())  # never modified
