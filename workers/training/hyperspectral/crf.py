"""Dense CRF refinement of a per-pixel class-probability map (vectorised torch).

Zhong et al. (2019, see :mod:`.gan`) refine the GAN's preliminary map with a fully
connected CRF (Krähenbühl & Koltun, "Efficient inference in fully connected CRFs with
Gaussian edge potentials", NeurIPS 2011). Over labellings ``x`` of the N pixels:

    E(x) = Σ_i ψ_i(x_i) + Σ_{i<j} [x_i ≠ x_j] k(f_i, f_j),        ψ_i(l) = −log P_i(l),

    k(f_i, f_j) = w₁ exp(−|p_i − p_j|² / 2θ_γ²)                              (spatial)
                + w₂ exp(−|p_i − p_j|² / 2θ_α² − |s_i − s_j|² / 2θ_β²)        (spectral bilateral)

with ``P`` the classifier's probabilities, ``p`` pixel positions and ``s`` spectral features
(the first principal components of the standardised spectra, scaled to unit variance).

Mean-field inference minimises over factorised ``Q`` the free energy (KL(Q‖P_CRF) up to a
constant)

    F(Q) = Σ_i ⟨Q_i, ψ_i⟩ + ½ Σ_{i,j} K_ij (1 − ⟨Q_i, Q_j⟩) + Σ_i ⟨Q_i, log Q_i⟩,

where the double sum includes ``i = j`` (``K_ii (1 − |Q_i|²)``, zero at every hard
labelling, so ``F`` equals ``E`` plus the entropy term there). The parallel update

    Q_i ← softmax(−ψ_i + Σ_j K_ij Q_j)

is then exactly a concave-convex (CCCP) step — the kernel matrix ``K`` is a positive
combination of Gaussian kernels, hence positive semi-definite, so ``−½ Σ K_ij ⟨Q_i, Q_j⟩``
is concave — and ``F`` decreases monotonically (Krähenbühl & Koltun, "Parameter learning
and convergent inference for dense random fields", ICML 2013). With ``w₁ = w₂ = 0`` it
returns ``P`` itself.

The messages ``K Q`` are computed exactly with a dense kernel: O(N² K) time per iteration
once the N × N matrix is built (O(N² d), ``d``: position + spectral feature dimension),
which is kept up to :data:`STORED_PIXELS` pixels; larger scenes rebuild it in row blocks at
every product, O(N² (d + K)) time and O(``block`` · N) memory. That is fine for the scenes
faultlab generates (a 48 × 48 scene, N = 2304: milliseconds per iteration) and for crops
of the public scenes; the campaign caps N at :data:`~.params.MAX_PIXELS`.

Why not a library: pydensecrf2 (a binding of Krähenbühl's permutohedral-lattice code)
does build from source here (Cython and C++ compiled at install), but its lattice filtering
is an approximation whose cost grows quickly with the feature dimension (2 +
``spectral_components`` here), and a compiled dependency burdens every install; at these
sizes the exact dense messages are affordable, and the energy they minimise is
:func:`free_energy`.
"""

from __future__ import annotations

import numpy as np
import torch

from faultlab.workers.training.hyperspectral.params import CrfParams

EPS = 1e-8
STORED_PIXELS = 4096
"""Scenes up to this many pixels keep their dense kernel matrix (64 MiB at the limit)."""


def spectral_features(cube: np.ndarray, components: int) -> torch.Tensor:
    """(N, c): the first ``components`` principal components of the pixels' standardised
    spectra (sklearn PCA), each scaled to unit variance."""
    from sklearn.decomposition import PCA

    flat = cube.reshape(-1, cube.shape[-1]).astype(np.float64)
    flat = (flat - flat.mean(0)) / (flat.std(0) + EPS)
    comps = min(components, flat.shape[1], flat.shape[0])
    scores = PCA(n_components=comps, svd_solver="full", random_state=0).fit_transform(flat)
    scores /= scores.std(0) + EPS
    return torch.from_numpy(scores).float()


def positions(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, 2) row, column of each pixel (row-major), on ``device``."""
    rows, cols = torch.meshgrid(torch.arange(height, device=device),
                                torch.arange(width, device=device), indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=1).float()


class DenseKernel:
    """``K = w₁ G(p / θ_γ) + w₂ G([p / θ_α, s / θ_β])`` with ``G(f)_ij = exp(−|f_i − f_j|²/2)``.

    Up to :data:`STORED_PIXELS` pixels the N × N matrix is built once and kept; above, it is
    recomputed in row blocks of ``block`` at every product (never stored whole). It lives on
    the device of ``pos`` (``spectral`` must be there too)."""

    def __init__(self, pos: torch.Tensor, spectral: torch.Tensor, p: CrfParams,
                 block: int = 2048) -> None:
        self.terms = [(w, f) for w, f in (
            (p.spatial_weight, pos / p.theta_spatial),
            (p.bilateral_weight, torch.cat([pos / p.theta_position,
                                            spectral / p.theta_spectral], dim=1)),
        ) if w > 0]
        self.size, self.device = len(pos), pos.device
        self.block = block
        self.stored = (self._rows(0, self.size) if self.terms and self.size <= STORED_PIXELS
                       else None)

    @property
    def empty(self) -> bool:
        return not self.terms

    def _rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of K."""
        out = torch.zeros(stop - start, self.size, device=self.device)
        for weight, feats in self.terms:
            rows = feats[start:stop]
            d2 = (rows ** 2).sum(1)[:, None] + (feats ** 2).sum(1)[None, :] - 2.0 * rows @ feats.T
            out += weight * torch.exp(-0.5 * d2.clamp_min(0))
        return out

    def matmul(self, q: torch.Tensor) -> torch.Tensor:
        """``K Q`` for ``Q`` (N, L), self-terms included."""
        if self.empty:
            return torch.zeros_like(q)
        if self.stored is not None:
            return self.stored @ q
        return torch.cat([self._rows(start, min(start + self.block, self.size)) @ q
                          for start in range(0, self.size, self.block)])

    def total(self) -> float:
        """``Σ_ij K_ij`` (the constant of the Potts term)."""
        return float(self.matmul(torch.ones(self.size, 1, device=self.device)).sum())


def free_energy(q: torch.Tensor, unary: torch.Tensor, kernel: DenseKernel) -> float:
    """``F(Q)`` of the module docstring (the mean-field objective)."""
    linear = float((q * unary).sum())
    entropy = float((q * torch.log(q.clamp_min(EPS))).sum())
    if kernel.empty:
        return linear + entropy
    pair = 0.5 * (kernel.total() - float((q * kernel.matmul(q)).sum()))
    return linear + pair + entropy


def mean_field(probabilities: torch.Tensor, kernel: DenseKernel, iterations: int,
               trace: list[float] | None = None) -> torch.Tensor:
    """Refined (N, L) marginals after ``iterations`` parallel mean-field updates from
    ``Q = P``; ``trace`` (if given) receives ``F(Q)`` before and after every update."""
    unary = -torch.log(probabilities.clamp_min(EPS))
    q = torch.softmax(-unary, dim=1)
    if trace is not None:
        trace.append(free_energy(q, unary, kernel))
    if kernel.empty:
        return q
    for _ in range(iterations):
        q = torch.softmax(-unary + kernel.matmul(q), dim=1)
        if trace is not None:
            trace.append(free_energy(q, unary, kernel))
    return q


def refine(probabilities: np.ndarray, cube: np.ndarray, p: CrfParams,
           device: torch.device | str = "cpu") -> np.ndarray:
    """CRF-refined (H, W, L) probabilities of the (H, W, L) map ``probabilities`` of the
    scene ``cube`` (H, W, B); the kernel and the mean-field updates are computed on
    ``device`` (the spectral PCA on the CPU)."""
    height, width, classes = probabilities.shape
    spectral = spectral_features(cube, p.spectral_components).to(device)
    kernel = DenseKernel(positions(height, width, device), spectral, p)
    q = mean_field(torch.from_numpy(probabilities.reshape(-1, classes)).float().to(device),
                   kernel, p.iterations)
    return q.cpu().numpy().reshape(height, width, classes)


__all__ = ["DenseKernel", "free_energy", "mean_field", "positions", "refine",
           "spectral_features"]
