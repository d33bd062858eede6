"""How well could any segmenter do on a synthetic micrograph? A Cramér–Rao estimate.

The particle IoU of a model on the synthetic test set is only meaningful next to what the
image allows: a 6 px particle at 3 electrons per pixel has an uncertain edge for any method.
This module estimates, per image, the pooled particle IoU that an *ideal* observer could reach,
from the Fisher information the image's Poisson counts carry about each particle's size and
position.

The observer is given much more than a segmenter has (a genie): every particle's shape,
orientation and contrast, the support texture, gain and gradient, and the imaging conditions;
it only has to estimate each particle's scale (log size) and centre ``(y, x)``. For particle
``i`` with parameters ``θ = (ln s, y, x)`` the expected counts are ``λ = d · μ(θ)`` (``μ`` the
noise-free image of :func:`antema_fast.synth.render`, ``d`` its dose scale), and

    F_i = d · Σ_pixels ∂μ/∂θ ∂μ/∂θᵀ / μ

(derivatives by central differences of re-rendered images). The van Trees (Bayesian
Cramér–Rao) bound adds the prior information on the log size, ``1 / σ_log²`` of the field's
population; positions have a flat prior. Its inverse bounds the error covariance of any
estimator of those three numbers; information shared between neighbours is ignored, and every
ignored nuisance only makes the estimate more optimistic. The IoU follows by treating each
particle as the disc of its area, errors drawn from ``N(0, F_i⁻¹)``: the expected intersection
and union of the true disc and a disc of radius ``r·exp(δ ln s)`` centred ``(δy, δx)`` away,
summed over the particles of the image (the pooled IoU of ``antema evaluate``).

So the number is an optimistic ceiling, not a promise: a real segmenter also has to find the
particles, their shapes and orientations, and to tell texture from particle. A model far below
it has room to improve; a model near it does not, whatever its training.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from .. import synth


def _disc_overlap(r1: np.ndarray, r2: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Area of the intersection of discs of radii ``r1``, ``r2`` whose centres are ``d`` apart."""
    r1, r2, d = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (r1, r2, d)))
    out = np.zeros(r1.shape)
    inside = d <= np.abs(r1 - r2)
    out[inside] = math.pi * np.minimum(r1, r2)[inside] ** 2
    lens = ~inside & (d < r1 + r2)
    a, b, c = r1[lens], r2[lens], d[lens]
    ca = np.clip((c * c + a * a - b * b) / (2 * c * a), -1.0, 1.0)
    cb = np.clip((c * c + b * b - a * a) / (2 * c * b), -1.0, 1.0)
    k = (-c + a + b) * (c + a - b) * (c - a + b) * (c + a + b)
    out[lens] = a * a * np.arccos(ca) + b * b * np.arccos(cb) - 0.5 * np.sqrt(np.maximum(k, 0.0))
    return out


def expected_disc_iou_terms(
    area_px: float, cov: np.ndarray, rng: np.random.Generator, samples: int = 400
) -> tuple[float, float]:
    """Expected (intersection, union) in px of a disc of ``area_px`` and its estimate, the
    estimate's (log scale, y, x) error drawn from ``N(0, cov)`` (``cov`` 3×3, px² for y, x)."""
    r = math.sqrt(area_px / math.pi)
    e = rng.multivariate_normal(np.zeros(3), cov, size=samples, method="eigh")
    r2 = r * np.exp(e[:, 0])
    inter = _disc_overlap(np.full(samples, r), r2, np.hypot(e[:, 1], e[:, 2]))
    union = area_px + math.pi * r2 * r2 - inter
    return float(inter.mean()), float(union.mean())


def particle_fisher(
    s: synth.SynthImage,
    *,
    seed: int = 0,
    rel_step: float = 0.01,
    step_px: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Fisher information of each rendered particle's ``(ln scale, y px, x px)``.

    Returns ``(F, area_px)``: ``F`` of shape ``[n, 3, 3]`` for the particles of
    ``s.instances`` (in that order), ``area_px`` their true areas. The noise-free image is
    re-rendered with the same texture/gain seed for each perturbed particle.
    """
    im = replace(s.imaging, dose_per_px=math.inf, scan_jitter=0.0)
    shape = s.image.shape
    px = s.pixel_size_nm
    if not math.isfinite(s.imaging.dose_per_px):
        raise ValueError("particle_fisher: the image has no shot noise (dose_per_px = inf)")
    dose = s.imaging.dose_per_px / max(s.imaging.background, 1e-3)
    parts = list(s.particles)

    def mu(ps: list[synth.Particle]) -> np.ndarray:
        return synth.render(ps, shape, px, im, seed, film=s.film).image.astype(np.float64)

    base = np.maximum(mu(parts), 1e-9)
    by_id = {p.identity: k for k, p in enumerate(parts)}
    fisher = np.zeros((len(s.instances), 3, 3))
    areas = np.zeros(len(s.instances))
    for j, inst in enumerate(s.instances):
        k = by_id[inst.identity]
        p = parts[k]
        areas[j] = inst.area_px
        grads = []
        for change in (
            lambda p, t: replace(p, scale_nm=p.scale_nm * math.exp(t * rel_step)),
            lambda p, t: replace(p, y_nm=p.y_nm + t * step_px * px),
            lambda p, t: replace(p, x_nm=p.x_nm + t * step_px * px),
        ):
            imgs = []
            for t in (1.0, -1.0):
                ps = list(parts)
                ps[k] = change(p, t)
                imgs.append(mu(ps))
            grads.append((imgs[0] - imgs[1]) / 2.0)
        g = np.stack([grads[0] / rel_step, grads[1] / step_px, grads[2] / step_px]).reshape(3, -1)
        fisher[j] = dose * (g / base.reshape(1, -1)) @ g.T
    return fisher, areas


def iou_ceiling(
    s: synth.SynthImage,
    *,
    sigma_log: float | None = None,
    seed: int = 0,
    samples: int = 400,
) -> dict[str, Any]:
    """The ideal observer's expected pooled particle IoU on ``s`` (see the module docstring).

    ``sigma_log``: the population's log-size spread for the prior (default
    ``s.info["sigma_log"]`` when the image came from :func:`antema_fast.synth.generate`, else
    no prior). Returns intersection and union sums (to pool over images), the IoU, and the
    median boundary uncertainty ``r · sd(ln s)`` in px.
    """
    fisher, areas = particle_fisher(s, seed=seed)
    if sigma_log is None:
        sigma_log = (s.info or {}).get("sigma_log")
    prior = np.zeros((3, 3))
    if sigma_log:
        prior[0, 0] = 1.0 / float(sigma_log) ** 2
    rng = np.random.default_rng(seed)
    inter = union = 0.0
    edge_sd = []
    for f, a in zip(fisher, areas, strict=True):
        cov = np.linalg.pinv(f + prior + 1e-12 * np.eye(3))
        i, u = expected_disc_iou_terms(float(a), cov, rng, samples)
        inter += i
        union += u
        edge_sd.append(math.sqrt(a / math.pi) * math.sqrt(max(cov[0, 0], 0.0)))
    return {
        "intersection": inter,
        "union": union,
        "iou": inter / union if union else math.nan,
        "particles": len(areas),
        "edge_sd_px_median": float(np.median(edge_sd)) if edge_sd else math.nan,
    }
