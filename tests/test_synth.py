"""Synthetic micrograph generator: reproducibility, exact masks, size and overlap control."""

from __future__ import annotations

import math

import numpy as np
import pytest
from antema_fast import synth
from antema_fast.synth import Imaging, Particle, Population, generate, make_particle, render

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
    got = np.unique(np.round(synth._polyhedron_vertices(shape, aspect), 9), axis=0)
    np.testing.assert_allclose(got, want, atol=1e-9)


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


def test_lattice_fringes_only_inside_particles_at_hrtem_scale() -> None:
    p = Particle(y_nm=3.2, x_nm=3.2, scale_nm=4.0, lattice_spacing_nm=0.235)
    im = Imaging(
        style="bf",
        mu_per_nm=0.05,
        carbon_amplitude=0.0,
        blur_nm=0.0,
        dose_per_px=math.inf,
        lattice_amplitude=0.3,
    )
    s = render([p], (128, 128), 0.05, im, 0)
    inner = s.thickness_nm > 3.0
    plain = render([p], (128, 128), 0.05, CLEAN_BF, 0)
    diff = s.image - plain.image
    assert np.abs(diff[inner]).max() > 0.05
    assert np.abs(diff[~s.semantic]).max() == 0.0


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


@pytest.mark.parametrize("lam", [0.3, 2.0, 9.9, 10.0, 37.0, 1500.0])
def test_shot_noise_is_poisson(lam: float) -> None:
    from antema_fast import _core
    from scipy import stats

    n = 200_000
    x = _core.synth_poisson(np.full(n, lam, np.float32), 123)
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


def test_shot_noise_is_seeded_and_checks_its_input() -> None:
    from antema_fast import _core

    lam = np.linspace(0, 50, 1000, dtype=np.float32).reshape(20, 50)
    a, b = _core.synth_poisson(lam, 5), _core.synth_poisson(lam, 5)
    assert a.shape == lam.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _core.synth_poisson(lam, 6))
    assert np.all(a[lam == 0] == 0)
    with pytest.raises(ValueError, match="non-negative"):
        _core.synth_poisson(np.array([1.0, -1.0], np.float32), 1)
    with pytest.raises(ValueError, match="non-negative"):
        _core.synth_poisson(np.array([np.nan], np.float32), 1)
    with pytest.raises(TypeError):
        _core.synth_poisson(lam.astype(np.float64), 1)
