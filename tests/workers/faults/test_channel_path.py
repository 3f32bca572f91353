"""Channel re-execution (``workers/faults/channel.py``): a weight or bias fault of a convolution
recomputes only its output channel, and the trial's output is the full forward's bit for bit;
where the one-filter kernel is not exact, not faster or the layer is hooked, it is not used."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from faultlab.spec import parse_spec
from faultlab.workers.faults import channel as channel_mod
from faultlab.workers.faults.channel import ChannelRunner
from faultlab.workers.faults.engine import FaultEngine
from faultlab.workers.faults.inject import Injector
from faultlab.workers.faults.models import FAULT_MODELS
from faultlab.workers.faults.sites import parameter_sites
from faultlab.workers.faults.suffix import SuffixRunner

BITFLIP = FAULT_MODELS.get("bitflip").impl()


class Net(nn.Module):
    """A plain conv, a depthwise conv, a strided conv without bias and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.down = nn.Conv2d(8, 6, 3, stride=2, bias=False)
        self.fc = nn.Linear(6 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        h = torch.relu(self.dw(h)) + h
        return self.fc(torch.relu(self.down(h)).flatten(1))


@pytest.fixture()
def always(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path is taken wherever it is exact (tiny layers are never 2x faster)."""
    monkeypatch.setattr(channel_mod, "FASTER", float("inf"))


def _setup(x: torch.Tensor) -> tuple[nn.Module, Any, SuffixRunner, ChannelRunner]:
    torch.manual_seed(3)
    model = Net().eval()
    sites = {s.name: s for t in ("weight", "bias") for s in parameter_sites(model, t, int8=False)}
    runner = SuffixRunner(model)
    runner.cache_golden([(x,)])
    return model, sites, runner, ChannelRunner(runner, model)


def _faulty(model: nn.Module, sites: Any, channel: ChannelRunner, faults: list[dict[str, Any]]
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(full forward, channel path or None where it does not apply) under ``faults``."""
    site = sites[faults[0]["site"]]
    chans = channel.channels(site, faults)
    usable = chans is not None and channel.verify(site, chans)
    with Injector(model, faults, sites, BITFLIP, True), torch.no_grad():
        full = model(channel.suffix.env[0]["x"])
        fast = channel.run(site, chans, 0) if usable and chans is not None else None
    return full, fast


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))


def test_conv_weight_and_bias_faults_equal_the_full_forward(always: None) -> None:
    x = torch.rand(16, 3, 8, 8)
    model, sites, _, channel = _setup(x)
    taken = 0
    for name in ["conv.weight", "conv.bias", "dw.weight", "dw.bias", "down.weight"]:
        s = sites[name]
        for index, bit in [(0, 30), (s.numel - 1, 22), (s.numel // 2, 31), (1, 0), (2, 26)]:
            full, fast = _faulty(model, sites, channel, [{"site": name, "index": index,
                                                         "bits": [bit]}])
            if fast is None:  # a depthwise kernel need not add like a one-filter one
                assert name.startswith("dw") and "dw" in channel._inexact
                continue
            assert _same(full, fast), (name, index, bit)
            taken += 1
    assert taken >= 15 and not {"conv", "down"} & channel._inexact


def test_two_channels_of_one_layer_and_restore(always: None) -> None:
    x = torch.rand(8, 3, 8, 8)
    model, sites, runner, channel = _setup(x)
    per = sites["conv.weight"].numel // 8
    faults = [{"site": "conv.weight", "index": 2, "bits": [29]},
              {"site": "conv.weight", "index": 5 * per + 1, "bits": [30]}]
    assert channel.channels(sites["conv.weight"], faults) == [0, 5]
    full, fast = _faulty(model, sites, channel, faults)
    assert fast is not None and _same(full, fast)
    with torch.no_grad():  # the injector restored the weights, the cache is untouched
        assert torch.equal(model(x), runner.outputs[0])


def test_a_fault_masked_at_the_layer_returns_the_golden_output(always: None) -> None:
    x = torch.rand(8, 3, 8, 8)
    x[:, 1] = 0.0  # input channel 1 is zero everywhere: its weights are dead
    model, sites, runner, channel = _setup(x)
    index = 1 * 9 + 4  # conv.weight[0, 1, 1, 1]
    full, fast = _faulty(model, sites, channel, [{"site": "conv.weight", "index": index,
                                                  "bits": [27]}])
    assert channel.masked == 1 and torch.equal(full, fast) and fast is not runner.outputs[0]


def test_not_used_when_inexact_slow_hooked_or_multi_position(
        monkeypatch: pytest.MonkeyPatch, always: None) -> None:
    x = torch.rand(8, 3, 8, 8)
    model, sites, _, channel = _setup(x)
    fault = [{"site": "conv.weight", "index": 3, "bits": [30]}]
    with model.conv.register_forward_hook(lambda m, a, o: o.clamp(-1, 1)):
        assert not channel.usable(sites["conv.weight"])  # a mitigation guards its output
    assert channel.usable(sites["conv.weight"])
    assert channel.channels(sites["conv.weight"], [{**fault[0], "indices": [3, 4]}]) is None
    many = [{"site": "conv.weight", "index": 27 * c, "bits": [1]} for c in range(6)]
    assert channel.channels(sites["conv.weight"], many) is None  # > MAX_CHANNELS
    real = ChannelRunner._filter
    monkeypatch.setattr(ChannelRunner, "_filter",
                        staticmethod(lambda layer, xs, o: real(layer, xs, o) * (1 + 1e-6)))
    assert not channel.verify(sites["dw.weight"], [0])  # differs from golden: never used
    assert "dw" in channel._inexact and channel.channels(sites["dw.weight"], fault) is None
    monkeypatch.setattr(channel_mod, "FASTER", 0.0)
    assert not channel.verify(sites["down.weight"], [0]) and "down" in channel._inexact


def test_campaign_outcomes_are_those_of_full_forwards(always: None) -> None:
    engine = FaultEngine()
    spec = parse_spec({"kind": "faults", "seed": 5, "model": {"name": "resnet_small"},
                       "dataset": {"name": "digits", "size": 64},
                       "faults": {"sampling": "uniform", "trials": 48,
                                  "bits": [0, 22, 23, 26, 29, 30, 31]},
                       "execution": {"batch_faults": "off"}})
    prepared = engine.prepare(spec)
    (wl,) = prepared.context.workloads.values()
    for trial in engine.plan(spec, prepared.meta, 0, []):
        fast = wl.faulty_output("fp32", "none", trial["faults"], BITFLIP)
        full = wl.faulty_output("fp32", "none", trial["faults"], BITFLIP, suffix=False)
        assert _same(full, fast), trial["faults"]
    runner = wl._channel[("fp32", "none")]
    assert len(runner._checked) > 0 and not any(
        m.startswith("layers") for m in runner._inexact)


def test_channels_compare_bit_for_bit() -> None:
    from faultlab.workers.faults.formats import same_bits

    zero, negative = torch.zeros(3), torch.tensor([0.0, -0.0, 0.0])
    assert torch.equal(zero, negative) and not same_bits(zero, negative)
    assert same_bits(zero.half(), torch.zeros(3, dtype=torch.float16))
    assert not same_bits(zero, zero.double())
