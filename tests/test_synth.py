"""Synthetic micrograph generator: reproducibility, exact masks, size and overlap control."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import synth_reference
from antema_fast import synth
from antema_fast.synth import (
    Imaging,
    Particle,
    Population,
    SynthImage,
    generate,
    make_particle,
    render,
)

CLEAN_BF = Imaging(
    style="bf", mu_per_nm=0.05, carbon_amplitude=0.0, blur_nm=0.0, dose_per_px=math.inf
)


@pytest.mark.parametrize("regime", [*synth.REGIMES, "mixed"])
def test_same_seed_same_image(regime: str) -> None:
    a = generate(7, (96, 96), regime)
    b = generate(7, (96, 96), regime)
    c = generate(8, (96, 96), regime)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.pixel_size_nm == b.pixel_size_nm
    assert not np.array_equal(a.image, c.image)
    assert a.image.dtype == np.float32 and a.image.shape == (96, 96)
    assert np.isfinite(a.image).all()


@pytest.mark.parametrize("seed", range(6))
def test_masks_agree_with_rendered_particles(seed: int) -> None:
    s = generate(seed, (128, 128), "mixed")
    stack = s.instance_stack()
    assert stack.shape[0] == len(s.instances) == len(s.particles)
    np.testing.assert_array_equal(stack.any(axis=0), s.semantic)
    np.testing.assert_array_equal(stack.sum(axis=0), s.overlap_count)
    np.testing.assert_array_equal(s.labels > 0, s.semantic)
    np.testing.assert_array_equal(s.thickness_nm > 0, s.semantic)
    for k, inst in enumerate(s.instances, start=1):
        assert inst.area_px == int(inst.mask.sum()) > 0
        d = 2 * math.sqrt(inst.area_px / math.pi) * s.pixel_size_nm
        assert inst.equivalent_diameter_nm == pytest.approx(d)
        # a pixel labelled k belongs to instance k's own mask
        assert np.all(stack[k - 1][s.labels == k])
    np.testing.assert_allclose(s.diameters_nm, [i.equivalent_diameter_nm for i in s.instances])


def test_sphere_mask_is_the_analytic_disc() -> None:
    px = 0.5
    p = Particle(y_nm=20.3, x_nm=18.1, scale_nm=12.0)
    s = render([p], (80, 80), px, CLEAN_BF, 0)
    rr, cc = np.mgrid[0:80, 0:80]
    disc = (rr * px - 20.3) ** 2 + (cc * px - 18.1) ** 2 < 6.0**2
    np.testing.assert_array_equal(s.semantic, disc)
    # centre thickness is the diameter, and bright-field contrast is exp(-mu T)
    t = s.thickness_nm
    assert float(t.max()) == pytest.approx(12.0, rel=0.01)
    np.testing.assert_allclose(s.image, np.exp(-0.05 * t * p.contrast), rtol=1e-5)


def test_overlap_is_darker_in_bright_field_and_brighter_in_haadf() -> None:
    a = Particle(y_nm=20.0, x_nm=16.0, scale_nm=14.0)
    b = Particle(y_nm=20.0, x_nm=26.0, scale_nm=14.0)
    both = render([a, b], (40, 44), 1.0, CLEAN_BF, 0)
    only_a = render([a], (40, 44), 1.0, CLEAN_BF, 0)
    ov = both.overlap_count >= 2
    assert ov.sum() > 20
    assert np.all(both.image[ov] < only_a.image[ov])
    haadf = Imaging(
        style="haadf",
        mu_per_nm=0.1,
        background=0.1,
        carbon_amplitude=0.0,
        blur_nm=0.0,
        dose_per_px=math.inf,
    )
    hb = render([a, b], (40, 44), 1.0, haadf, 0)
    ha = render([a], (40, 44), 1.0, haadf, 0)
    assert np.all(hb.image[ov] > ha.image[ov])
    assert hb.image[hb.semantic].mean() > hb.image[~hb.semantic].mean()


@pytest.mark.parametrize("shape", synth.SHAPES)
def test_make_particle_hits_the_requested_equivalent_diameter(shape: str) -> None:
    rng = np.random.default_rng(3)
    px = 0.1
    p = make_particle(rng, 6.0, 6.0, 6.0, shape)  # 60 px equivalent diameter
    s = render([p], (120, 120), px, CLEAN_BF, 0)
    assert len(s.instances) == 1
    assert s.instances[0].equivalent_diameter_nm == pytest.approx(6.0, rel=0.03)


@pytest.mark.parametrize(
    ("shape", "aspect"),
    [("rod", 5.0), ("rod", 2.0), ("plate", 4.0), ("truncated_octahedron", 2.0), ("ellipsoid", 1.8)],
)
def test_elongated_and_flat_shapes_hit_the_requested_diameter(shape: str, aspect: float) -> None:
    """Exact projected areas: long rods (half length beyond the unit extent) included."""
    rng = np.random.default_rng(11)
    for _ in range(3):
        p = make_particle(rng, 8.0, 8.0, 5.0, shape, aspect=aspect)
        s = render([p], (160, 160), 0.1, CLEAN_BF, 0)
        assert s.instances[0].equivalent_diameter_nm == pytest.approx(5.0, rel=0.02)


@pytest.mark.parametrize(
    ("shape", "aspect"),
    [
        ("cube", 1.0),
        ("octahedron", 1.0),
        ("truncated_octahedron", 1.0),
        ("truncated_octahedron", 1.6),
        ("truncated_octahedron", 2.0),
        ("plate", 2.5),
    ],
)
def test_polyhedron_vertices_are_the_half_space_intersection(shape: str, aspect: float) -> None:
    import itertools

    normals, offsets = synth._halfspaces(shape, aspect)
    brute = []
    for tri in itertools.combinations(range(len(offsets)), 3):
        a = normals[list(tri)]
        if abs(np.linalg.det(a)) < 1e-9:
            continue
        v = np.linalg.solve(a, offsets[list(tri)])
        if np.all(normals @ v <= offsets + 1e-9):
            brute.append(v)
    want = np.unique(np.round(np.array(brute), 9), axis=0)
    got = np.unique(np.round(synth_reference.polyhedron_vertices(shape, aspect), 9), axis=0)
    np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize(
    ("shape", "aspect"),
    [
        ("cube", 1.0),
        ("octahedron", 1.0),
        ("truncated_octahedron", 1.0),
        ("truncated_octahedron", 1.37),
        ("truncated_octahedron", 2.0),
        ("plate", 2.0),
        ("plate", 3.3),
    ],
)
def test_shadow_area_equals_the_hull_of_the_projected_vertices(shape: str, aspect: float) -> None:
    rng = np.random.default_rng(21)
    qs = synth._quaternion_rotations(rng.standard_normal((40, 4)))
    for rot in qs:
        p = Particle(0.0, 0.0, 1.0, shape, tuple(rot.ravel().tolist()), aspect)
        assert synth.projected_area_unit(p) == pytest.approx(
            synth_reference.projected_area_hull(p), rel=1e-5
        )
    # face areas add up to the surface of the solid (sums of the faces' polygon areas)
    areas = synth._face_areas(shape, aspect)
    assert len(areas) == len(synth._halfspaces(shape, aspect)[1]) and np.all(areas >= 0)


def test_make_particles_draws_proper_orientations_and_identities() -> None:
    rng = np.random.default_rng(2)
    shapes = list(synth.SHAPES) * 30
    n = len(shapes)
    ps = synth.make_particles(
        rng, np.arange(n, dtype=float), np.zeros(n), np.full(n, 4.0), shapes, first_identity=5
    )
    assert [p.identity for p in ps] == list(range(5, 5 + n))
    for p in ps:
        r = np.asarray(p.rotation).reshape(3, 3)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        lo, hi = synth._ASPECT_RANGE.get(p.shape, (1.0, 1.0))
        assert lo <= p.aspect <= hi
        assert 0.8 <= p.contrast <= 1.2 and p.lattice_spacing_nm in synth._LATTICE_SPACINGS_NM
        if p.shape in ("cube", "plate"):  # lying on a face, tilted by at most 15°
            assert r[2, 2] >= math.cos(math.radians(15)) - 1e-12
        elif p.shape in ("sphere", "ellipsoid", "rod"):  # flat on the support
            np.testing.assert_allclose(r[2], [0.0, 0.0, 1.0], atol=1e-12)
    # 3-D orientations of octahedra are uniform: the beam axis in body coordinates is
    # uniform on the sphere, so its z component is uniform on [-1, 1]
    many = synth.make_particles(
        rng, [0.0] * 3000, [0.0] * 3000, [4.0] * 3000, ["octahedron"] * 3000
    )
    zz = np.array([np.asarray(p.rotation).reshape(3, 3)[2, 2] for p in many])
    assert abs(float(zz.mean())) < 0.05 and float(zz.var()) == pytest.approx(1 / 3, rel=0.1)
    assert synth.make_particles(rng, [], [], [], []) == []
    with pytest.raises(ValueError, match="same length"):
        synth.make_particles(rng, [0.0], [0.0, 1.0], [1.0], ["sphere"])
    with pytest.raises(ValueError, match="shape"):
        synth.make_particles(rng, [0.0], [0.0], [1.0], ["blob"])


def test_requested_size_distribution_is_met() -> None:
    pop = Population(
        median_diameter_nm=4.0,
        sigma_log=0.2,
        coverage=0.15,
        overlap_fraction=0.0,
        shapes=("sphere",),
        min_diameter_px=1.0,
    )
    d = []
    for seed in range(4):
        s = generate(seed, (384, 384), "tem", pixel_size_nm=0.2, population=pop)
        d += [i.equivalent_diameter_nm for i in s.instances if not i.touches_border]
    d = np.asarray(d)
    assert d.size > 100
    assert float(np.median(d)) == pytest.approx(4.0, rel=0.05)
    assert float(np.std(np.log(d))) == pytest.approx(0.2, abs=0.04)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.6])
def test_requested_overlap_fraction_is_met(fraction: float) -> None:
    pop = Population(
        median_diameter_nm=3.0,
        sigma_log=0.15,
        coverage=0.12,
        overlap_fraction=fraction,
        shapes=("sphere",),
    )
    got = []
    for seed in range(4):
        s = generate(seed, (320, 320), "tem", pixel_size_nm=0.2, population=pop)
        got.append(s.touching_fraction)
    assert float(np.mean(got)) == pytest.approx(fraction, abs=0.08)


def test_haadf_particles_are_bright_and_bf_dark() -> None:
    for regime, sign in (("haadf", 1.0), ("tem", -1.0)):
        diffs = []
        for seed in range(5):
            s = generate(seed, (128, 128), regime)
            if s.semantic.sum() < 20 or (~s.semantic).sum() < 20:
                continue
            diffs.append(s.image[s.semantic].mean() - s.image[~s.semantic].mean())
        assert diffs and all(sign * v > 0 for v in diffs)


LATTICE_BF = replace(CLEAN_BF, lattice_amplitude=0.3)
FRINGED = Particle(y_nm=3.2, x_nm=3.2, scale_nm=4.0, lattice_spacing_nm=0.235)


def _fringe_signal(blur_nm: float = 0.0) -> tuple[np.ndarray, SynthImage]:
    """The fringes alone (image with lattice minus without) of FRINGED, and its render."""
    s = render([FRINGED], (128, 128), 0.05, replace(LATTICE_BF, blur_nm=blur_nm), 0)
    flat = render([FRINGED], (128, 128), 0.05, replace(CLEAN_BF, blur_nm=blur_nm), 0)
    return s.image - flat.image, s


def test_lattice_fringes_only_inside_particles_at_hrtem_scale() -> None:
    diff, s = _fringe_signal()
    assert np.abs(diff[s.thickness_nm > 3.0]).max() > 0.05
    assert np.abs(diff[~s.semantic]).max() == 0.0


def test_hrtem_fields_resolve_the_lattice_about_half_the_time() -> None:
    # "HRTEM" means lattice-resolved imaging: with the drawn blur, the 0.235 nm fringes of a
    # particle keep >= 20 % of their unblurred amplitude in about half of the fields, and
    # fade in the rest (defocus, lower resolution).
    def fringes(blur_nm: float) -> float:
        diff, s = _fringe_signal(blur_nm)
        return float(diff[s.thickness_nm > 3.0].std())

    ref = fringes(0.0)
    rng = np.random.default_rng(3)
    kept = [fringes(synth.draw_imaging("hrtem", rng, 5.0).blur_nm) / ref for _ in range(40)]
    visible = float(np.mean(np.asarray(kept) >= 0.2))
    assert 0.35 <= visible <= 0.8, kept


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="regime"):
        generate(0, (32, 32), "xray")
    with pytest.raises(ValueError, match="pixel_size_nm"):
        render([], (8, 8), 0.0, CLEAN_BF)
    with pytest.raises(ValueError, match="shape"):
        Particle(0.0, 0.0, 1.0, shape="star")
    with pytest.raises(ValueError, match="overlap_fraction"):
        Population(overlap_fraction=1.5)


def test_write_dataset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tifffile

    rows = synth.write_dataset(tmp_path, 2, (64, 64), "tem", seed=5)
    assert len(rows) == 2
    img = tifffile.imread(tmp_path / "images" / "synth_0000.tif")
    lab = tifffile.imread(tmp_path / "labels" / "synth_0000.tif")
    assert img.dtype == np.uint16 and lab.shape == (64, 64)
    text = (tmp_path / "particles.csv").read_text().splitlines()
    assert text[0].startswith("image,identity,equivalent_diameter_nm")
    assert len(text) - 1 == sum(int(r["n_particles"]) for r in rows)  # type: ignore[call-overload]
    index = (tmp_path / "images.csv").read_text().splitlines()
    assert index[0].endswith(",film_hole_fraction") and len(index) == 3


def test_cli_synth(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from antema_fast.cli import main

    assert main(["synth", str(tmp_path), "-n", "2", "--size", "48", "64", "--regime", "haadf"]) == 0
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [
        "synth_0000.png",
        "synth_0001.png",
    ]


@pytest.mark.parametrize("regime", synth.REGIMES)
def test_compiled_rasterisation_equals_the_numpy_reference(regime: str) -> None:
    """Canvases bit for bit, kept particles, boxes, masks: C++ kernel vs synth_reference."""
    import synth_reference as ref
    from antema_fast import _core

    for k in range(4):
        rng = np.random.default_rng([9, k])
        px, dmed = synth._draw_scale(regime, rng, (200, 230))
        pop = Population(median_diameter_nm=dmed, sigma_log=0.3, coverage=0.3, overlap_fraction=0.4)
        parts = synth.place_particles(pop, (200, 230), px, rng)
        # particles cut by (or beyond) the border are part of the contract too
        parts.append(make_particle(rng, -0.2 * dmed, 100 * px, dmed, "cube"))
        parts.append(make_particle(rng, 1e4, 1e4, dmed, "sphere"))
        for haadf in (False, True):
            want, kept = ref.rasterize(parts, (200, 230), px, True, haadf)
            got = {n: np.zeros_like(a) for n, a in want.items()}
            res = _core.synth_rasterize(
                synth._solid_table(parts, px, True), px, got["thick"], got["best"],
                got["labels"], got["count"], got["lattice"], got["contrast_w"], True, haadf,
            )  # fmt: skip
            for name in want:
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)
            assert res["index"].tolist() == [i for i, _, _ in kept]
            for j, (_, bbox, mask) in enumerate(kept):
                assert tuple(res["bbox"][j]) == bbox
                m = res["masks"][res["offsets"][j] : res["offsets"][j + 1]]
                np.testing.assert_array_equal(m.reshape(mask.shape).astype(bool), mask)


def _noisy(lam: np.ndarray, seed: int, threads: int = 0) -> np.ndarray:
    """Poisson deviates of ``lam`` through ``_core.synth_expose`` (no gradient, no gain)."""
    from antema_fast import _core

    img = np.ascontiguousarray(lam, dtype=np.float32).copy()
    _core.synth_expose(img, None, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, seed, threads)
    return img


@pytest.mark.parametrize("lam", [0.3, 2.0, 9.9, 10.0, 37.0, 1500.0])
def test_shot_noise_is_poisson(lam: float) -> None:
    from scipy import stats

    n = 200_000
    x = _noisy(np.full((400, 500), lam, np.float32), 123)
    assert x.dtype == np.float32 and np.all(x == np.round(x)) and x.min() >= 0
    se = math.sqrt(lam / n)
    assert abs(float(x.mean()) - lam) < 5 * se
    assert float(x.var()) == pytest.approx(lam, rel=0.03)
    # distribution: chi-square over the bins holding 99.8 % of the mass
    lo, hi = (int(v) for v in stats.poisson.ppf([0.001, 0.999], lam))
    ks = np.arange(lo, hi + 1)
    obs = np.array([np.sum(x == k) for k in ks], float)
    exp = n * stats.poisson.pmf(ks, lam)
    keep = exp > 5
    chi2 = float(np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep]))
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


def test_shot_noise_is_seeded_thread_independent_and_checks_its_input() -> None:
    from antema_fast import _core

    lam = np.linspace(0, 50, 200 * 300, dtype=np.float32).reshape(200, 300)
    a, b = _noisy(lam, 5), _noisy(lam, 5)
    np.testing.assert_array_equal(a, b)
    for threads in (1, 2, 3, 7):  # blocks carry their own seeds: any split, same image
        np.testing.assert_array_equal(_noisy(lam, 5, threads), a)
    assert not np.array_equal(a, _noisy(lam, 6))
    assert np.all(a[lam == 0] == 0)
    # negative intensities are clipped to 0 before the noise
    assert np.all(_noisy(np.full((3, 4), -2.0, np.float32), 1) == 0)
    # rows of different blocks are independent draws (no repeated block seeds)
    flat = _noisy(np.full((64, 64), 1000.0, np.float32), 9)
    assert len({tuple(r) for r in flat[::16].tolist()}) == 4
    with pytest.raises(ValueError, match="non-finite"):
        _noisy(np.array([[1.0, np.nan]], np.float32), 1)
    with pytest.raises(ValueError, match="non-finite"):
        _noisy(np.array([[np.inf]], np.float32), 1)
    with pytest.raises(TypeError):
        _core.synth_expose(lam.astype(np.float64), None, 0, 0, 0, 0, 1, 0, 1, 1)
    with pytest.raises(ValueError, match="gain_field"):
        _core.synth_expose(lam.copy(), np.ones((2, 2), np.float32), 0, 0, 0, 0, 1, 0, 1, 1)


@pytest.mark.parametrize("style", ["bf", "haadf"])
@pytest.mark.parametrize("lattice_amp", [0.0, 0.3])
@pytest.mark.parametrize("with_film", [False, True])
def test_compiled_image_formation_equals_the_numpy_reference(
    style: str, lattice_amp: float, with_film: bool
) -> None:
    from antema_fast import _core

    rng = np.random.default_rng(3)
    h, w = 90, 70
    thick = np.maximum(rng.normal(0.5, 1.0, (h, w)), 0.0).astype(np.float32)
    contrast_w = (thick * rng.uniform(0.8, 1.2, (h, w))).astype(np.float32)
    lattice = (thick * rng.uniform(-0.5, 0.5, (h, w))).astype(np.float32)
    tex = rng.normal(0.2, 3.0, (h, w)).astype(np.float32)
    im = Imaging(
        style=style,
        mu_per_nm=0.4,
        gamma=0.8 if style == "haadf" else 1.0,
        background=0.9 if style == "bf" else 0.2,
        carbon_amplitude=0.1,
        lattice_amplitude=lattice_amp,
        vacuum_level=1.3 if style == "bf" else 0.2,
    )
    film = rng.uniform(-0.2, 1.2, (h, w)).clip(0, 1).astype(np.float32) if with_film else None
    got = _core.synth_form(
        thick,
        contrast_w,
        lattice,
        tex,
        style == "haadf",
        im.mu_per_nm,
        im.gamma,
        im.background,
        im.carbon_amplitude,
        im.lattice_amplitude,
        film,
        im.vacuum_level,
    )
    want = synth_reference.form(thick, contrast_w, lattice, tex, im, film)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shape of thick"):
        _core.synth_form(thick, contrast_w[:-1], lattice, tex, False, 1, 1, 1, 0.1, 0)
    with pytest.raises(ValueError, match="film must have the shape"):
        _core.synth_form(thick, contrast_w, lattice, tex, False, 1, 1, 1, 0.1, 0, thick[:-1])
    with pytest.raises(ValueError, match="vacuum"):
        _core.synth_form(thick, contrast_w, lattice, tex, False, 1, 1, 1, 0.1, 0, None, np.nan)
    if with_film:  # a full film is the frame without a film map
        ones = np.ones_like(thick)
        args = (thick, contrast_w, lattice, tex, style == "haadf", 0.4, 0.8, 0.5, 0.1, lattice_amp)
        np.testing.assert_array_equal(_core.synth_form(*args, ones, 1.7), _core.synth_form(*args))


@pytest.mark.parametrize("hole_fraction", [0.1, 0.35, 0.6])
def test_film_cover_has_the_asked_hole_and_a_tapered_edge(hole_fraction: float) -> None:
    film = synth.draw_film(5, (200, 240), 0.5, hole_fraction)
    assert film.shape == (200, 240) and film.dtype == np.float32
    assert film.min() >= 0.0 and film.max() <= 1.0
    assert abs(float(np.mean(film < 0.5)) - hole_fraction) < 0.03
    edge = (film > 0.02) & (film < 0.98)
    assert 0 < np.count_nonzero(edge) < 0.3 * film.size  # a tapered edge line, not a fog
    # the edge is a line through the frame: the hole is one or a few connected regions
    import cv2

    n, _ = cv2.connectedComponents((film < 0.5).astype(np.uint8))
    assert 2 <= n <= 4
    with pytest.raises(ValueError, match="hole_fraction"):
        synth.draw_film(5, (20, 20), 0.1, 1.5)


@pytest.mark.parametrize("regime", synth.REGIMES)
def test_sparse_fields_hold_few_particles_at_the_same_scale(regime: str) -> None:
    """A sparse field keeps the seed's pixel size and diameters, draws its coverage in
    ``SPARSE_COVERAGE`` without aggregates, and holds far fewer particles than the standard
    field of that seed; it cannot be combined with a given population."""
    n_plain = n_sparse = 0
    for seed in range(8):
        plain = synth.generate(seed, (192, 192), regime)
        s = synth.generate(seed, (192, 192), regime, sparse=True)
        assert s.pixel_size_nm == plain.pixel_size_nm
        assert s.info["median_diameter_nm"] == plain.info["median_diameter_nm"]
        lo, hi = synth.SPARSE_COVERAGE
        assert lo <= s.info["coverage"] <= hi and s.info["aggregate_fraction"] == 0.0
        n_plain += len(plain.instances)
        n_sparse += len(s.instances)
    assert n_sparse < 0.25 * n_plain
    with pytest.raises(ValueError, match="sparse"):
        synth.generate(0, (64, 64), regime, sparse=True, population=synth.Population())


@pytest.mark.parametrize("regime", synth.REGIMES)
def test_film_hole_fields(regime: str) -> None:
    from scipy import ndimage

    s = synth.generate(11, (192, 192), regime, film_hole=True)
    frac = s.info["film_hole_fraction"]
    assert 0.05 < frac < 0.65
    assert s.film is not None and abs(float(np.mean(s.film < 0.5)) - frac) < 1e-9
    im = s.imaging
    assert (im.vacuum_level > 1.0) if im.style == "bf" else (im.vacuum_level < 1.0)
    # the hole is brighter (BF) / darker (HAADF) than the film away from particles
    smooth = ndimage.uniform_filter(s.image.astype(np.float64), 9)
    far = ~ndimage.binary_dilation(s.semantic, iterations=6)
    lo, hi = np.percentile(smooth[far], [5, 95])
    ratio = hi / max(lo, 1e-9)
    assert ratio > (1.03 if im.style == "bf" else 1.4)
    # few particles sit in the hole: their centres are mostly on the film
    r = [min(max(round(p.y_nm / s.pixel_size_nm), 0), 191) for p in s.particles]
    c = [min(max(round(p.x_nm / s.pixel_size_nm), 0), 191) for p in s.particles]
    in_hole = float(np.mean(s.film[r, c] < 0.5)) if s.particles else 0.0
    assert in_hole < max(0.5 * frac, 0.2)
    plain = synth.generate(11, (192, 192), regime, film_hole=False)
    assert plain.info["film_hole_fraction"] == 0.0 and plain.film is None
    # rendering with a film map keeps the ground truth exact (only the background changes)
    cover = synth.draw_film(2, (192, 192), s.pixel_size_nm, 0.4)
    a = synth.render(s.particles, (192, 192), s.pixel_size_nm, im, 3)
    b = synth.render(s.particles, (192, 192), s.pixel_size_nm, im, 3, film=cover)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, b.image)
    with pytest.raises(ValueError, match="film: expected shape"):
        synth.render(s.particles, (192, 192), s.pixel_size_nm, im, 3, film=cover[:-1])
    with pytest.raises(ValueError, match="vacuum_level"):
        Imaging(vacuum_level=-1.0)


@pytest.mark.parametrize("gradient", [0.0, 0.3, 3.0])
@pytest.mark.parametrize("with_gain", [False, True])
def test_compiled_exposure_equals_the_numpy_reference(gradient: float, with_gain: bool) -> None:
    from antema_fast import _core

    rng = np.random.default_rng(4)
    img = rng.normal(0.8, 0.5, (40, 55)).astype(np.float32)  # some negative values
    field = rng.normal(0.0, 2.0, img.shape).astype(np.float32) if with_gain else None
    abc = (0.7, -0.4, 0.9)
    out = img.copy()
    _core.synth_expose(out, field, gradient, *abc, 1.1, 0.3, float("inf"), 0)
    want = synth_reference.expose_noiseless(img, field, gradient, abc, 1.1, 0.3)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    # with noise: mean-preserving (dose 1000 e/unit; means over the frame)
    noisy = img.copy()
    _core.synth_expose(noisy, field, gradient, *abc, 1.1, 0.3, 1000.0, 11)
    assert float(noisy.mean()) / 1000.0 == pytest.approx(float(want.mean()), rel=0.01)


def test_smooth_field_moments_and_upsampler_match_opencv() -> None:
    import cv2

    for shape in ((256, 256), (97, 301)):
        rng_a, rng_b = np.random.default_rng(8), np.random.default_rng(8)
        up, mean, sd = synth._smooth_field_raw(rng_a, shape, 4)
        g = rng_b.standard_normal((5, 5))
        ref = cv2.resize(g.astype(np.float32), shape[::-1], interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(up, ref, atol=2e-5)
        assert mean == pytest.approx(float(up.astype(np.float64).mean()), abs=1e-6)
        assert sd == pytest.approx(float(up.astype(np.float64).std()), rel=1e-5)
        f = (up - np.float32(mean)) / np.float32(sd)  # the normalised gain field
        assert abs(float(f.mean())) < 1e-5 and float(f.std()) == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_placement_keeps_its_rules(seed: int) -> None:
    from antema_fast import _core

    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(5, 60))
    groups = rng.choice([1, 1, 1, 2, 3], size=n_groups).astype(np.int32)
    diam = rng.lognormal(math.log(3.0), 0.4, int(groups.sum()))
    h_nm, w_nm, margin = 60.0, 45.0, 0.4
    member, ys, xs = _core.synth_place(diam, groups, h_nm, w_nm, margin, 99 + seed)
    assert len(member) == len(ys) == len(xs) > 0
    assert synth_reference.placement_violations(diam, groups, member, ys, xs, margin) == []
    again = _core.synth_place(diam, groups, h_nm, w_nm, margin, 99 + seed)
    for a, b in zip((member, ys, xs), again, strict=True):
        np.testing.assert_array_equal(a, b)
    r = diam[member] / 2
    assert np.all(ys >= -0.3 * r - 3 * diam.max()) and np.all(ys <= h_nm + 0.3 * r + 3 * diam.max())


@pytest.mark.parametrize("seed", range(4))
def test_aggregate_placement_keeps_its_rules(seed: int) -> None:
    from antema_fast import _core

    rng = np.random.default_rng(40 + seed)
    groups = np.array([30, 12, 2, 3, 1, 1, 1, 25, 2, 1], np.int32)
    kinds = np.array([1, 1, 0, 0, 0, 0, 0, 1, 0, 0], np.int32)
    diam = rng.lognormal(math.log(3.0), 0.2, int(groups.sum()))
    member, ys, xs = _core.synth_place(diam, groups, 80.0, 80.0, 0.4, 7 + seed, kinds)
    assert synth_reference.placement_violations(diam, groups, member, ys, xs, 0.4, kinds) == []
    # aggregates are compact: most of their members touch (within 0.98 (r_a + r_b)) at least
    # two others
    starts = np.concatenate([[0], np.cumsum(groups)])
    for gi in np.flatnonzero(kinds == 1):
        sel = (member >= starts[gi]) & (member < starts[gi + 1])
        assert sel.sum() >= 0.8 * groups[gi]  # nearly all members found a place
        r = diam[member[sel]] / 2
        d = np.hypot(ys[sel][:, None] - ys[sel][None], xs[sel][:, None] - xs[sel][None])
        touching = (d <= 0.98 * (r[:, None] + r[None]) + 1e-9).sum(axis=1) - 1
        assert np.mean(touching >= 2) > 0.5
    with pytest.raises(ValueError, match="kind"):
        _core.synth_place(diam, groups, 80.0, 80.0, 0.4, 1, np.full(len(groups), 2, np.int32))
    with pytest.raises(ValueError, match="one per group"):
        _core.synth_place(diam, groups, 80.0, 80.0, 0.4, 1, np.zeros(3, np.int32))


def test_aggregated_population_renders_touching_particles() -> None:
    pop = Population(
        median_diameter_nm=3.0,
        sigma_log=0.1,
        coverage=0.4,
        overlap_fraction=0.0,
        aggregate_fraction=1.0,
        aggregate_size=(10, 30),
    )
    s = generate(3, (256, 256), "tem", pixel_size_nm=0.3, population=pop)
    assert len(s.instances) > 50
    assert s.touching_fraction > 0.8
    import cv2

    n_comp = cv2.connectedComponents(s.semantic.astype(np.uint8), connectivity=8)[0] - 1
    assert n_comp < len(s.instances) / 4  # particles merge into a few large agglomerates
    none = replace(pop, aggregate_fraction=0.0)
    s0 = generate(3, (256, 256), "tem", pixel_size_nm=0.3, population=none)
    assert s0.touching_fraction < 0.1
    for bad in (
        {"aggregate_fraction": 1.5},
        {"aggregate_size": (1, 5)},
        {"aggregate_size": (9, 5)},
    ):
        with pytest.raises(ValueError, match="aggregate"):
            replace(pop, **bad)


def test_placement_fills_crowded_fields_and_checks_its_input() -> None:
    from antema_fast import _core

    diam = np.full(400, 2.0)
    groups = np.ones(400, np.int32)
    member, ys, xs = _core.synth_place(diam, groups, 20.0, 20.0, 0.1, 1)
    # a 20 × 20 nm field holds far fewer than 400 discs of 2.2 nm exclusion: some are dropped
    assert 20 < len(member) < 400
    assert synth_reference.placement_violations(diam, groups, member, ys, xs, 0.1) == []
    with pytest.raises(ValueError, match="sum to"):
        _core.synth_place(diam, np.ones(3, np.int32), 20.0, 20.0, 0.1, 1)
    with pytest.raises(ValueError, match="positive"):
        _core.synth_place(np.array([1.0, -1.0]), np.ones(2, np.int32), 20.0, 20.0, 0.1, 1)
    for h, w, margin in (
        (0.0, 20.0, 0.1),
        (math.inf, 20.0, 0.1),
        (20.0, math.nan, 0.1),
        (20.0, 20.0, -1.0),
    ):
        with pytest.raises(ValueError, match="field size"):
            _core.synth_place(diam, groups, h, w, margin, 1)


@pytest.mark.parametrize("grain_px", [1.5, 4.0, 12.0])
def test_support_texture_is_band_limited_around_its_grain(grain_px: float) -> None:
    h = w = 256
    rng = np.random.default_rng(5)
    power = np.zeros((h, w // 2 + 1))
    for _ in range(8):
        t = synth._band_noise_raw(rng, (h, w), grain_px)
        assert t.dtype == np.float32 and t.shape == (h, w)
        assert abs(float(t.mean())) < 1e-3 * float(t.std())  # no DC term
        power += np.abs(np.fft.rfft2(t.astype(np.float64))) ** 2
    k = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    k0 = 1.0 / (2.0 * grain_px)
    bins = np.linspace(0, 0.75, 76)
    idx = np.digitize(k.ravel(), bins)
    radial = np.array(
        [power.ravel()[idx == i].mean() if np.any(idx == i) else 0 for i in range(1, 76)]
    )
    centres = 0.5 * (bins[1:] + bins[:-1])
    ring = centres[np.argmax(radial * centres)]  # power per annulus peaks at the ring
    assert ring == pytest.approx(k0, rel=0.35, abs=0.015)
    # nothing far above the band
    assert radial[centres > 2.5 * k0 + 0.05].max(initial=0.0) < 1e-3 * radial.max()
    # the same seed gives the same texture
    a = synth._band_noise_raw(np.random.default_rng(1), (h, w), grain_px)
    np.testing.assert_array_equal(
        a, synth._band_noise_raw(np.random.default_rng(1), (h, w), grain_px)
    )
    # the truncated band equals the full-grid filter to 1e-6 of the peak
    kk = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    filt = np.exp(-0.5 * ((kk - k0) / (0.45 * k0 + 1e-6)) ** 2) + 0.25 * np.exp(
        -0.5 * (kk / (0.5 * k0 + 1e-6)) ** 2
    )
    kmax = 3.4 * k0
    ky = np.abs(np.fft.fftfreq(h))[:, None]
    kx = (np.arange(w // 2 + 1) / w)[None, :]
    outside = (ky > kmax) | (kx > kmax)
    assert float(filt[outside].max(initial=0.0)) < 1e-6
