"""The two frequency views of the seeds on one scale: the frequency workload's learned DCT
channel selection (Xu et al., CVPR 2020) and the watermark engine's Fourier sensitivity map
(arXiv 2208.03944, :mod:`faultlab.workers.watermark.sensitivity`).

Both are indexed by spatial frequency in cycles per pixel. The 8×8 block DCT-II basis
``(u, v)``, ``cos(π(2x+1)u/16)``, oscillates at ``u/16`` cycles per pixel, exactly the
frequency of the Fourier component ``(u, v)`` of a 16×16 image (``u/16``); the watermark map's
Fourier component ``(u, v)`` of an ``H×W`` image is at ``(u/H, v/W)``. Both are expressed as
the watermark engine's *radial fraction*
(:func:`~faultlab.workers.watermark.imaging.radial_fraction`), the radial frequency over the
largest one (0.5·√2 cycles per pixel):

.. math:: r_{\\mathrm{DCT}}(u, v) = \\frac{\\sqrt{u^2 + v^2}/16}{0.5\\sqrt{2}}
          = \\frac{\\sqrt{u^2 + v^2}}{8\\sqrt{2}}

:func:`frequency_views` bins both on that scale: per radial band, the share of the
selected channels (all components, and Y's) next to the watermark map's mean damage and its
share of the total damage, each with its chance share (the band's share of the channels or
frequencies: what a map flat over frequencies would give). The two views may come from
different models (bench/seed_recipes.py: the gated 48-channel model's selection and the
full-size spatial model's sensitivity, same dataset); the table puts them side by side, it
does not claim one predicts the other.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from faultlab.workers.training.frequency import BLOCK


def dct_radial_fraction(u: int | np.ndarray, v: int | np.ndarray) -> np.ndarray:
    """Radial fraction (the watermark engine's scale) of 8×8 block-DCT frequency ``(u, v)``."""
    fu = np.asarray(u, dtype=float) / (2 * BLOCK)
    fv = np.asarray(v, dtype=float) / (2 * BLOCK)
    return np.sqrt(fu**2 + fv**2) / (0.5 * math.sqrt(2.0))


def _band(radial: pd.Series, bands: int) -> pd.Series:
    return np.minimum((radial.to_numpy() * bands).astype(int), bands - 1)


def frequency_views(channels: pd.DataFrame, sensitivity: pd.DataFrame,
                    variant: str | None = None, bands: int = 4) -> pd.DataFrame:
    """Per radial band ``[i/bands, (i+1)/bands)``: the training ``channels`` table's selected
    share (of one frequency ``variant``, default the first) and Y's part of it, and the
    watermark ``sensitivity`` table's mean damage and share of the total damage."""
    if not 1 <= bands <= 64:
        raise ValueError(f"bands must lie in 1..64, got {bands}")
    if variant is None:
        variant = str(channels["variant"].iloc[0])
    chosen = channels[channels["variant"] == variant]
    if chosen.empty:
        raise ValueError(f"no frequency variant {variant!r} in the channels table; "
                         f"allowed: {sorted(channels['variant'].unique())}")
    dct_band = _band(pd.Series(dct_radial_fraction(chosen["u"].to_numpy(),
                                                   chosen["v"].to_numpy())), bands)
    wm_band = _band(sensitivity["radial"], bands)
    weight = chosen["selected_share"].to_numpy()
    is_y = (chosen["component"] == "Y").to_numpy()
    damage = sensitivity["damage"].to_numpy()
    total_w, total_d = float(weight.sum()), float(damage.sum())
    rows: list[dict[str, Any]] = []
    for b in range(bands):
        in_dct, in_wm = dct_band == b, wm_band == b
        rows.append({
            "band": b, "radial_low": b / bands, "radial_high": (b + 1) / bands,
            "dct_channels": int(in_dct.sum()),
            "selected_share": float(weight[in_dct].sum()) / total_w if total_w else math.nan,
            "selected_y_share": (float(weight[in_dct & is_y].sum()) / total_w
                                 if total_w else math.nan),
            "dct_chance_share": float(in_dct.sum()) / len(in_dct),
            "wm_frequencies": int(in_wm.sum()),
            "wm_chance_share": float(in_wm.sum()) / len(in_wm),
            "wm_mean_damage": float(damage[in_wm].mean()) if in_wm.any() else math.nan,
            "wm_damage_share": float(damage[in_wm].sum()) / total_d if total_d else math.nan,
            "variant": variant,
        })
    return pd.DataFrame(rows)


def sensitivity_frame(model: Any, x: Any, y: Any, *, epsilon: float = 0.1, repeats: int = 1,
                      seed: int = 0) -> pd.DataFrame:
    """The watermark engine's Fourier sensitivity analysis
    (:func:`~faultlab.workers.watermark.sensitivity.analyse`) of ``model`` on probe images
    ``x`` as the frame :func:`frequency_views` reads: ``u``, ``v``, ``radial``, ``damage``,
    ``accuracy_drop`` per distinct frequency."""
    from faultlab.workers.watermark.imaging import radial_fraction
    from faultlab.workers.watermark.sensitivity import analyse

    found = analyse(model, x, y, epsilon=epsilon, repeats=repeats, clusters=3, seed=seed)
    return pd.DataFrame([
        {"u": u, "v": v, "radial": float(radial_fraction(u, v, found.height, found.width)),
         "damage": d, "accuracy_drop": a}
        for (u, v), d, a in zip(found.frequencies, found.damage, found.accuracy_drop,
                                strict=True)])


def side_by_side(views: pd.DataFrame) -> Any:
    """Bars per radial band: share of selected DCT channels vs share of watermark damage, each
    with its chance share marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 3.5))
    x = np.arange(len(views))
    ax.bar(x - 0.2, views["selected_share"], 0.4, label="selected DCT channels (training)")
    ax.bar(x + 0.2, views["wm_damage_share"], 0.4, label="watermark sensitivity (damage)")
    ax.plot(np.concatenate([x - 0.2, x + 0.2]),
            np.concatenate([views["dct_chance_share"], views["wm_chance_share"]]), "k_",
            markersize=22, mew=2, linestyle="none", label="chance (a map flat over frequency)")
    ax.set_xticks(x, [f"{lo:.2f}–{hi:.2f}" for lo, hi in
                      zip(views["radial_low"], views["radial_high"], strict=True)])
    ax.set_xlabel("radial frequency (fraction of 0.5·√2 cycles/pixel)")
    ax.set_ylabel("share")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
