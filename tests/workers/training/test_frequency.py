"""Frequency-domain input (Xu et al., CVPR 2020): the 8×8 block DCT is orthonormal and
invertible, YCbCr round-trips, channel order is 64·component + 8u + v, the gate with every
channel open and the static selection of all 192 channels reproduce the unselected model,
and narrowing the input convolution keeps the function on the kept channels."""

from __future__ import annotations

import pytest
import torch
from scipy import fft as sfft

from faultlab.workers.training.frequency import (
    CHANNELS,
    FrequencyFront,
    block_dct,
    block_idct,
    channel_name,
    dct_matrix,
    narrow_first_conv,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from faultlab.workers.training.image_models import build_image_model


def test_dct_matrix_is_orthonormal_and_is_scipys_dct() -> None:
    d = dct_matrix()
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-6)
    x = torch.rand(8, dtype=torch.float64)
    expected = torch.from_numpy(sfft.dct(x.numpy(), norm="ortho"))
    assert torch.allclose(d @ x, expected, atol=1e-6)


def test_block_dct_is_invertible_and_keeps_energy() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 24, generator=gen, dtype=torch.float64)
    d = dct_matrix()
    z = block_dct(x, d)
    assert z.shape == (3, 192, 2, 3)
    assert torch.allclose(block_idct(z, d), x, atol=1e-10)
    assert torch.allclose((z**2).sum(), (x**2).sum(), rtol=1e-10)  # Parseval, per block too
    block = x[1, 2, 8:16, 16:24]
    coeffs = z[1, 128:192, 1, 2].reshape(8, 8)  # component 2, block (1, 2)
    assert torch.allclose(coeffs, d @ block @ d.T, atol=1e-10)
    assert torch.allclose(z[0, 0], x[0, 0].reshape(2, 8, 3, 8).sum(dim=(1, 3)) / 8, atol=1e-10)


def test_ycbcr_round_trip_and_channel_names() -> None:
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-6)
    grey = torch.full((1, 3, 8, 8), 0.4)
    assert torch.allclose(rgb_to_ycbcr(grey)[0, :, 0, 0], torch.tensor([0.4, 0.5, 0.5]),
                          atol=1e-6)
    assert channel_name(0) == "Y(0,0)" and channel_name(64 + 8 * 2 + 3) == "Cb(2,3)"


def _variant(selection: str, channels: int) -> dict[str, object]:
    return {"model": "resnet_small", "model_options": {"width": 4},
            "input": {"kind": "frequency", "channels": channels, "selection": selection}}


def test_gate_and_selection_with_all_channels_reproduce_the_unselected_model() -> None:
    torch.manual_seed(0)
    gated = build_image_model(_variant("gate", CHANNELS), (3, 16, 16), 10, "m", training=True)
    plain = build_image_model(_variant("all", CHANNELS), (3, 16, 16), 10, "m")
    assert isinstance(gated.front, FrequencyFront) and isinstance(plain.front, FrequencyFront)
    plain.net.load_state_dict(gated.net.state_dict())
    x = torch.rand(4, 3, 16, 16)
    gated.front.fit(x)
    plain.front.fit(x)
    gated.eval()
    plain.eval()
    with torch.no_grad():
        reference = plain(x)
        gated.front.gating = True  # every gate open (logits start at 0): nothing is masked
        assert torch.allclose(gated(x), reference, atol=1e-5)
        selected = gated.front.select(CHANNELS)
        assert torch.equal(selected, torch.arange(CHANNELS))
        narrow_first_conv(gated.net, selected)
        assert torch.allclose(gated(x), reference, atol=1e-5)


@pytest.mark.parametrize("k", [1, 24, 48])
def test_static_selection_equals_masking_the_other_channels(k: int) -> None:
    torch.manual_seed(1)
    model = build_image_model(_variant("gate", k), (3, 16, 16), 10, "m", training=True)
    assert isinstance(model.front, FrequencyFront) and model.front.gate_logits is not None
    x = torch.rand(3, 3, 16, 16)
    model.front.fit(x)
    with torch.no_grad():
        model.front.gate_logits.copy_(torch.randn(CHANNELS))
    model.eval()
    top = torch.topk(model.front.gate_logits.detach(), k).indices
    with torch.no_grad():
        model.front.gate_logits.copy_(torch.full((CHANNELS,), -5.0))
        model.front.gate_logits[top] = 5.0
        model.front.gating = True
        masked = model(x)
        narrow_first_conv(model.net, model.front.select(k))
        assert torch.allclose(model(x), masked, atol=1e-5)
    rebuilt = build_image_model(_variant("gate", k), (3, 16, 16), 10, "m")
    rebuilt.load_state_dict(model.state_dict())  # the final architecture reads k channels
    rebuilt.eval()
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), masked, atol=1e-5)
