"""Fourier perturbation analysis and frequency sensitivity clustering (arXiv 2208.03944, steps
1–2), a reusable analysis in its own right (cf. Xu et al., CVPR 2020, "Learning in the
frequency domain": low-impact components can be dropped).

For every distinct real 2-D frequency ``(u, v)`` of the input, clean probe images are perturbed
by that single component — ``x + ε·c(u, v, φ)``, one cosine per channel with a random phase
``φ``, normalised to RMS 1 so every frequency carries the same energy — and the damage to the
task is measured as the mean KL divergence between the clean and perturbed predictive
distributions (a smooth measure; the top-1 accuracy drop is recorded beside it). Inputs are not
clipped: the map measures the model's response to the frequency itself. The log-damages are then
clustered with scikit-learn's K-means; clusters are ranked from least (0) to most sensitive.

The probes run on the device of the model and images; the random phases are drawn on the CPU and
moved there, so every device probes with the same perturbations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.watermark.imaging import cosine_patterns, mirror, unique_frequencies

#: Images per forward pass of the analysis.
_BATCH = 512


@dataclass
class SensitivityMap:
    """Per-frequency task damage and the K-means cluster rank of each frequency."""

    height: int
    width: int
    frequencies: list[tuple[int, int]]
    damage: list[float]
    """Mean KL(clean ‖ perturbed) per frequency."""
    accuracy_drop: list[float]
    """Top-1 accuracy lost per frequency (fraction)."""
    rank: list[int]
    """Cluster rank per frequency: 0 = least sensitive."""
    centroids: list[float]
    """log10 damage at each cluster centre, by rank."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SensitivityMap:
        values = dict(data)
        values["frequencies"] = [(int(u), int(v)) for u, v in values["frequencies"]]  # type: ignore[attr-defined]
        return cls(**values)  # type: ignore[arg-type]

    def frequencies_of_rank(self, rank: int) -> list[tuple[int, int]]:
        return [f for f, r in zip(self.frequencies, self.rank, strict=True) if r == rank]

    def full_plane(self, values: list[float]) -> np.ndarray:
        """``height×width`` array in fft2 layout, each value also written at its conjugate."""
        grid = np.full((self.height, self.width), np.nan)
        for (u, v), value in zip(self.frequencies, values, strict=True):
            grid[u, v] = value
            grid[mirror(u, v, self.height, self.width)] = value
        return grid


def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + _BATCH]) for i in range(0, len(x), _BATCH)])
    return F.log_softmax(logits.float(), dim=1)


def analyse(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    repeats: int,
    clusters: int,
    seed: int,
) -> SensitivityMap:
    """The sensitivity map of ``model`` on probe images ``x`` (``N×C×H×W``) with labels ``y``."""
    from sklearn.cluster import KMeans

    model.eval()
    n, channels, height, width = x.shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    clean_log_p = _probabilities(model, x)
    clean_p = clean_log_p.exp()
    clean_acc = float((clean_log_p.argmax(1) == y).float().mean())
    freqs = unique_frequencies(height, width)
    damage, accuracy_drop = [], []
    x_rep = x.repeat(repeats, 1, 1, 1)
    y_rep = y.repeat(repeats)
    p_rep = clean_p.repeat(repeats, 1)
    log_p_rep = clean_log_p.repeat(repeats, 1)
    for u, v in freqs:
        phases = torch.rand(n * repeats, channels, 1, generator=gen, device="cpu") * 2 * math.pi
        freq = torch.tensor([[u, v]], device="cpu")
        pattern = cosine_patterns(height, width, freq, phases.to(x.device))[:, :, 0]
        rms = pattern.pow(2).mean(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-6)
        log_q = _probabilities(model, x_rep + epsilon * pattern / rms)
        kl = (p_rep * (log_p_rep - log_q)).sum(1)
        damage.append(float(kl.mean().clamp_min(0.0)))
        accuracy_drop.append(clean_acc - float((log_q.argmax(1) == y_rep).float().mean()))
    features = np.log10(np.asarray(damage) + 1e-12)[:, None]
    k = max(1, min(clusters, len(np.unique(features))))
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(features)
    order = np.argsort(km.cluster_centers_[:, 0])
    rank_of = {int(c): r for r, c in enumerate(order)}
    return SensitivityMap(
        height=height,
        width=width,
        frequencies=freqs,
        damage=damage,
        accuracy_drop=accuracy_drop,
        rank=[rank_of[int(c)] for c in km.labels_],
        centroids=[float(km.cluster_centers_[c, 0]) for c in order],
    )


def cluster_rank(choice: str | int, clusters: int) -> int:
    """Rank of a named cluster choice among ``clusters`` ranked clusters."""
    if isinstance(choice, int):
        return min(choice, clusters - 1)
    # "mid" is the lower middle for an even count: the paper favours mid/low sensitivity.
    return {"low": 0, "mid": (clusters - 1) // 2, "high": clusters - 1}[choice]
