"""Settings.min_contrast_z: particles whose intensity does not differ significantly from the
pixels around them (noise the segmentation took for particles) are excluded as ``low_contrast``,
in postprocess, analyze and the command line; off by default."""

from __future__ import annotations

import math
import warnings

import antema_fast as af
import contrast_reference
import numpy as np
import pandas as pd
import pytest
from antema_fast import Settings
from antema_fast.cli import main as cli_main
from antema_fast.measure import Particle
from antema_fast.separate import contrast_z, postprocess

S = 0.5  # nm/px: the despeckle area is 1 px, so small specks reach the contrast test


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


DISCS = [(30, 30, 8), (30, 90, 6), (90, 40, 7), (95, 100, 9), (60, 65, 3)]  # the last: 29 px
SPECKS = [(10, 60), (60, 15), (110, 70), (70, 120), (15, 115), (118, 10)]


def noisy_field(seed=3, dose=100.0, contrast=0.35):
    """Bright-field image (shot noise around ``dose`` counts) of dark discs, and a mask holding
    the discs and six 3×3 squares of plain background: what a segmentation that took noise for
    particles gives. At a dose of 3, Otsu's threshold (the ``threshold`` backend) takes noise for
    particles too."""
    rng = np.random.default_rng(seed)
    shape = (130, 135)
    thick = np.zeros(shape)
    truth = np.zeros(shape, bool)
    for cy, cx, r in DISCS:
        d = disc(shape, cy, cx, r)
        thick[d] = 1.0
        truth |= d
    img = rng.poisson(dose * (1.0 - contrast * thick)).astype(np.uint16)
    mask = truth.copy()
    for r, c in SPECKS:
        mask[r - 1 : r + 2, c - 1 : c + 2] = True
    return img, mask, truth


def test_contrast_z_separates_particles_from_noise_squares() -> None:
    img, mask, truth = noisy_field()
    pp = postprocess(mask, S)
    z = contrast_z(img, pp.particles, mask)
    real = np.array([bool(np.any(p.to_mask(img.shape) & truth)) for p in pp.particles])
    assert real.sum() == len(DISCS) and (~real).sum() == len(SPECKS)
    assert z[real].min() > 8  # even the 29-px disc: 35 % contrast at 100 counts
    assert z[~real].max() < 3


def test_contrast_z_edge_cases() -> None:
    img = np.full((30, 30), 50.0)
    img[5:8, 5:8] = 10.0
    flat_dark = Particle(5, 5, np.ones((3, 3), bool))
    flat_same = Particle(20, 20, np.ones((3, 3), bool))
    z = contrast_z(img, [flat_dark, flat_same])
    assert z[0] == math.inf and z[1] == 0.0
    # enclosed by other segmented pixels: no ring, no verdict
    seg = np.ones((30, 30), bool)
    assert np.isnan(contrast_z(img, [flat_dark], seg)).all()
    # ignored pixels are not background either
    ign = np.zeros((30, 30), bool)
    ign[:, :15] = True
    assert np.isnan(contrast_z(img, [flat_dark], None, ign)).all()
    with pytest.raises(ValueError, match="mask shape"):
        contrast_z(img, [flat_dark], np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="2-D real image"):
        contrast_z(np.zeros((2, 20, 20)), [flat_dark])


def test_postprocess_excludes_low_contrast_particles_with_their_reason() -> None:
    img, mask, _ = noisy_field()
    plain = postprocess(mask, S)
    assert len(plain.particles) == len(DISCS) + len(SPECKS)
    assert plain.counts["low_contrast"] == 0 and plain.low_contrast == []

    r = postprocess(mask, S, Settings(min_contrast_z=3.0), image=img)
    assert len(r.particles) == len(DISCS) == len(r.table) == len(r.area_id)
    assert r.counts["low_contrast"] == len(SPECKS) == len(r.low_contrast)
    ex = r.excluded[r.excluded.reason == "low_contrast"]
    assert set(ex.stage) == {"cleaning"}
    assert (ex.area_px == 9).all()
    got = sorted(zip(ex.bbox_row_min + 1, ex.bbox_col_min + 1, strict=True))
    assert got == sorted(SPECKS)
    # the particles kept are measured exactly as without the test
    kept = plain.table[plain.table.area_px > 9].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        r.table.drop(columns="particle_id"), kept.drop(columns="particle_id")
    )
    assert r.table.particle_id.tolist() == list(range(1, len(DISCS) + 1))


def test_postprocess_needs_the_image_for_the_contrast_test() -> None:
    img, mask, _ = noisy_field()
    with pytest.raises(ValueError, match="give the image"):
        postprocess(mask, S, Settings(min_contrast_z=3.0))
    with pytest.raises(ValueError, match="differs from the mask"):
        postprocess(mask, S, Settings(min_contrast_z=3.0), image=img[:-1])
    # off: the image is not needed, and not looked at
    assert len(postprocess(mask, S, min_contrast_z=0.0).particles) == len(DISCS) + len(SPECKS)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, True, "3"])
def test_min_contrast_z_must_be_a_finite_number_at_least_zero(bad) -> None:
    with pytest.raises(ValueError, match="min_contrast_z"):
        Settings(min_contrast_z=bad)


def test_finish_leaves_the_noise_out_of_table_and_measured_share() -> None:
    from antema_fast.pipeline import finish

    img, mask, _ = noisy_field()
    mg = af.Micrograph.from_array(img, S)
    seg = af.Segmentation(mask, mask.astype(np.float32), "test", None, (), 0.0)
    on = finish(mg, seg, Settings(min_contrast_z=3.0))
    off = finish(mg, seg, Settings())
    assert on.n_particles == len(DISCS) and off.n_particles == len(DISCS) + len(SPECKS)
    assert on.counts["low_contrast"] == len(SPECKS)
    assert (on.excluded.reason == "low_contrast").sum() == len(SPECKS)
    assert on.provenance["settings"]["min_contrast_z"] == 3.0
    assert on.provenance["quality"]["measured_fraction"] == pytest.approx(1.0)


def test_cli_min_contrast_z_reaches_the_tables(tmp_path) -> None:
    import tifffile

    img, _, _ = noisy_field(seed=8, dose=3.0, contrast=0.6)
    path = tmp_path / "noisy.tif"
    tifffile.imwrite(path, img)
    rows = {}
    for z in (None, "3"):
        out = tmp_path / f"out{z}"
        args = [str(path), "-o", str(out), "--pixel-size", str(S), "--backend", "threshold"]
        if z is not None:
            args += ["--min-contrast-z", z]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert cli_main(["analyze", *args]) == 0
        table = pd.read_csv(out / "noisy" / "particles.csv")
        excluded = pd.read_csv(out / "noisy" / "excluded.csv")
        rows[z] = (len(table), int((excluded.reason == "low_contrast").sum()))
    # the Otsu threshold of a blurred shot-noise image finds the discs; whatever else it finds
    # is noise, which the test removes, and no disc with it
    n_off, lc_off = rows[None]
    n_on, lc_on = rows["3"]
    assert lc_off == 0 and lc_on > 0
    assert n_on == len(DISCS)
    assert n_off == n_on + lc_on


def test_shipped_model_low_dose_fields_lose_mostly_noise() -> None:
    """Low-dose synthetic fields (not seen in training) through analyze with the shipped model:
    the test removes false particles and keeps nearly all true ones."""
    from antema_fast import synth
    from antema_fast.train.evaluate import pipeline_field

    rng_seed = 90210
    fields = [synth.generate(rng_seed + k, (256, 256), "lowdose") for k in range(6)]
    got = {}
    for z in (0.0, 3.0):
        st = Settings(min_contrast_z=z, threads=1)
        tp = fp = 0
        for s in fields:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = af.analyze(s.image, pixel_size_nm=s.pixel_size_nm, settings=st)
            f = pipeline_field(res, s)
            tp += f["tp"]
            fp += f["n_measured"] - f["tp"]
        got[z] = (tp, fp)
    (tp0, fp0), (tp3, fp3) = got[0.0], got[3.0]
    assert fp0 >= 5, got  # the fields have false particles to remove
    assert fp3 <= 0.75 * fp0, got
    assert tp3 >= 0.9 * tp0, got


def test_stream_frames_drop_low_contrast_particles() -> None:
    from antema_fast.cli import _analyze_settings, _build_parser
    from antema_fast.stream import stream

    frames = [noisy_field(seed=s, dose=3.0, contrast=0.6)[0] for s in (6, 7)]
    st = Settings(backend="threshold", min_contrast_z=3.0)
    got = list(stream(iter(frames), settings=st, pixel_size_nm=S))
    assert [fr.result.n_particles for fr in got] == [len(DISCS)] * 2
    assert all(fr.result.counts["low_contrast"] > 0 for fr in got)
    # the command line gives the stream the same setting
    parser, _ = _build_parser()
    args = parser.parse_args(["stream", "m.tif", "-o", "o", "--min-contrast-z", "3"])
    assert _analyze_settings(args).min_contrast_z == 3.0


@pytest.mark.parametrize(
    "dtype", ["uint8", "uint16", "int16", "float32", "float64", ">u2", "int64"]
)
@pytest.mark.parametrize(("ring_px", "gap_px"), [(5, 1), (3, 0), (2, 4)])
def test_core_contrast_z_matches_the_definition(dtype, ring_px, gap_px) -> None:
    rng = np.random.default_rng(7)
    img = rng.integers(0, 200, (70, 90)).astype(dtype)
    seg = rng.random((70, 90)) < 0.15
    ign = np.zeros((70, 90), bool)
    ign[:, 80:] = True
    particles = []
    for _ in range(40):  # random blobs, some at the image edges, some inside others' rings
        h, w = rng.integers(1, 9, 2)
        r, c = rng.integers(0, 70 - h), rng.integers(0, 90 - w)
        bits = rng.random((h, w)) < 0.7
        bits[0, 0] = True
        particles.append(Particle(int(r), int(c), bits))
        seg[r : r + h, c : c + w] |= bits
    for s, g in ((None, None), (seg, None), (seg, ign)):
        got = contrast_z(img, particles, s, g, ring_px=ring_px, gap_px=gap_px)
        want = contrast_reference.contrast_z(img, particles, s, g, ring_px, gap_px)
        np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)
    assert contrast_z(img, []).shape == (0,)
