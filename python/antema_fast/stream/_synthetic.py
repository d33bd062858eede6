"""Synthetic in situ movies with known identities, for tests and benchmarks.

Particles drift, grow or shrink, and chosen pairs approach each other and coalesce into one
particle of the summed volume, which keeps the identity of the larger one. Frames are rendered
by :func:`antema_fast.synth.render` (bright field, spheres), so the images, the exact instance
masks and the identities come from the package's own generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SyntheticMovie:
    """A rendered movie with its ground truth.

    Attributes
    ----------
    frames : ndarray of uint16, shape (T, H, W)
    identities : ndarray of int32, shape (T, H, W)
        Per pixel, the identity of the (thickest) particle there, 0 = background.
    truth : list of list of tuple
        Per frame, ``(identity, x_nm, y_nm, diameter_nm)`` of every particle.
    merges : list of tuple
        ``(frame, (identity_a, identity_b), identity_after)``: first frame showing the merged
        particle.
    pixel_size_nm, frame_interval_s : float
    """

    frames: np.ndarray
    identities: np.ndarray
    truth: list[list[tuple[int, float, float, float]]]
    merges: list[tuple[int, tuple[int, int], int]]
    pixel_size_nm: float
    frame_interval_s: float
    info: dict[str, float] = field(default_factory=dict)

    def save_tiff(self, path: str | Path) -> Path:
        """ImageJ TIFF stack with the pixel size (nm) and frame interval."""
        import tifffile

        path = Path(path)
        r = 1.0 / self.pixel_size_nm
        tifffile.imwrite(
            path,
            self.frames,
            imagej=True,
            resolution=(r, r),
            metadata={"axes": "TYX", "unit": "nm", "finterval": self.frame_interval_s},
        )
        return path

    def save_video(self, path: str | Path, fps: float | None = None) -> Path:
        """MP4 (``mp4v``) or AVI (``MJPG``) of the frames, 8-bit grey (lossy for MP4)."""
        import cv2

        from ._plots import _fourcc

        path = Path(path)
        fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
        t, h, w = self.frames.shape
        fps = fps if fps is not None else 1.0 / self.frame_interval_s
        vw = cv2.VideoWriter(str(path), _fourcc(fourcc), fps, (w, h), False)
        if not vw.isOpened():
            raise OSError(f"{path}: OpenCV could not open a {fourcc} video writer")
        for f in self.frames_u8():
            vw.write(f)
        vw.release()
        return path

    def frames_u8(self) -> np.ndarray:
        """The frames scaled to uint8 with one scale for the whole movie."""
        a = self.frames.astype(np.float32)
        lo, hi = float(a.min()), float(a.max())
        return np.clip((a - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)


def synthetic_movie(
    n_frames: int = 30,
    shape: tuple[int, int] = (256, 256),
    *,
    pixel_size_nm: float = 0.5,
    n_particles: int | None = None,
    n_merges: int = 2,
    diameter_nm: tuple[float, float] = (7.0, 12.0),
    drift_nm: float = 0.4,
    growth: float = 0.01,
    frame_interval_s: float = 0.5,
    dose_per_px: float = 400.0,
    seed: int = 0,
) -> SyntheticMovie:
    """Render a movie of drifting, growing/shrinking and coalescing spheres.

    Parameters
    ----------
    n_frames, shape : int, (int, int)
        Frames and frame size (rows, cols).
    pixel_size_nm : float
        nm per pixel.
    n_particles : int, optional
        Particles at the start (default: a jittered grid that fills the field).
    n_merges : int
        Pairs of neighbours that approach and coalesce during the movie.
    diameter_nm : (float, float)
        Range of the initial diameters.
    drift_nm : float
        Typical speed, nm per frame (each particle: a random direction, plus a common drift).
    growth : float
        Typical relative diameter change per frame (half the particles grow, half shrink).
    frame_interval_s : float
        Seconds between frames.
    dose_per_px : float
        Electrons per background pixel (Poisson noise).
    seed : int
        Seed of everything random.

    Examples
    --------
    >>> m = synthetic_movie(4, (96, 96), n_merges=0, seed=1)
    >>> m.frames.shape, len(m.truth)
    ((4, 96, 96), 4)
    """
    from ..synth import Imaging, Particle, render

    rng = np.random.default_rng(seed)
    h, w = shape
    s = pixel_size_nm
    spacing = 2.6 * diameter_nm[1]
    ny = max(1, int((h * s - spacing / 2) // spacing))
    nx = max(1, int((w * s - spacing / 2) // spacing))
    cells = [(iy, ix) for iy in range(ny) for ix in range(nx)]
    rng.shuffle(cells)
    if n_particles is not None:
        cells = cells[:n_particles]
    m = len(cells)
    y0 = np.array([(c[0] + 0.75) * spacing for c in cells]) + rng.uniform(-0.1, 0.1, m) * spacing
    x0 = np.array([(c[1] + 0.75) * spacing for c in cells]) + rng.uniform(-0.1, 0.1, m) * spacing
    d0 = rng.uniform(*diameter_nm, m)
    ang = rng.uniform(0, 2 * math.pi, m)
    common = rng.uniform(0, 2 * math.pi)
    vy = drift_nm * (0.6 * np.sin(ang) + 0.4 * math.sin(common))
    vx = drift_nm * (0.6 * np.cos(ang) + 0.4 * math.cos(common))
    rate = growth * rng.choice([-1.0, 1.0], m) * rng.uniform(0.5, 1.5, m)

    # merging pairs: horizontal neighbours on the grid; they meet at a chosen frame
    cell_of = {c: k for k, c in enumerate(cells)}
    pairs: list[tuple[int, int, int]] = []  # (a, b, merge frame)
    used: set[int] = set()
    for k, (iy, ix) in enumerate(cells):
        if len(pairs) >= n_merges:
            break
        j = cell_of.get((iy, ix + 1))
        if j is None or k in used or j in used:
            continue
        used.update((k, j))
        t_merge = int(rng.integers(n_frames // 3, max(n_frames // 3 + 1, 2 * n_frames // 3)))
        pairs.append((k, j, t_merge))
    for a, b, t_merge in pairs:
        # b moves towards a, touching at t_merge - 1; a keeps still; both keep their size
        rate[a] = rate[b] = 0.0
        vy[a] = vx[a] = 0.0
        dist = math.hypot(y0[b] - y0[a], x0[b] - x0[a])
        gap = dist - 0.5 * (d0[a] + d0[b]) * 0.85
        speed = gap / max(t_merge - 1, 1)
        vy[b] = speed * (y0[a] - y0[b]) / dist
        vx[b] = speed * (x0[a] - x0[b]) / dist

    alive = np.ones(m, dtype=bool)
    merged_into: dict[int, int] = {}
    merges: list[tuple[int, tuple[int, int], int]] = []
    big_d = d0.copy()
    imaging = Imaging(
        style="bf",
        mu_per_nm=0.12,
        carbon_amplitude=0.03,
        carbon_grain_nm=0.6,
        blur_nm=0.3,
        dose_per_px=dose_per_px,
    )
    frames = np.empty((n_frames, h, w), np.uint16)
    ident = np.zeros((n_frames, h, w), np.int32)
    truth: list[list[tuple[int, float, float, float]]] = []
    for t in range(n_frames):
        ys = y0 + vy * t
        xs = x0 + vx * t
        ds = np.clip(d0 * (1.0 + rate * t), 0.5 * diameter_nm[0], 2.0 * diameter_nm[1])
        for a, b, t_merge in pairs:
            if t == t_merge:
                keep, gone = (a, b) if d0[a] >= d0[b] else (b, a)
                alive[gone] = False
                merged_into[gone] = keep
                vol_a, vol_b = d0[a] ** 3, d0[b] ** 3
                big_d[keep] = (vol_a + vol_b) ** (1 / 3)
                merges.append((t, (a + 1, b + 1), keep + 1))
            if t >= t_merge:
                keep = a if d0[a] >= d0[b] else b
                ya, xa, yb, xb = (
                    y0[a] + vy[a] * t_merge,
                    x0[a] + vx[a] * t_merge,
                    (y0[b] + vy[b] * (t_merge - 1)),
                    x0[b] + vx[b] * (t_merge - 1),
                )
                wa, wb = d0[a] ** 3, d0[b] ** 3
                ys[keep] = (wa * ya + wb * yb) / (wa + wb)
                xs[keep] = (wa * xa + wb * xb) / (wa + wb)
                ds[keep] = big_d[keep]
        parts = [
            Particle(y_nm=float(ys[k]), x_nm=float(xs[k]), scale_nm=float(ds[k]), identity=k + 1)
            for k in range(m)
            if alive[k]
        ]
        img = render(parts, (h, w), s, imaging, rng=seed * 100003 + t)
        frames[t] = np.clip(img.image, 0, 65535).astype(np.uint16)
        lab = img.labels
        ids = np.array([0] + [inst.identity for inst in img.instances], dtype=np.int32)
        ident[t] = ids[lab]
        truth.append([(p.identity, p.x_nm, p.y_nm, p.scale_nm) for p in parts])
    return SyntheticMovie(frames, ident, truth, merges, s, frame_interval_s)
