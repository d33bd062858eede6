"""Synthetic TEM / STEM micrographs of metal nanoparticles with exact ground truth.

The generator is pure NumPy + OpenCV (no torch), seeded and fast enough to feed training on the
fly (a 256² tile takes a few milliseconds). It is built in two layers:

* :func:`render` turns a list of :class:`Particle` states into an image, for one field of view.
  It is public so that movies can be made by rendering a list of particle states per frame
  (particles that drift, grow, shrink or merge while keeping their ``identity``).
* :func:`generate` draws a particle population (log-normal diameters, shapes, orientations,
  a controlled fraction of touching / overlapping particles) and imaging conditions for a
  *regime* and calls :func:`render`.

Image formation, per regime
---------------------------
Every particle is a solid (sphere, ellipsoid, cube, octahedron, truncated octahedron, rod,
triangular plate) with a random 3-D orientation; its *projected thickness* ``t(y, x)`` in nm is
computed exactly (half-space intersection for the polyhedra, closed forms for the round shapes).
Thicknesses of overlapping particles add, so overlaps are darker (bright field) or brighter
(HAADF) as in projection.

* ``"tem"`` / ``"hrtem"`` (bright field, dark particles): ``I = exp(-μ T)`` (mass-thickness
  contrast) on an amorphous-carbon texture (band-limited noise with phase-contrast granularity),
  lattice fringes with random orientation inside particles when the pixel size resolves them,
  defocus blur and a signed unsharp term that makes Fresnel fringes (bright halo outside a dark
  particle under focus), slow background gradients, gain variation and Poisson shot noise.
* ``"haadf"`` (dark field, bright particles): ``I = b + κ T^γ`` with atomic-column modulation at
  atomic resolution, probe blur, Poisson noise and scan-line jitter.
* ``"ultrasmall"``: 1–3 nm particles at low contrast, bright field or HAADF.
* ``"lowdose"``: bright field at a few electrons per pixel (liquid-cell / in situ like).
* ``"mixed"``: one of the above at random (the training mix).

In any regime, one field in seven shows the edge of a hole in the support film
(:func:`draw_film`): vacuum without carbon texture, brighter than the film in bright field and
darker in HAADF, with few particles inside.

Notes
-----
Units: positions and sizes in nm, ``pixel_size_nm`` in nm per pixel; pixel ``(r, c)`` covers
``[r-½, r+½] × [c-½, c+½]`` and a particle covers a pixel when its projected thickness at the
pixel centre is positive. The *true* equivalent diameter of a particle is that of its own full
mask (before any overlap is resolved), ``2·√(area/π)·s``.

Examples
--------
>>> from antema_fast.synth import generate
>>> s = generate(seed=1, shape=(128, 128), regime="tem")
>>> s.image.shape, s.image.dtype, s.semantic.dtype
((128, 128), dtype('float32'), dtype('bool'))
>>> bool((s.labels > 0).sum() == s.semantic.sum())
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from . import _core

Shape = Literal["sphere", "ellipsoid", "cube", "octahedron", "truncated_octahedron", "rod", "plate"]
Style = Literal["bf", "haadf"]
Regime = Literal["tem", "hrtem", "haadf", "ultrasmall", "lowdose", "mixed"]

SHAPES: tuple[str, ...] = (
    "sphere",
    "ellipsoid",
    "cube",
    "octahedron",
    "truncated_octahedron",
    "rod",
    "plate",
)
REGIMES: tuple[str, ...] = ("tem", "hrtem", "haadf", "ultrasmall", "lowdose")
#: Coverage range of a sparse field (``generate(sparse=True)``), drawn log-uniform.
SPARSE_COVERAGE: tuple[float, float] = (0.0005, 0.02)

# Lattice plane spacings of fcc metals (Au/Ag/Pt/Pd (111) and (200)), nm.
_LATTICE_SPACINGS_NM = (0.235, 0.204, 0.226, 0.196)


# --------------------------------------------------------------------------------------------
# Particle state and imaging conditions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Particle:
    """One particle in one frame.

    Parameters
    ----------
    y_nm, x_nm : float
        Centre, nm from the top-left pixel centre (row, col directions).
    scale_nm : float
        Size parameter of the solid in nm (for a sphere: its diameter; for the other shapes the
        solid is scaled so that a sphere-equivalent projected area is obtained — see
        :func:`make_particle`, which takes a target equivalent diameter).
    shape : str
        One of :data:`SHAPES`.
    rotation : tuple of 9 floats
        Row-major 3-D rotation matrix applied to the solid (z is the beam direction).
    aspect : float
        Elongation for ellipsoids and rods (length / width ≥ 1), thickness ratio for plates.
    identity : int
        Stable identity (for movies); 0 means "assign by position in the list".
    lattice_spacing_nm : float
        Lattice plane spacing used for fringes / atomic columns.
    lattice_angle_rad, lattice_phase : float
        In-plane orientation and phase of the fringes.
    contrast : float
        Per-particle multiplier of the scattering strength (composition / crystal orientation).
    """

    y_nm: float
    x_nm: float
    scale_nm: float
    shape: str = "sphere"
    rotation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    aspect: float = 1.0
    identity: int = 0
    lattice_spacing_nm: float = 0.235
    lattice_angle_rad: float = 0.0
    lattice_phase: float = 0.0
    contrast: float = 1.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"Particle.shape: expected one of {SHAPES}, got {self.shape!r}")
        if not (self.scale_nm > 0 and math.isfinite(self.scale_nm)):
            raise ValueError(
                f"Particle.scale_nm: expected a positive number, got {self.scale_nm!r}"
            )
        if len(self.rotation) != 9:
            raise ValueError(f"Particle.rotation: expected 9 numbers, got {len(self.rotation)}")
        if not self.aspect >= 1.0:
            raise ValueError(f"Particle.aspect: expected ≥ 1, got {self.aspect!r}")


@dataclass(frozen=True)
class Imaging:
    """Imaging conditions of one micrograph (all drawn by :func:`draw_imaging` for a regime).

    Parameters
    ----------
    style : {"bf", "haadf"}
        Bright field (dark particles) or HAADF-STEM (bright particles).
    mu_per_nm : float
        Bright field: attenuation per nm of projected thickness (``I = exp(-μT)``).
        HAADF: signal per nm of thickness (``κ``).
    gamma : float
        HAADF thickness exponent (``κ T^γ``), < 1 mimics saturation.
    background : float
        Mean background level relative to the beam (bright field ≈ 1; HAADF ≈ 0.05–0.3).
    carbon_amplitude : float
        Standard deviation of the amorphous-carbon texture relative to the background.
    carbon_grain_nm : float
        Characteristic grain size of the carbon texture (phase-contrast granularity), nm.
    lattice_amplitude : float
        Relative amplitude of fringes / atomic columns inside particles (0 disables).
    blur_nm : float
        Gaussian σ of the defocus / probe blur, nm.
    fresnel_amplitude : float
        Signed strength of Fresnel fringes (positive: bright halo outside dark particles).
    fresnel_width_nm : float
        Width of the Fresnel fringe, nm.
    dose_per_px : float
        Electrons per pixel in the background (Poisson noise); ``inf`` disables noise.
    gradient : float
        Peak relative amplitude of the slow background gradient.
    gain_sigma : float
        Relative σ of the slowly varying multiplicative gain.
    scan_jitter : float
        HAADF: relative σ of per-scan-line offsets.
    vacuum_level : float
        Signal in a hole of the support film relative to the film's (bright field: > 1, the
        film scatters; HAADF: < 1, the film is most of the background). Used where
        :func:`render` gets a ``film`` cover map.
    """

    style: str = "bf"
    mu_per_nm: float = 0.05
    gamma: float = 1.0
    background: float = 1.0
    carbon_amplitude: float = 0.05
    carbon_grain_nm: float = 0.5
    lattice_amplitude: float = 0.0
    blur_nm: float = 0.2
    fresnel_amplitude: float = 0.0
    fresnel_width_nm: float = 0.5
    dose_per_px: float = 200.0
    gradient: float = 0.0
    gain_sigma: float = 0.0
    scan_jitter: float = 0.0
    vacuum_level: float = 1.0

    def __post_init__(self) -> None:
        if self.style not in ("bf", "haadf"):
            raise ValueError(f"Imaging.style: expected 'bf' or 'haadf', got {self.style!r}")
        if not self.dose_per_px > 0:
            raise ValueError(f"Imaging.dose_per_px: expected > 0, got {self.dose_per_px!r}")
        if not (self.vacuum_level >= 0 and math.isfinite(self.vacuum_level)):
            raise ValueError(
                f"Imaging.vacuum_level: expected a finite number >= 0, got {self.vacuum_level!r}"
            )


@dataclass
class Instance:
    """Ground truth of one particle: its own full mask (overlaps not resolved) as a crop.

    Attributes
    ----------
    identity : int
        The particle's identity (``Particle.identity`` or its 1-based list position).
    bbox : tuple of int
        ``(row_min, col_min, row_max, col_max)``, inclusive, clipped to the image.
    mask : ndarray of bool
        The mask inside the bbox.
    area_px : int
        Pixel count of the full mask inside the image.
    equivalent_diameter_nm : float
        ``2·√(area_px/π)·s``.
    touches_border : bool
        The mask reaches the first or last row or column (the particle is cropped).
    """

    identity: int
    bbox: tuple[int, int, int, int]
    mask: np.ndarray
    area_px: int
    equivalent_diameter_nm: float
    touches_border: bool


@dataclass
class SynthImage:
    """A synthetic micrograph with its exact ground truth.

    Attributes
    ----------
    image : ndarray of float32, shape (H, W)
        The micrograph in detector units (electrons per pixel when noise is on).
    semantic : ndarray of bool
        Particle mask (union of all instance masks).
    labels : ndarray of int32
        Overlap-resolved label map: a pixel covered by several particles belongs to the thickest
        one there; values are 1-based indices into :attr:`instances` (0 = background).
    overlap_count : ndarray of uint8
        How many particles cover each pixel (≥ 2 marks overlaps).
    thickness_nm : ndarray of float32
        Total projected thickness.
    instances : list of Instance
        Every particle's own full mask (overlap-aware ground truth).
    particles : list of Particle
        The rendered particle states.
    pixel_size_nm : float
    regime : str
    imaging : Imaging
    touching_fraction : float
        Fraction of (non-empty) particles whose mask overlaps or 8-touches another particle's.
    film : ndarray of float32 or None
        The support film's cover when the field shows a hole (:func:`draw_film`), else None.
    """

    image: np.ndarray
    semantic: np.ndarray
    labels: np.ndarray
    overlap_count: np.ndarray
    thickness_nm: np.ndarray
    instances: list[Instance]
    particles: list[Particle]
    pixel_size_nm: float
    regime: str
    imaging: Imaging
    info: dict[str, float] = field(default_factory=dict)
    film: np.ndarray | None = None
    _touching: float | None = field(default=None, repr=False, compare=False)

    @property
    def touching_fraction(self) -> float:
        """Fraction of (non-empty) particles whose mask overlaps or 8-touches another's.

        Computed on first access (about 2 ms for a 256² tile, which training never needs)."""
        if self._touching is None:
            self._touching = _touching_fraction(self.instances, self.semantic.shape)
        return self._touching

    @property
    def diameters_nm(self) -> np.ndarray:
        """True equivalent diameters (nm) of all particles with a non-empty mask."""
        return np.array([i.equivalent_diameter_nm for i in self.instances], dtype=np.float64)

    def instance_stack(self) -> np.ndarray:
        """Dense ``(K, H, W)`` bool stack of the instance masks (memory: K·H·W bytes)."""
        h, w = self.semantic.shape
        out = np.zeros((len(self.instances), h, w), dtype=bool)
        for k, inst in enumerate(self.instances):
            r0, c0, r1, c1 = inst.bbox
            out[k, r0 : r1 + 1, c0 : c1 + 1] = inst.mask
        return out


# --------------------------------------------------------------------------------------------
# Geometry: projected thickness of each solid
# --------------------------------------------------------------------------------------------


def _quaternion_rotations(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) of the quaternions (n, 4) (w, x, y, z; normalised here).
    Gaussian 4-vectors give uniformly random rotations."""
    q = q / np.sqrt(np.sum(q * q, axis=1, keepdims=True))
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def _z_rotations(angle: np.ndarray) -> np.ndarray:
    """In-plane rotations (n, 3, 3) by ``angle`` (radians) about the beam axis."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((angle.size, 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1], out[:, 2, 2] = c, -s, s, c, 1.0
    return out


def _tilted_rotations(axis_angle: np.ndarray, tilt: np.ndarray, spin: np.ndarray) -> np.ndarray:
    """In-plane rotation by ``spin`` followed by a tilt by ``tilt`` about the in-plane axis at
    ``axis_angle`` (Rodrigues' formula); all (n,) radians."""
    ax, ay = np.cos(axis_angle), np.sin(axis_angle)
    k = np.zeros((axis_angle.size, 3, 3))  # cross-product matrix of the axis (ax, ay, 0)
    k[:, 0, 2], k[:, 1, 2], k[:, 2, 0], k[:, 2, 1] = ay, -ax, -ay, ax
    tilt_m = (
        np.eye(3) + np.sin(tilt)[:, None, None] * k + (1 - np.cos(tilt))[:, None, None] * (k @ k)
    )
    return tilt_m @ _z_rotations(spin)


@lru_cache(maxsize=256)
def _halfspaces(shape: str, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (F, 3) and offsets (F,) of a polyhedron of unit size parameter (cached,
    read-only)."""
    normals, offsets = _polyhedron_faces(shape, aspect)
    normals.setflags(write=False)
    offsets.setflags(write=False)
    return normals, offsets


_CUBE_NORMALS = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float
)
_OCTA_NORMALS = np.array(
    [[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], float
) / math.sqrt(3)
_TRUNC_NORMALS = np.vstack([_OCTA_NORMALS, _CUBE_NORMALS])
for _a in (_CUBE_NORMALS, _OCTA_NORMALS, _TRUNC_NORMALS):
    _a.setflags(write=False)


def _polyhedron_faces(shape: str, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    if shape == "cube":  # edge 1
        return _CUBE_NORMALS, np.full(6, 0.5)
    if shape == "octahedron":  # vertices at distance 0.5 on the axes
        return _OCTA_NORMALS, np.full(8, 0.5 / math.sqrt(3))
    if shape == "truncated_octahedron":  # square faces at 0.5·(2/3)·... truncation
        trunc = 0.5 * (0.55 + 0.25 * min(aspect - 1.0, 1.0))
        offsets = np.empty(14)
        offsets[:8] = 0.5 / math.sqrt(3)
        offsets[8:] = trunc
        return _TRUNC_NORMALS, offsets
    if shape == "plate":  # equilateral triangle of side 1 (in x-y), thickness 1/aspect
        angles = np.array([90.0, 210.0, 330.0]) * math.pi / 180.0
        n_side = np.stack([np.cos(angles), np.sin(angles), np.zeros(3)], axis=1)
        inradius = 1.0 / (2.0 * math.sqrt(3.0))
        n = np.vstack([n_side, [[0, 0, 1.0], [0, 0, -1.0]]])
        t = 0.5 / aspect
        return n, np.concatenate([np.full(3, inradius), [t, t]])
    raise ValueError(f"not a polyhedron: {shape!r}")


def _thickness(p: Particle, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Projected thickness (nm) of particle ``p`` at points (yy, xx) given in nm."""
    s = p.scale_nm
    rot = np.asarray(p.rotation, dtype=np.float64).reshape(3, 3)
    dy = (yy - p.y_nm) / s
    dx = (xx - p.x_nm) / s
    if p.shape == "sphere":
        q = 0.25 - dx * dx - dy * dy
        return 2.0 * s * np.sqrt(np.maximum(q, 0.0))
    if p.shape in ("ellipsoid", "rod"):
        # Body axis = rotation's first column projected onto the image plane; both lie in-plane
        # (rods and ellipsoids rest on the support), so the closed forms below are exact.
        ang = math.atan2(rot[1, 0], rot[0, 0])
        ca, sa = math.cos(ang), math.sin(ang)
        u = dx * ca + dy * sa
        v = -dx * sa + dy * ca
        if p.shape == "ellipsoid":
            a = 0.5 * math.sqrt(p.aspect)
            b = 0.5 / math.sqrt(p.aspect)
            q = 1.0 - (u / a) ** 2 - (v / b) ** 2
            return 2.0 * b * s * np.sqrt(np.maximum(q, 0.0))
        r = 0.5 / math.sqrt(p.aspect)  # spherocylinder: radius r, segment half length h
        h = max(0.5 * math.sqrt(p.aspect) - r, 0.0)
        du = np.maximum(np.abs(u) - h, 0.0)
        q = r * r - du * du - v * v
        return 2.0 * s * np.sqrt(np.maximum(q, 0.0))
    normals, offsets = _halfspaces(p.shape, p.aspect)
    nrm = normals @ rot.T  # rotated normals, (F, 3): n' = R n
    lo = np.full(dy.shape, -np.inf)
    hi = np.full(dy.shape, np.inf)
    inside = np.ones(dy.shape, dtype=bool)
    for (nx, ny, nz), d in zip(nrm, offsets, strict=True):
        # plane in (x, y, z) with x = col, y = row
        rhs = d - nx * dx - ny * dy
        if abs(nz) < 1e-9:
            inside &= rhs >= 0
        elif nz > 0:
            np.minimum(hi, rhs / nz, out=hi)
        else:
            np.maximum(lo, rhs / nz, out=lo)
    t = np.where(inside, np.maximum(hi - lo, 0.0), 0.0)
    return s * t


def _extent(p: Particle) -> float:
    """Radius (nm) of a disc that certainly contains the particle's projection."""
    if p.shape in ("ellipsoid", "rod"):
        return 0.5 * math.sqrt(p.aspect) * p.scale_nm + 1e-9
    if p.shape == "sphere":
        return 0.5 * p.scale_nm + 1e-9
    if p.shape == "cube":
        return 0.5 * math.sqrt(3) * p.scale_nm + 1e-9
    if p.shape == "plate":  # 3-D circumradius of the prism (it may be tilted)
        return math.sqrt(1.0 / 3.0 + (0.5 / p.aspect) ** 2) * p.scale_nm + 1e-9
    return 0.5 * p.scale_nm + 1e-9  # (truncated) octahedron: vertices at 0.5


def _face_areas(shape: str, aspect: float) -> np.ndarray:
    """Areas of the faces of :func:`_halfspaces` (same order), unit size parameter.

    cube: 1 each; octahedron (vertices at ½ on the axes): equilateral triangles of side √½,
    √3/8 each; truncated octahedron (cut at |x|, |y|, |z| ≤ t, ¼ ≤ t ≤ ½): hexagons
    √3/8 · (1 − 3 (1 − 2t)²) (the triangle less three corner triangles scaled by 1 − 2t) and
    squares of half-diagonal ½ − t, 2 (½ − t)²; plate: three side rectangles 1 × 1/aspect, top
    and bottom triangles √3/4.
    """
    if shape == "cube":
        return np.ones(6)
    if shape == "octahedron":
        return np.full(8, math.sqrt(3.0) / 8.0)
    if shape == "truncated_octahedron":
        t = float(_halfspaces(shape, aspect)[1][-1])
        if not 0.25 <= t <= 0.5:
            raise ValueError(f"truncation {t} outside the supported range [0.25, 0.5]")
        hexagon = math.sqrt(3.0) / 8.0 * (1.0 - 3.0 * (1.0 - 2.0 * t) ** 2)
        return np.concatenate([np.full(8, hexagon), np.full(6, 2.0 * (0.5 - t) ** 2)])
    if shape == "plate":
        return np.array([1.0 / aspect] * 3 + [math.sqrt(3.0) / 4.0] * 2)
    raise ValueError(f"not a polyhedron: {shape!r}")


def _area_unit(shape: str, aspect: float, rot: np.ndarray) -> float:
    """Projected area at unit size of a solid turned by ``rot`` (3 × 3): π/4 for spheres and
    ellipsoids (semi-axes with a·b = 1/4), πr² + 4rh for rods (spherocylinders); for a convex
    polyhedron the shadow along the beam, ½ Σ_f A_f |n_f'·z| (each face projects onto the
    shadow twice, from the front and from the back)."""
    if shape in ("sphere", "ellipsoid"):
        return math.pi / 4.0
    if shape == "rod":
        r = 0.5 / math.sqrt(aspect)
        h = max(0.5 * math.sqrt(aspect) - r, 0.0)
        return math.pi * r * r + 4.0 * r * h
    normals, _ = _halfspaces(shape, aspect)
    nz = normals @ rot[2]  # z components of the rotated normals R n
    return 0.5 * float(np.abs(nz) @ _face_areas(shape, aspect))


def projected_area_unit(p: Particle) -> float:
    """Projected area of ``p`` at ``scale_nm = 1``, nm², exactly (see :func:`_area_unit`)."""
    return _area_unit(p.shape, p.aspect, np.asarray(p.rotation, dtype=np.float64).reshape(3, 3))


# Uniform ranges of the aspect drawn per shape (ellipsoid / rod elongation, plate
# width / thickness, truncated octahedron's truncation parameter); absent: 1.
_ASPECT_RANGE = {
    "ellipsoid": (1.1, 1.8),
    "truncated_octahedron": (1.0, 2.0),
    "rod": (2.0, 5.0),
    "plate": (2.0, 4.0),
}


def make_particles(
    rng: np.random.Generator,
    y_nm: Sequence[float] | np.ndarray,
    x_nm: Sequence[float] | np.ndarray,
    diameter_nm: Sequence[float] | np.ndarray,
    shapes: Sequence[str],
    *,
    first_identity: int = 0,
    aspect: float | None = None,
) -> list[Particle]:
    """Particles whose projections have the given equivalent diameters (see
    :func:`make_particle`), drawn together: one block of random numbers for all of them.

    ``first_identity`` > 0 numbers them consecutively from it (0: all 0).
    """
    n = len(shapes)
    if not len(y_nm) == len(x_nm) == len(diameter_nm) == n:
        raise ValueError("y_nm, x_nm, diameter_nm and shapes must have the same length")
    for sh in shapes:
        if sh not in SHAPES:
            raise ValueError(f"shape: expected one of {SHAPES}, got {sh!r}")
    if n == 0:
        return []
    u = rng.random((n, 8))  # aspect, tilt axis, tilt, spin, lattice ×3, contrast
    q = rng.standard_normal((n, 4))
    shape_arr = np.asarray(shapes)
    tilted = np.isin(shape_arr, ("cube", "plate"))
    free3d = np.isin(shape_arr, ("octahedron", "truncated_octahedron"))
    rots = _z_rotations(2.0 * math.pi * u[:, 3])  # rods, ellipsoids, spheres: flat, spun
    if tilted.any():
        rots[tilted] = _tilted_rotations(
            2.0 * math.pi * u[tilted, 1],
            math.radians(15) * u[tilted, 2],
            2.0 * math.pi * u[tilted, 3],
        )
    if free3d.any():
        rots[free3d] = _quaternion_rotations(q[free3d])
    n_sp = len(_LATTICE_SPACINGS_NM)
    out = []
    for i, sh in enumerate(shapes):
        if aspect is not None:
            asp = float(aspect)
        else:
            lo, hi = _ASPECT_RANGE.get(sh, (1.0, 1.0))
            asp = lo + (hi - lo) * float(u[i, 0])
        d = float(diameter_nm[i])
        scale = d if sh == "sphere" else d * math.sqrt(math.pi / 4.0 / _area_unit(sh, asp, rots[i]))
        out.append(
            Particle(
                y_nm=float(y_nm[i]),
                x_nm=float(x_nm[i]),
                scale_nm=scale,
                shape=sh,
                rotation=tuple(rots[i].ravel().tolist()),
                aspect=asp,
                identity=first_identity + i if first_identity > 0 else 0,
                lattice_spacing_nm=_LATTICE_SPACINGS_NM[min(int(u[i, 4] * n_sp), n_sp - 1)],
                lattice_angle_rad=math.pi * float(u[i, 5]),
                lattice_phase=2.0 * math.pi * float(u[i, 6]),
                contrast=0.8 + 0.4 * float(u[i, 7]),
            )
        )
    return out


def make_particle(
    rng: np.random.Generator,
    y_nm: float,
    x_nm: float,
    diameter_nm: float,
    shape: str,
    *,
    identity: int = 0,
    aspect: float | None = None,
) -> Particle:
    """A particle of the given shape whose projection has equivalent diameter ``diameter_nm``.

    Orientation is drawn as microscopists see these shapes on a support: spheres and
    octahedra at random 3-D orientation, cubes and plates lying on a face with a small tilt,
    rods and ellipsoids lying flat with random in-plane direction.
    """
    p = make_particles(rng, [y_nm], [x_nm], [diameter_nm], [shape], aspect=aspect)[0]
    return p if identity == 0 else replace(p, identity=identity)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _band_noise_raw(
    rng: np.random.Generator, shape: tuple[int, int], grain_px: float
) -> np.ndarray:
    """Zero-mean noise band-limited around spatial frequency k0 ≈ 1/(2·grain_px), not yet
    scaled to unit σ (``synth_form`` does that in its pass).

    Pass band: a ring at k0 of relative width 0.45 (phase-contrast granularity) plus a
    quarter-height low-frequency floor of width 0.5·k0; no DC term. Both terms are below 1e-6
    beyond |k| = 3.37·k0, so the white noise is drawn only on the frequencies inside
    |ky|, |kx| ≤ 3.4·k0 (the rest of the spectrum is zero)."""
    h, w = shape
    k0 = min(0.5, 1.0 / (2.0 * max(grain_px, 1.0)))
    kmax = 3.4 * k0
    ry = min(h // 2, int(kmax * h) + 1)  # rows 0..ry and h-ry..h-1 (negative frequencies)
    cx = min(w // 2, int(kmax * w) + 1)  # columns 0..cx of the rfft grid
    rows = np.arange(h) if 2 * ry + 1 >= h else np.r_[0 : ry + 1, h - ry : h]
    ky = np.fft.fftfreq(h)[rows].astype(np.float32)[:, None]
    kx = (np.arange(cx + 1) / w).astype(np.float32)[None, :]
    k = np.sqrt(ky * ky + kx * kx)
    a = np.float32(-0.5 / (0.45 * k0 + 1e-6) ** 2)
    b = np.float32(-0.5 / (0.5 * k0 + 1e-6) ** 2)
    d = k - np.float32(k0)
    filt = np.exp(a * (d * d))
    filt += np.float32(0.25) * np.exp(b * (k * k))
    filt[0, 0] = 0.0
    # White noise drawn directly in the Fourier domain (a complex Gaussian; irfft2 keeps the
    # Hermitian part), which saves the forward transform. Single precision: the texture is
    # normalised to unit σ.
    z = rng.standard_normal((rows.size, cx + 1, 2), dtype=np.float32).view(np.complex64)[..., 0]
    z *= filt
    f = np.zeros((h, w // 2 + 1), np.complex64)
    f[rows, : cx + 1] = z
    return np.fft.irfft2(f, s=(h, w)).astype(np.float32, copy=False)


@lru_cache(maxsize=8)
def _cubic_upsampler(cells: int, h: int, w: int) -> tuple[np.ndarray, ...]:
    """Bicubic upsampling of a (cells+1)² grid to h × w as two matrices (OpenCV's INTER_CUBIC
    is separable: ``up = ry @ g @ rx``), with the Gram matrices and sums that give the mean and
    standard deviation of ``up`` without forming it (read-only, cached)."""
    import cv2

    c = cells + 1
    eye = np.eye(c, dtype=np.float32)
    ry = cv2.resize(eye, (c, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)  # (h, c)
    rx = cv2.resize(eye, (w, c), interpolation=cv2.INTER_CUBIC).astype(np.float64)  # (c, w)
    mats = (ry, rx, ry.T @ ry, rx @ rx.T, ry.sum(axis=0), rx.sum(axis=1))
    for m in mats:
        m.setflags(write=False)
    return mats


def _smooth_field_raw(
    rng: np.random.Generator, shape: tuple[int, int], cells: int
) -> tuple[np.ndarray, float, float]:
    """A smooth random field (bicubic upsampling of a coarse Gaussian grid) with its mean and
    standard deviation over the frame (from the coarse grid, exactly)."""
    h, w = shape
    ry, rx, gy, gx, sy, sx = _cubic_upsampler(cells, h, w)
    g = rng.standard_normal((cells + 1, cells + 1))
    up = (ry @ g @ rx).astype(np.float32)
    n = float(h * w)
    mean = float(sy @ g @ sx) / n
    var = float(np.sum((gy @ g @ gx) * g)) / n - mean * mean
    return up, mean, math.sqrt(max(var, 0.0))


def draw_film(
    rng: np.random.Generator | int | None,
    shape: tuple[int, int],
    pixel_size_nm: float,
    hole_fraction: float | None = None,
) -> np.ndarray:
    """A support film with a hole: its cover map for :func:`render` (1 film, 0 vacuum).

    The film edge is a level line of a smooth random field over 1–3 cells across the frame
    (straight to gently curved, as the edges of holey and lacey carbon look at these
    magnifications), tapered over 0.3–3 nm (log-uniform; the film thins towards its edge).

    Parameters
    ----------
    rng : numpy Generator, int or None
    shape : (int, int)
    pixel_size_nm : float
    hole_fraction : float, optional
        Fraction of the frame in the hole; drawn uniformly in 0.1–0.6 when None.

    Returns
    -------
    ndarray of float32 in [0, 1]
    """
    rng = np.random.default_rng(rng)
    h, w = (int(shape[0]), int(shape[1]))
    if hole_fraction is None:
        hole_fraction = float(rng.uniform(0.1, 0.6))
    if not 0.0 <= hole_fraction <= 1.0:
        raise ValueError(f"hole_fraction: expected a number in [0, 1], got {hole_fraction!r}")
    field_, _, _ = _smooth_field_raw(rng, (h, w), int(rng.integers(1, 4)))
    level = float(np.quantile(field_[::4, ::4], hole_fraction))  # smooth: a subsample will do
    cover = (field_ > level).astype(np.float32)
    taper_px = math.exp(rng.uniform(math.log(0.3), math.log(3.0))) / float(pixel_size_nm)
    return np.clip(_gauss(cover, min(taper_px, 8.0)), 0.0, 1.0)


def _gauss(img: np.ndarray, sigma_px: float) -> np.ndarray:
    import cv2

    if sigma_px < 0.3:
        return img
    return cv2.GaussianBlur(
        img, (0, 0), sigmaX=sigma_px, sigmaY=sigma_px, borderType=cv2.BORDER_REFLECT
    )


_SOLID_KIND = {"sphere": 0, "ellipsoid": 1, "rod": 2}  # everything else: polyhedron (3)


def _solid_table(particles: Sequence[Particle], s: float, fringes: bool) -> np.ndarray:
    """The particles as the parameter table of ``_core.synth_rasterize`` (one float64 row
    each: kind, y, x, scale, extent in px, in-plane axis cos/sin, aspect, face count, contrast,
    fringe wave number / direction / phase, then (nx, ny, nz, d) of each rotated face)."""
    tab = np.zeros((len(particles), int(_core.SYNTH_PARAM_COLUMNS)), np.float64)
    for i, p in enumerate(particles):
        row = tab[i]
        row[1:5] = (p.y_nm, p.x_nm, p.scale_nm, _extent(p) / s)
        row[7] = p.aspect
        row[9] = p.contrast
        kind = _SOLID_KIND.get(p.shape, 3)
        row[0] = kind
        if kind in (1, 2):
            ang = math.atan2(p.rotation[3], p.rotation[0])  # rot[1, 0], rot[0, 0]
            row[5], row[6] = math.cos(ang), math.sin(ang)
        elif kind == 3:
            normals, offsets = _halfspaces(p.shape, p.aspect)
            rot = np.asarray(p.rotation, dtype=np.float64).reshape(3, 3)
            faces = np.column_stack([normals @ rot.T, offsets])
            row[8] = len(offsets)
            row[14 : 14 + faces.size] = faces.ravel()
        if fringes:
            row[10] = 2.0 * math.pi / p.lattice_spacing_nm
            row[11] = math.cos(p.lattice_angle_rad)
            row[12] = math.sin(p.lattice_angle_rad)
            row[13] = p.lattice_phase
    return tab


def render(
    particles: Sequence[Particle],
    shape: tuple[int, int],
    pixel_size_nm: float,
    imaging: Imaging,
    rng: np.random.Generator | int | None = None,
    *,
    regime: str = "custom",
    film: np.ndarray | None = None,
) -> SynthImage:
    """Render particles into a micrograph with exact instance masks.

    Parameters
    ----------
    particles : sequence of Particle
        Particle states (positions in nm). Identity 0 is replaced by the 1-based list position.
    shape : (int, int)
        Image shape (rows, cols).
    pixel_size_nm : float
        nm per pixel.
    imaging : Imaging
        Contrast, texture, optics and noise.
    rng : numpy Generator, int or None
        Randomness of the support texture, gain and noise (seed it for reproducible frames).
    regime : str
        Name stored in the result.
    film : ndarray, optional
        Cover of the support film, shape ``shape``: 1 on the film, 0 in a hole (vacuum, at
        ``imaging.vacuum_level`` and without carbon texture), fractions on a tapered edge
        (:func:`draw_film`). None: film everywhere.

    Returns
    -------
    SynthImage
    """
    if not (pixel_size_nm > 0 and math.isfinite(pixel_size_nm)):
        raise ValueError(f"pixel_size_nm: expected a positive number, got {pixel_size_nm!r}")
    h, w = (int(shape[0]), int(shape[1]))
    if h < 1 or w < 1:
        raise ValueError(f"shape: expected two positive sizes, got {shape!r}")
    if film is not None:
        film = np.ascontiguousarray(film, dtype=np.float32)
        if film.shape != (h, w):
            raise ValueError(f"film: expected shape {(h, w)}, got {film.shape}")
    rng = np.random.default_rng(rng)
    s = float(pixel_size_nm)

    thick = np.zeros((h, w), np.float32)
    best = np.zeros((h, w), np.float32)
    labels = np.zeros((h, w), np.int32)
    count = np.zeros((h, w), np.uint8)
    lattice = np.zeros((h, w), np.float32)  # thickness-weighted fringe signal
    contrast_w = np.zeros((h, w), np.float32)  # thickness-weighted per-particle contrast
    do_lattice = imaging.lattice_amplitude > 0
    # The C++ kernel rasterises every particle over its extent window and accumulates the
    # canvases in place (formulas: _thickness; reference loop: tests/synth_reference.py).
    res = _core.synth_rasterize(
        _solid_table(particles, s, do_lattice),
        s,
        thick,
        best,
        labels,
        count,
        lattice,
        contrast_w,
        do_lattice,
        imaging.style == "haadf",
    )
    instances: list[Instance] = []
    kept: list[Particle] = []
    masks = res["masks"].view(bool)
    offsets = res["offsets"]
    for j, (i, (r0, c0, r1, c1), area) in enumerate(
        zip(res["index"].tolist(), res["bbox"].tolist(), res["area"].tolist(), strict=True)
    ):
        p = particles[i]
        ident = p.identity if p.identity != 0 else i + 1
        instances.append(
            Instance(
                identity=ident,
                bbox=(r0, c0, r1, c1),
                mask=masks[offsets[j] : offsets[j + 1]].reshape(r1 - r0 + 1, c1 - c0 + 1),
                area_px=area,
                equivalent_diameter_nm=2.0 * math.sqrt(area / math.pi) * s,
                touches_border=r0 == 0 or c0 == 0 or r1 == h - 1 or c1 == w - 1,
            )
        )
        kept.append(p if p.identity == ident else replace(p, identity=ident))

    # Contrast, fringes and support texture in one pass (formulas: tests/synth_reference.py)
    img = _core.synth_form(
        thick,
        contrast_w,
        lattice,
        _band_noise_raw(rng, (h, w), imaging.carbon_grain_nm / s),
        imaging.style == "haadf",
        imaging.mu_per_nm,
        imaging.gamma,
        imaging.background,
        imaging.carbon_amplitude,
        imaging.lattice_amplitude,
        film,
        imaging.vacuum_level,
    )
    img = _gauss(img, imaging.blur_nm / s)
    if imaging.style == "bf" and imaging.fresnel_amplitude != 0.0:
        wide = _gauss(img, max(imaging.fresnel_width_nm / s, 0.7))
        amp = np.float32(imaging.fresnel_amplitude)
        img *= np.float32(1.0) + amp  # img + A·(img − wide)
        wide *= amp
        img -= wide
    # Clip, gradient, gain and shot noise in one pass; the random draws in a fixed order.
    ga = gb = gc = 0.0
    if imaging.gradient > 0:
        ga, gb, gc = (float(v) for v in rng.uniform(-1, 1, 3))
    gain_field = None
    gain0, gain1 = 1.0, 0.0
    if imaging.gain_sigma > 0:
        gain_field, mean, sd = _smooth_field_raw(rng, (h, w), 4)
        gain1 = imaging.gain_sigma / sd if sd > 0 else 0.0
        gain0 = 1.0 - gain1 * mean
    noisy = math.isfinite(imaging.dose_per_px)
    dose_scale = imaging.dose_per_px / max(imaging.background, 1e-3) if noisy else 0.0
    img = np.ascontiguousarray(img, dtype=np.float32)
    _core.synth_expose(
        img,
        gain_field,
        imaging.gradient,
        ga,
        gb,
        gc,
        gain0,
        gain1,
        dose_scale,
        int(rng.integers(0, 2**63)) if noisy else 0,
    )
    if imaging.scan_jitter > 0:
        rows_off = rng.normal(0.0, imaging.scan_jitter, size=(h, 1)).astype(np.float32)
        img = img + rows_off * float(img.mean())
    img = img.astype(np.float32, copy=False)

    return SynthImage(
        image=img,
        semantic=count > 0,
        labels=labels,
        overlap_count=count,
        thickness_nm=thick,
        instances=instances,
        particles=kept,
        pixel_size_nm=s,
        regime=regime,
        imaging=imaging,
        film=film,
    )


def _touching_fraction(instances: Sequence[Instance], shape: tuple[int, int]) -> float:
    """Fraction of instances whose mask overlaps or 8-touches another instance's mask."""
    import cv2

    n = len(instances)
    if n < 2:
        return 0.0
    h, w = shape
    cover = np.zeros((h, w), np.uint16)
    dil_masks = []
    kernel = np.ones((3, 3), np.uint8)
    for inst in instances:
        r0, c0, r1, c1 = inst.bbox
        # dilate by one pixel inside a padded crop, then clip to the image
        pad = np.pad(inst.mask.astype(np.uint8), 1)
        d = cv2.dilate(pad, kernel)
        rr0, cc0 = r0 - 1, c0 - 1
        a0, b0 = max(rr0, 0), max(cc0, 0)
        a1, b1 = min(r1 + 1, h - 1), min(c1 + 1, w - 1)
        dd = d[a0 - rr0 : a1 - rr0 + 1, b0 - cc0 : b1 - cc0 + 1]
        dil_masks.append(((a0, b0, a1, b1), dd))
        cover[r0 : r1 + 1, c0 : c1 + 1] += inst.mask.astype(np.uint16)
    touching = 0
    for inst, ((a0, b0, a1, b1), dd) in zip(instances, dil_masks, strict=True):
        own = np.zeros((a1 - a0 + 1, b1 - b0 + 1), np.uint16)
        r0, c0, r1, c1 = inst.bbox
        own[r0 - a0 : r1 - a0 + 1, c0 - b0 : c1 - b0 + 1] = inst.mask
        others = cover[a0 : a1 + 1, b0 : b1 + 1] - own
        if np.any((dd > 0) & (others > 0)):
            touching += 1
    return touching / n


# --------------------------------------------------------------------------------------------
# Populations and regimes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """A particle population for :func:`generate`.

    Parameters
    ----------
    median_diameter_nm : float
        Median of the log-normal equivalent-diameter distribution.
    sigma_log : float
        σ of ln(diameter) (0 → monodisperse).
    coverage : float
        Target fraction of the field covered by particles (sets the particle count).
    overlap_fraction : float
        Fraction of particles placed touching or overlapping another one (in clusters of 2–3).
    shapes : tuple of str
        Shapes to draw from.
    shape_weights : tuple of float or None
        Probabilities of ``shapes`` (None: uniform).
    min_diameter_px : float
        Diameters are redrawn until at least this many pixels (a particle must be visible).
    max_particles : int
        Hard cap on the count.
    aggregate_fraction : float
        Fraction of the particles placed in compact aggregates (neighbours touching, slightly
        overlapping: agglomerates, close-packed monolayers); ``overlap_fraction`` applies to
        the others.
    aggregate_size : (int, int)
        Smallest and largest number of particles per aggregate (inclusive, ≥ 2).
    """

    median_diameter_nm: float = 5.0
    sigma_log: float = 0.25
    coverage: float = 0.15
    overlap_fraction: float = 0.2
    shapes: tuple[str, ...] = ("sphere",)
    shape_weights: tuple[float, ...] | None = None
    min_diameter_px: float = 3.0
    max_particles: int = 400
    aggregate_fraction: float = 0.0
    aggregate_size: tuple[int, int] = (4, 40)

    def __post_init__(self) -> None:
        if not 0.0 <= self.aggregate_fraction <= 1.0:
            raise ValueError(
                f"aggregate_fraction: expected in [0, 1], got {self.aggregate_fraction!r}"
            )
        lo, hi = self.aggregate_size
        if not 2 <= lo <= hi:
            raise ValueError(f"aggregate_size: expected 2 ≤ min ≤ max, got {self.aggregate_size!r}")
        if not self.median_diameter_nm > 0:
            raise ValueError(f"median_diameter_nm: expected > 0, got {self.median_diameter_nm!r}")
        if not 0.0 <= self.overlap_fraction <= 1.0:
            raise ValueError(f"overlap_fraction: expected in [0, 1], got {self.overlap_fraction!r}")
        if not 0.0 < self.coverage < 1.0:
            raise ValueError(f"coverage: expected in (0, 1), got {self.coverage!r}")
        for sh in self.shapes:
            if sh not in SHAPES:
                raise ValueError(f"shapes: expected members of {SHAPES}, got {sh!r}")


def place_particles(
    population: Population,
    shape: tuple[int, int],
    pixel_size_nm: float,
    rng: np.random.Generator,
) -> list[Particle]:
    """Draw and place a population: isolated particles, clusters of 2–3 touching ones and
    (``aggregate_fraction`` > 0) compact aggregates.

    Isolated particles keep a gap of at least 2 px (plus 5 % of the radii) to every other
    particle; cluster members sit at 55–95 % of the sum of their equivalent radii from a
    previous member, so they overlap or touch; aggregate members at 80–98 % of it, and at least
    75 % of it from every other member (touching neighbours, as in agglomerates and
    close-packed layers). Placement uses rejection sampling; particles that cannot be placed
    after a few hundred tries are dropped (very crowded fields), aggregates keep the members
    that found a place.
    """
    h, w = shape
    s = pixel_size_nm
    mean_area = (
        math.pi / 4 * population.median_diameter_nm**2 * math.exp(2 * population.sigma_log**2)
    )
    field_area = h * w * s * s
    n = int(rng.poisson(max(population.coverage * field_area / mean_area, 0.5)))
    n = int(min(max(n, 1), population.max_particles))
    dmin = population.min_diameter_px * s
    # log-normal diameters, each redrawn (up to 100 times) until at least dmin
    diam = population.median_diameter_nm * np.exp(population.sigma_log * rng.standard_normal(n))
    for _ in range(99):
        low = np.flatnonzero(diam < dmin)
        if low.size == 0:
            break
        diam[low] = population.median_diameter_nm * np.exp(
            population.sigma_log * rng.standard_normal(low.size)
        )
    np.maximum(diam, dmin, out=diam)
    weights = None
    if population.shape_weights is not None:
        wts = np.asarray(population.shape_weights, float)
        weights = wts / wts.sum()
    shapes = rng.choice(len(population.shapes), size=n, p=weights)

    # compact aggregates first (they take the first diameters and are placed first, while
    # there is room), then clusters of 2–3 and isolated particles
    aggregates: list[int] = []
    left = int(round(population.aggregate_fraction * n))
    a_lo, a_hi = population.aggregate_size
    while left >= a_lo:
        g = min(int(rng.integers(a_lo, a_hi + 1)), left)
        if left - g < a_lo:
            g = left
        aggregates.append(g)
        left -= g
    n_rest = n - sum(aggregates)
    n_touch = int(round(population.overlap_fraction * n_rest))
    groups: list[int] = []
    left = n_touch
    while left >= 2:
        g = 3 if (left >= 3 and rng.random() < 0.35) else 2
        if left - g == 1:
            g = left if left <= 3 else 2
        groups.append(g)
        left -= g
    groups += [1] * (n_rest - sum(groups))
    order = rng.permutation(len(groups))
    # Rejection sampling in the core (rules: cpp/include/antema/synth_place.hpp); the groups
    # are tried in this order, their members being consecutive diameters.
    sizes = aggregates + [groups[g] for g in order]
    kinds = [1] * len(aggregates) + [0] * len(groups)
    member, ys, xs = _core.synth_place(
        diam,
        np.asarray(sizes, dtype=np.int32),
        h * s,
        w * s,
        2.0 * s,
        int(rng.integers(0, 2**63)),
        np.asarray(kinds, dtype=np.int32),
    )
    return make_particles(
        rng,
        ys,
        xs,
        diam[member],
        [population.shapes[int(k)] for k in shapes[member]],
        first_identity=1,
    )


def draw_imaging(regime: str, rng: np.random.Generator, median_diameter_nm: float = 5.0) -> Imaging:
    """Imaging conditions drawn for a regime (see the module docstring).

    The particle contrast is drawn directly: ``C``, the relative darkening (bright field) or
    brightening (HAADF) at the centre of a median-sized sphere, and the support texture and
    lattice amplitudes are drawn relative to it, so every regime spans a controlled range of
    signal-to-background ratios.
    """

    def lu(a: float, b: float) -> float:  # log-uniform
        return float(math.exp(rng.uniform(math.log(a), math.log(b))))

    d = max(float(median_diameter_nm), 1e-3)
    if regime in ("tem", "hrtem", "lowdose"):
        c = {"tem": (0.2, 0.7), "hrtem": (0.15, 0.6), "lowdose": (0.25, 0.6)}[regime]
        contrast = float(rng.uniform(*c))
        hr = regime == "hrtem"
        return Imaging(
            style="bf",
            mu_per_nm=-math.log(1.0 - contrast) / d,
            background=1.0,
            carbon_amplitude=contrast * float(rng.uniform(0.05, 0.3)),
            carbon_grain_nm=float(rng.uniform(0.3, 1.0)),
            lattice_amplitude=float(rng.uniform(0.1, 0.4)) if hr else 0.0,
            # HRTEM: σ 0.02–0.15 nm, log-uniform. Below about 0.06 nm the 0.20–0.24 nm fringes
            # keep ≥ 20 % of their amplitude (a lattice-resolving microscope near focus, about
            # half the fields); above it they fade (defocus, lower resolution).
            blur_nm=lu(0.02, 0.15) if hr else lu(0.1, 1.2),
            fresnel_amplitude=float(rng.uniform(-0.3, 1.5)),
            fresnel_width_nm=float(rng.uniform(0.2, 1.0)) if hr else lu(0.5, 4.0),
            dose_per_px=lu(2.0, 15.0) if regime == "lowdose" else lu(30.0, 3000.0),
            gradient=float(rng.uniform(0.0, 0.3)),
            gain_sigma=float(rng.uniform(0.0, 0.06)),
        )
    if regime == "haadf":
        background = lu(0.05, 0.4)
        rel = lu(0.5, 8.0)  # particle centre signal / background
        gamma = float(rng.uniform(0.6, 1.0))
        return Imaging(
            style="haadf",
            mu_per_nm=rel * background / d**gamma,
            gamma=gamma,
            background=background,
            carbon_amplitude=min(rel, 3.0) * float(rng.uniform(0.03, 0.2)),
            carbon_grain_nm=float(rng.uniform(0.3, 1.0)),
            lattice_amplitude=float(rng.uniform(0.1, 0.6)),
            blur_nm=lu(0.03, 0.25),
            dose_per_px=lu(10.0, 500.0),
            gradient=float(rng.uniform(0.0, 0.3)),
            gain_sigma=float(rng.uniform(0.0, 0.05)),
            scan_jitter=float(rng.uniform(0.0, 0.03)),
        )
    if regime == "ultrasmall":
        if rng.random() < 0.5:
            contrast = float(rng.uniform(0.08, 0.25))
            return replace(
                draw_imaging("hrtem", rng, d),
                mu_per_nm=-math.log(1.0 - contrast) / d,
                carbon_amplitude=contrast * float(rng.uniform(0.05, 0.25)),
                dose_per_px=lu(100.0, 3000.0),
            )
        im = draw_imaging("haadf", rng, d)
        rel = lu(0.3, 2.0)
        return replace(
            im,
            mu_per_nm=rel * im.background / d**im.gamma,
            carbon_amplitude=rel * float(rng.uniform(0.03, 0.15)),
        )
    raise ValueError(f"regime: expected one of {REGIMES + ('mixed',)}, got {regime!r}")


def _draw_scale(
    regime: str, rng: np.random.Generator, shape: tuple[int, int]
) -> tuple[float, float]:
    """(pixel size nm/px, median diameter nm) for a regime, keeping particles 4–max px wide."""

    def lu(a: float, b: float) -> float:
        return float(math.exp(rng.uniform(math.log(a), math.log(b))))

    max_px = max(8.0, min(shape) / 3.0)
    ranges = {  # pixel size range, diameter range (nm)
        "tem": ((0.1, 1.0), (3.0, 50.0)),
        "lowdose": ((0.1, 1.0), (3.0, 50.0)),
        "hrtem": ((0.02, 0.1), (1.0, 15.0)),
        "haadf": ((0.02, 1.0), (1.0, 50.0)),
        "ultrasmall": ((0.02, 0.12), (1.0, 3.0)),
    }
    (p0, p1), (d0, d1) = ranges[regime]
    for _ in range(100):
        px = lu(p0, p1)
        lo, hi = max(d0, 4.0 * px), min(d1, max_px * px)
        if lo < hi:
            return px, lu(lo, hi)
    px = p0
    return px, max(d0, 4.0 * px)


def generate(
    seed: int | np.random.Generator | None = None,
    shape: tuple[int, int] = (256, 256),
    regime: str = "mixed",
    *,
    pixel_size_nm: float | None = None,
    population: Population | None = None,
    imaging: Imaging | None = None,
    film_hole: bool | None = None,
    sparse: bool = False,
) -> SynthImage:
    """Generate one synthetic micrograph with its ground truth.

    Parameters
    ----------
    seed : int, Generator or None
        Seed (same seed and arguments → same image).
    shape : (int, int)
        Image shape.
    regime : {"tem", "hrtem", "haadf", "ultrasmall", "lowdose", "mixed"}
        Imaging regime; ``"mixed"`` picks one at random.
    pixel_size_nm : float, optional
        Override the drawn pixel size.
    population : Population, optional
        Override the drawn population.
    imaging : Imaging, optional
        Override the drawn imaging conditions.
    film_hole : bool, optional
        Put the edge of a hole in the support film into the field (:func:`draw_film`; most
        particles in the hole are removed, those on or over the edge stay). None: one field in
        seven, drawn. The hole's level is drawn with the imaging conditions (bright field
        1.05–1.5× the film, HAADF 0–0.5×); a given ``imaging`` keeps its ``vacuum_level``.
    sparse : bool
        A sparse field: the drawn population's coverage is replaced by one drawn log-uniform
        in 0.0005–0.02 and its aggregates are dropped, so the field holds a few particles or
        none (at least half a particle expected) on a wide area of support, as in low-loading
        catalysts. There the percentile scaling of the preprocessing stretches the support's
        texture to full contrast, which a network must learn not to take for particles. Only
        with the drawn population (not with ``population``); False (default) draws nothing
        more, so the other fields of a seed are unchanged.

    Returns
    -------
    SynthImage
    """
    if sparse and population is not None:
        raise ValueError("sparse: draws its own population; do not pass population too")
    rng = np.random.default_rng(seed)
    if regime == "mixed":
        regime = str(rng.choice(REGIMES, p=[0.3, 0.2, 0.2, 0.15, 0.15]))
    if regime not in REGIMES:
        raise ValueError(f"regime: expected one of {REGIMES + ('mixed',)}, got {regime!r}")
    px, dmed = _draw_scale(regime, rng, shape)
    if pixel_size_nm is not None:
        px = float(pixel_size_nm)
    if population is None:
        if regime in ("hrtem", "ultrasmall", "haadf") and rng.random() < 0.5:
            shapes: tuple[str, ...] = ("sphere", "truncated_octahedron", "octahedron", "cube")
            wts: tuple[float, ...] | None = (0.4, 0.3, 0.15, 0.15)
        else:
            shapes = SHAPES
            wts = (0.4, 0.15, 0.1, 0.08, 0.12, 0.08, 0.07)
        # three fields in ten hold compact aggregates (agglomerates, close-packed layers)
        aggregated = rng.random() < 0.3
        population = Population(
            median_diameter_nm=dmed,
            sigma_log=float(rng.uniform(0.05, 0.4)),
            coverage=float(rng.uniform(0.15, 0.5) if aggregated else rng.uniform(0.05, 0.35)),
            overlap_fraction=float(rng.uniform(0.0, 0.5)),
            shapes=shapes,
            shape_weights=wts,
            aggregate_fraction=float(rng.uniform(0.4, 1.0)) if aggregated else 0.0,
            aggregate_size=(4, int(rng.integers(10, 81))) if aggregated else (4, 40),
        )
        if sparse:
            cov = math.exp(rng.uniform(math.log(SPARSE_COVERAGE[0]), math.log(SPARSE_COVERAGE[1])))
            population = replace(population, coverage=float(cov), aggregate_fraction=0.0)
    if film_hole is None:
        film_hole = bool(rng.random() < 1.0 / 7.0)
    if imaging is None:
        imaging = draw_imaging(regime, rng, population.median_diameter_nm)
        if film_hole:
            vac = rng.uniform(1.05, 1.5) if imaging.style == "bf" else rng.uniform(0.0, 0.5)
            imaging = replace(imaging, vacuum_level=float(vac))
    particles = place_particles(population, shape, px, rng)
    film = None
    if film_hole:
        film = draw_film(rng, shape, px)
        h, w = film.shape
        r = np.clip(np.rint([p.y_nm / px for p in particles]).astype(np.int64), 0, h - 1)
        c = np.clip(np.rint([p.x_nm / px for p in particles]).astype(np.int64), 0, w - 1)
        # particles rest on the film: nine in ten of those centred in the hole are removed
        keep = (film[r, c] >= 0.5) | (rng.random(len(particles)) < 0.1)
        particles = [p for p, k in zip(particles, keep.tolist(), strict=True) if k]
    out = render(particles, shape, px, imaging, rng, regime=regime, film=film)
    out.info = {
        "median_diameter_nm": population.median_diameter_nm,
        "sigma_log": population.sigma_log,
        "overlap_fraction": population.overlap_fraction,
        "coverage": population.coverage,
        "aggregate_fraction": population.aggregate_fraction,
        "film_hole_fraction": float(np.mean(film < 0.5)) if film is not None else 0.0,
    }
    return out


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Scale a synthetic image to the full uint16 range (for writing TIFF files)."""
    a = np.asarray(image, np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint16)
    return np.rint((a - lo) / (hi - lo) * 65535).astype(np.uint16)


def write_dataset(
    out: str | Path,
    count: int,
    shape: tuple[int, int] = (512, 512),
    regime: str = "mixed",
    seed: int = 0,
) -> list[dict[str, object]]:
    """Write ``count`` synthetic micrographs with their ground truth to a folder.

    Files per image ``k``: ``images/synth_k.tif`` (uint16, pixel size in the ImageJ metadata
    and resolution tags), ``labels/synth_k.tif`` (int32 overlap-resolved instance labels),
    ``masks/synth_k.png`` (0/255 semantic mask); plus ``particles.csv`` (one row per particle:
    image, identity, equivalent diameter, area, bbox, touches_border) and ``images.csv``.

    Returns
    -------
    list of dict
        One summary row per image (as written to ``images.csv``).
    """
    import csv

    import cv2
    import tifffile

    if count < 0:
        raise ValueError(f"count: expected ≥ 0, got {count!r}")
    root = Path(out)
    for sub in ("images", "labels", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    with open(root / "particles.csv", "w", newline="") as fp:
        pw = csv.writer(fp)
        pw.writerow(
            [
                "image",
                "identity",
                "equivalent_diameter_nm",
                "area_px",
                "row_min",
                "col_min",
                "row_max",
                "col_max",
                "touches_border",
            ]
        )
        for k in range(count):
            s = generate(np.random.default_rng([seed, k]), shape, regime)
            name = f"synth_{k:04d}"
            px = s.pixel_size_nm
            tifffile.imwrite(
                root / "images" / f"{name}.tif",
                to_uint16(s.image),
                imagej=True,
                resolution=(1.0 / px, 1.0 / px),
                metadata={"unit": "nm", "spacing": px},
            )
            tifffile.imwrite(root / "labels" / f"{name}.tif", s.labels)
            cv2.imwrite(str(root / "masks" / f"{name}.png"), s.semantic.astype(np.uint8) * 255)
            for inst in s.instances:
                pw.writerow(
                    [
                        name,
                        inst.identity,
                        f"{inst.equivalent_diameter_nm:.6g}",
                        inst.area_px,
                        *inst.bbox,
                        int(inst.touches_border),
                    ]
                )
            rows.append(
                {
                    "image": name,
                    "regime": s.regime,
                    "pixel_size_nm": px,
                    "n_particles": len(s.instances),
                    "touching_fraction": s.touching_fraction,
                    "median_diameter_nm": s.info.get("median_diameter_nm", math.nan),
                    "film_hole_fraction": s.info.get("film_hole_fraction", 0.0),
                }
            )
    with open(root / "images.csv", "w", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]) if rows else ["image"])
        w.writeheader()
        w.writerows(rows)
    return rows
