"""The frequency workload's DCT channel map and the watermark engine's Fourier sensitivity
map on one scale: a block-DCT basis (u, v) sits at the radial fraction of the Fourier
component (u, v) of a 16×16 image, and the side-by-side table bins both views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from faultlab.workers.training.frequency import dct_matrix
from faultlab.workers.training.frequency_views import (
    dct_radial_fraction,
    frequency_views,
    side_by_side,
)
from faultlab.workers.watermark.imaging import radial_fraction


def test_dct_frequency_is_the_fourier_frequency_on_the_watermark_scale() -> None:
    d = dct_matrix()
    for u in range(8):
        for v in range(8):
            want = float(radial_fraction(u, v, 16, 16))
            assert float(dct_radial_fraction(u, v)) == pytest.approx(want)
        # the DCT basis u has its spectral peak at Fourier bin u of the 16-sample even extension
        basis = d[u].numpy()
        spectrum = np.abs(np.fft.rfft(np.concatenate([basis, basis[::-1]])))
        assert int(np.argmax(spectrum)) == u
    assert float(dct_radial_fraction(7, 7)) < 1.0
    assert float(radial_fraction(torch.tensor(8), torch.tensor(8), 16, 16)) == pytest.approx(1.0)


def test_views_bin_both_maps_on_the_same_bands() -> None:
    channels = pd.DataFrame([{"variant": "f", "u": u, "v": v, "component": c,
                              "selected_share": 1.0 if (u + v == 0 and c == "Y") else
                              (0.5 if (u, v) == (7, 7) else 0.0)}
                             for c in ("Y", "Cb", "Cr") for u in range(8) for v in range(8)])
    sensitivity = pd.DataFrame({"radial": [0.05, 0.1, 0.9], "damage": [3.0, 1.0, 4.0]})
    views = frequency_views(channels, sensitivity, bands=4)
    assert list(views["band"]) == [0, 1, 2, 3]
    assert views["dct_channels"].sum() == 192
    assert views["dct_chance_share"].sum() == pytest.approx(1.0)
    assert views.loc[0, "wm_chance_share"] == pytest.approx(2 / 3)
    assert views.loc[0, "selected_y_share"] == pytest.approx(1.0 / 2.5)
    assert views.loc[3, "selected_share"] == pytest.approx(1.5 / 2.5)  # (7,7) in 3 comps
    assert views.loc[0, "wm_damage_share"] == pytest.approx(0.5)
    assert views.loc[0, "wm_mean_damage"] == pytest.approx(2.0)
    assert views.loc[3, "wm_damage_share"] == pytest.approx(0.5)
    assert np.isnan(views.loc[1, "wm_mean_damage"])
    assert side_by_side(views).axes
    with pytest.raises(ValueError, match="allowed"):
        frequency_views(channels, sensitivity, variant="nope")


def test_sensitivity_frame_of_a_model_blind_to_high_frequencies() -> None:
    from faultlab.workers.training.frequency_views import sensitivity_frame

    class Mean(torch.nn.Module):  # sees only the image mean: damaged by (0, 0) alone
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean(dim=(1, 2, 3)) - 0.5
            return torch.stack([m, -m], dim=1) * 10

    x = torch.rand(16, 1, 8, 8)
    frame = sensitivity_frame(Mean(), x, torch.zeros(16, dtype=torch.long))
    assert len(frame) == 8 * 5 - 6  # distinct real components of an 8×8 image
    dc = frame[(frame["u"] == 0) & (frame["v"] == 0)]["damage"].item()
    rest = frame[(frame["u"] != 0) | (frame["v"] != 0)]["damage"]
    assert dc > 1e-3 and float(rest.max()) < 1e-6 and frame.loc[0, "radial"] == 0.0
