"""analyze / finish / analyze_sample / summarize on images with known answers."""

from __future__ import annotations

import math
import re
import warnings

import antema_fast as af
import numpy as np
import pandas as pd
import pytest
import tifffile
from antema_fast.pipeline import SUMMARY_QUANTITIES, finish, summarize

THRESHOLD = af.Settings(backend="threshold", bootstrap_samples=500)


def disc_image(
    centres: list[tuple[float, float, float]], shape: tuple[int, int] = (200, 240), seed: int = 0
) -> np.ndarray:
    """Dark discs (row, col, radius in px) on a bright, slightly noisy background (uint16)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(3000.0, 60.0, shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for r, c, rad in centres:
        img[(yy - r) ** 2 + (xx - c) ** 2 <= rad**2] = 800.0
    return np.clip(img, 0, 65535).astype(np.uint16)


DISCS = [(40, 50, 10), (60, 150, 14), (140, 70, 8), (150, 180, 12), (100, 110, 6)]


def disc_areas_px(centres: list[tuple[float, float, float]]) -> list[int]:
    out = []
    for r, c, rad in centres:
        yy, xx = np.mgrid[-30:31, -30:31]
        out.append(int(((yy + (r % 1)) ** 2 + (xx + (c % 1)) ** 2 <= rad**2).sum()))
    return out


# ---------------------------------------------------------------------------------------------
# summarize


def test_summarize_known_values_and_columns() -> None:
    table = pd.DataFrame(
        {
            "equivalent_diameter_nm": [2.0, 4.0, 6.0, 8.0],
            "area_nm2": [1.0, 1.0, 1.0, 5.0],
            "circularity": [0.9, np.nan, 0.7, 0.8],
        }
    )
    s = summarize(table, af.Settings(bootstrap_samples=1000)).set_index("quantity")
    assert list(s.index) == list(SUMMARY_QUANTITIES)
    d = s.loc["equivalent_diameter_nm"]
    assert d["count"] == 4 and d["mean"] == 5.0 and d["median"] == 5.0
    assert d["sd"] == pytest.approx(np.std([2, 4, 6, 8], ddof=1))
    assert 2.0 <= d["ci95_low"] < 5.0 < d["ci95_high"] <= 8.0
    assert d["unit"] == "nm" and s.loc["area_nm2", "unit"] == "nm²"
    # NaN circularity left out of its own statistics only
    c = s.loc["circularity"]
    assert c["count"] == 3 and c["mean"] == pytest.approx(0.8)
    # quantities absent from the table: count 0, NaN statistics
    f = s.loc["feret_max_nm"]
    assert f["count"] == 0 and math.isnan(f["mean"]) and math.isnan(f["ci95_low"])


def test_summarize_is_seeded_and_ci_has_the_textbook_width() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(10.0, 2.0, 400)
    table = pd.DataFrame({"equivalent_diameter_nm": values})
    a = summarize(table, af.Settings(bootstrap_samples=2000, seed=1))
    b = summarize(table, af.Settings(bootstrap_samples=2000, seed=1))
    c = summarize(table, af.Settings(bootstrap_samples=2000, seed=2))
    pd.testing.assert_frame_equal(a, b)
    row, other = a.iloc[1], c.iloc[1]
    assert row["quantity"] == "equivalent_diameter_nm"
    assert row["ci95_low"] != other["ci95_low"]
    # percentile bootstrap ≈ mean ± 1.96·SD/√n for a normal sample
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert (row["ci95_high"] - row["ci95_low"]) / 2 == pytest.approx(half, rel=0.12)
    assert row["ci95_low"] < values.mean() < row["ci95_high"]


def test_summarize_single_value_and_empty_table() -> None:
    one = summarize(pd.DataFrame({"area_nm2": [3.0]})).set_index("quantity").loc["area_nm2"]
    assert one["count"] == 1 and one["mean"] == 3.0 and math.isnan(one["sd"])
    assert one["ci95_low"] == one["ci95_high"] == 3.0
    empty = summarize(pd.DataFrame())
    assert (empty["count"] == 0).all() and empty["mean"].isna().all()


# ---------------------------------------------------------------------------------------------
# analyze


def test_analyze_array_measures_known_discs() -> None:
    img = disc_image(DISCS)
    res = af.analyze(img, pixel_size_nm=0.5, settings=THRESHOLD)
    assert isinstance(res, af.AnalysisResult)
    assert res.n_particles == len(DISCS)
    assert list(res.table.columns[:1]) == ["image"] and (res.table["image"] == res.name).all()
    got = np.sort(res.table["area_nm2"].to_numpy())
    want = np.sort(np.array(disc_areas_px(DISCS)) * 0.25)
    np.testing.assert_allclose(got, want, rtol=0.06)
    assert len(res.particles) == res.n_particles
    assert res.mask.shape == img.shape and res.mask.dtype == bool
    # summary agrees with the table
    s = res.summary.set_index("quantity").loc["equivalent_diameter_nm"]
    assert s["count"] == len(DISCS)
    assert s["mean"] == pytest.approx(res.table["equivalent_diameter_nm"].mean())
    # time per stage and provenance
    for stage in ("read", "segment", "separate_measure", "summarize"):
        assert res.timings[stage] >= 0.0
    p = res.provenance
    assert p["version"] == af.__version__ and p["backend"] == "threshold"
    assert p["pixel_size_nm"] == 0.5 and p["pixel_size_source"] == "user"
    assert p["settings"]["backend"] == "threshold" and p["settings"]["separation"] == "uecs"
    assert p["input"] is None and "model_sha256" in p and "model_name" in p


def test_analyze_array_without_pixel_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="pixel_size_nm is required"):
        af.analyze(disc_image(DISCS), settings=THRESHOLD)
    with pytest.raises(ValueError, match="2-D"):
        af.analyze(np.zeros((3, 4, 5)), pixel_size_nm=1.0, settings=THRESHOLD)
    with pytest.raises(TypeError, match="expected a path, a Micrograph or a 2-D numpy array"):
        af.analyze(42, pixel_size_nm=1.0, settings=THRESHOLD)  # type: ignore[arg-type]


def test_analyze_path_micrograph_and_array_agree(tmp_path) -> None:
    img = disc_image(DISCS, seed=3)
    path = tmp_path / "discs.tif"
    tifffile.imwrite(path, img, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "nm"})
    from_file = af.analyze(path, settings=THRESHOLD)
    from_array = af.analyze(img, pixel_size_nm=0.5, settings=THRESHOLD)
    mg = af.read(path)
    from_mg = af.analyze(mg, settings=THRESHOLD)
    assert from_file.name == "discs" and from_file.pixel_size_nm == pytest.approx(0.5)
    assert from_file.provenance["pixel_size_source"].startswith("file")
    assert from_file.provenance["input"] == str(path)
    assert len(from_file.provenance["input_sha256"]) == 64
    cols = ["area_nm2", "equivalent_diameter_nm", "feret_max_nm", "circularity"]
    for other in (from_array, from_mg):
        pd.testing.assert_frame_equal(
            from_file.table[cols].reset_index(drop=True), other.table[cols].reset_index(drop=True)
        )
    # a user pixel size overrides the file's, and says so
    over = af.analyze(path, pixel_size_nm=1.0, settings=THRESHOLD)
    assert over.provenance["pixel_size_source"] == "user"
    np.testing.assert_allclose(over.table["area_nm2"], 4.0 * from_file.table["area_nm2"])
    over_mg = af.analyze(mg, pixel_size_nm=1.0, settings=THRESHOLD)
    np.testing.assert_allclose(over_mg.table["area_nm2"], over.table["area_nm2"])


def test_analyze_file_without_calibration_names_the_file(tmp_path) -> None:
    path = tmp_path / "nocal.tif"
    tifffile.imwrite(path, disc_image(DISCS))
    with pytest.raises(Exception, match="nocal") as info:
        af.analyze(path, settings=THRESHOLD)
    assert "pixel" in str(info.value).lower()
    ok = af.analyze(path, pixel_size_nm=0.5, settings=THRESHOLD)
    assert ok.n_particles == len(DISCS)


def test_finish_equals_analyze_on_the_same_segmentation() -> None:
    img = disc_image(DISCS, seed=2)
    seg = af.Segmenter(THRESHOLD)
    full = af.analyze(img, pixel_size_nm=0.4, settings=THRESHOLD, segmenter=seg)
    mg = af.Micrograph.from_array(img, 0.4)
    part = finish(mg, seg.segment(img, pixel_size_nm=0.4), THRESHOLD, timings={"read": 0.0})
    pd.testing.assert_frame_equal(full.table, part.table)
    pd.testing.assert_frame_equal(full.summary, part.summary)
    assert part.timings["read"] == 0.0 and "separate_measure" in part.timings
    with pytest.raises(ValueError, match="shape"):
        finish(mg, af.Segmenter(THRESHOLD).segment(img[:100], pixel_size_nm=0.4), THRESHOLD)


def test_separation_none_keeps_touching_discs_together() -> None:
    touching = [(100, 100, 15), (100, 128, 15), (40, 200, 9)]
    img = disc_image(touching)
    sep = af.analyze(img, pixel_size_nm=0.5, settings=THRESHOLD)
    none = af.analyze(img, pixel_size_nm=0.5, settings=THRESHOLD.replace(separation="none"))
    assert none.n_particles == 2 and none.table["non_convex"].sum() == 1
    assert sep.n_particles == 3 and sep.table["separated"].sum() == 2


# ---------------------------------------------------------------------------------------------
# analyze_sample


def test_analyze_sample_pools_exactly_the_per_image_tables() -> None:
    images = [disc_image(DISCS, seed=k) for k in range(3)]
    images[1] = disc_image(DISCS[:3], seed=9)
    sample = af.analyze_sample(images, name="S1", pixel_size_nm=0.5, settings=THRESHOLD)
    assert isinstance(sample, af.SampleResult) and sample.name == "S1"
    assert [r.name for r in sample.images] == ["image1", "image2", "image3"]
    assert [r.n_particles for r in sample.images] == [5, 3, 5]
    stacked = pd.concat([r.table for r in sample.images], ignore_index=True)
    assert list(sample.table.columns[:2]) == ["image", "sample"]
    assert (sample.table["sample"] == "S1").all()
    pd.testing.assert_frame_equal(sample.table.drop(columns="sample"), stacked)
    pd.testing.assert_frame_equal(sample.summary, summarize(sample.table, THRESHOLD))
    assert sample.n_particles == 13
    assert [i["particles"] for i in sample.provenance["images"]] == [5, 3, 5]


def test_analyze_sample_needs_images_and_a_pixel_size() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        af.analyze_sample([], settings=THRESHOLD)
    with pytest.raises(ValueError, match="pixel_size_nm is required"):
        af.analyze_sample([disc_image(DISCS)], settings=THRESHOLD)


# ---------------------------------------------------------------------------------------------
# quality checks: how much of the segmented area the table measures, under-resolved particles


def chain_image(scale: int) -> np.ndarray:
    """A branched chain of 17 touching discs 7.2·scale px wide, and 3 loose ones (float32).

    Small particles agglomerate like this; at scale 1 the discs are about as wide as UECS's
    minimum marker (30 px, a disc 6.2 px across), at scale 3 well above it.
    """
    rng = np.random.default_rng(0)
    shape = (120 * scale, 120 * scale)
    img = rng.normal(3000.0, 60.0, shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    centres = [(30 + 6 * i, 30 + 2 * (i % 2)) for i in range(6)]
    centres += [(60, 36 + 6 * j) for j in range(6)]
    centres += [(30 + 6 * i, 66 + 2 * (i % 2)) for i in range(5)]
    centres += [(90, 25), (95, 60), (85, 95)]
    for r, c in centres:
        img[(yy - r * scale) ** 2 + (xx - c * scale) ** 2 <= (3.6 * scale) ** 2] = 800.0
    return img.astype(np.float32)


def test_measured_share_warns_when_uecs_cannot_split_small_particles() -> None:
    # 7 px discs: UECS's markers fall under its minimum, the chain is lost, the table keeps the
    # 3 loose discs, and analyze says so
    with pytest.warns(UserWarning, match=r"minimum marker of 30 px.*higher magnification"):
        small = af.analyze(chain_image(1), pixel_size_nm=1.0, settings=THRESHOLD)
    assert small.n_particles == 3 and small.counts["marker_too_small"] >= 3
    cov = small.provenance["quality"]
    assert cov["measured_fraction"] < 0.3 and len(cov["warnings"]) == 1
    assert cov["warnings"][0].startswith("only 1")
    assert 6.5 < cov["median_particle_diameter_px"] < 8.5
    # the same field at 3x the magnification: separated and measured, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        large = af.analyze(chain_image(3), pixel_size_nm=1.0 / 3, settings=THRESHOLD)
    assert large.n_particles >= 18
    assert large.provenance["quality"]["measured_fraction"] > 0.9
    assert large.provenance["quality"]["warnings"] == []
    # the check can be turned off; the share is recorded anyway
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        off = af.analyze(
            chain_image(1), pixel_size_nm=1.0, settings=THRESHOLD.replace(min_measured_fraction=0)
        )
    assert off.provenance["quality"]["measured_fraction"] == cov["measured_fraction"]


def test_measured_share_leaves_out_what_the_border_cuts() -> None:
    from antema_fast.measure import Particle
    from antema_fast.separate import measured_share

    m = np.zeros((100, 100), bool)
    m[40:50, 40:50] = True  # measured, 100 px
    m[10:20, 70:80] = True  # away from the border, not measured: 100 px
    m[0:5, 0:30] = True  # cut by the border, never reaches 2 d = 23 px inside: not counted
    m[60:100, 0:100] = True  # cut by the border, but reaches deep inside: rows 60..76 counted
    got = measured_share(m, [Particle(40, 40, np.ones((10, 10), bool))], min_area_px=4)
    reach = int(np.ceil(2 * 2 * np.sqrt(100 / np.pi)))
    deep = (100 - reach - 60) * (100 - 2 * reach)
    assert got["area_px"] == 200 + deep and got["measured_px"] == 100
    assert got["unmeasured_areas"] == 1
    # specks below min_area_px are not counted; with no particle only interior areas count
    m2 = np.zeros((50, 50), bool)
    m2[10:12, 10:12] = True
    m2[30:40, 30:40] = True
    none = measured_share(m2, [], min_area_px=5)
    assert none["area_px"] == 100 and none["measured_fraction"] == 0.0
    assert none["median_particle_diameter_px"] is None
    assert measured_share(np.zeros((8, 8), bool), [])["measured_fraction"] is None


def test_real_agglomerated_small_particles_are_flagged(shared_data) -> None:  # type: ignore[no-untyped-def]
    # ParticleSpy's SiO2 HAADF image: rafts of touching spheres about 7 px wide
    path = shared_data / "formats" / "particlespy" / "SiO2 HAADF Image.hspy"
    with pytest.warns(UserWarning, match="SiO2 HAADF Image.hspy: only"):
        res = af.analyze(path, settings=af.Settings(threads=2))
    assert res.provenance["quality"]["measured_fraction"] < 0.6


def test_quality_warnings_reach_the_console_run_json_and_report(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from antema_fast.cli import main

    for name, scale in (("chain", 1), ("chain_x3", 3)):
        tifffile.imwrite(
            tmp_path / f"{name}.tif",
            chain_image(scale),
            imagej=True,
            resolution=(scale, scale),
            metadata={"unit": "nm"},
        )
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path), "-o", str(out), "--backend", "threshold"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "chain.tif: only" in err
    run = {i["name"]: i for i in json.loads((out / "run.json").read_text())["images"]}
    assert len(run["chain"]["warnings"]) == 1 and run["chain_x3"]["warnings"] == []
    assert "minimum marker" in run["chain"]["warnings"][0]
    page = (out / "chain" / "index.html").read_text()
    assert "class=warn>warning: only" in page and "cover 1" in page
    assert "class=warn" not in (out / "chain_x3" / "index.html").read_text()
    manifest = json.loads((out / "chain" / "manifest.json").read_text())
    assert manifest["provenance"]["quality"]["measured_fraction"] < 0.3


def _speckled_segmentation(shape: tuple[int, int], seed: int) -> af.Segmentation:
    """What a network gives on a noisy frame: 4 discs 12 px wide and 12 specks of 2 × 2 px."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for r, c in [(40, 40), (50, 140), (120, 80), (150, 160)]:
        mask |= (yy - r) ** 2 + (xx - c) ** 2 <= 36
    for r, c in rng.integers(10, min(shape) - 10, (12, 2)):
        mask[r : r + 2, c : c + 2] = True
    return af.Segmentation(mask, mask.astype(np.float32), "test", None, (), 0.0)


def test_under_resolved_particles_are_flagged_and_the_advice_works() -> None:
    seg = _speckled_segmentation((200, 200), seed=1)
    mg = af.Micrograph.from_array(np.where(seg.mask, 800, 3000).astype(np.uint16), 2.0)
    res = finish(mg, seg, THRESHOLD)
    q = res.provenance["quality"]
    assert q["particles"] == res.n_particles == 16 and q["under_resolved"] == 12
    assert len(q["warnings"]) == 1
    assert "12 of 16 measured particles are under 3 px" in q["warnings"][0]
    assert "--min-diameter-nm 6" in q["warnings"][0]
    # following the advice leaves the 4 discs and no warning
    clean = finish(mg, seg, THRESHOLD.replace(min_diameter_nm=6.0))
    assert clean.n_particles == 4 and clean.provenance["quality"]["warnings"] == []
    # a few specks among many particles are no reason to warn
    few = finish(mg, _keep_specks(seg, 2), THRESHOLD)
    assert few.provenance["quality"]["under_resolved"] == 2
    assert few.provenance["quality"]["warnings"] == []


def _keep_specks(seg: af.Segmentation, n: int) -> af.Segmentation:
    """``seg`` with only its first ``n`` specks (areas under 10 px, in label order)."""
    import cv2

    k, lab, stats, _ = cv2.connectedComponentsWithStats(seg.mask.astype(np.uint8), connectivity=8)
    small = [i for i in range(1, k) if stats[i, cv2.CC_STAT_AREA] < 10]
    mask = seg.mask & ~np.isin(lab, small[n:])
    return af.Segmentation(mask, mask.astype(np.float32), "test", None, (), 0.0)


def _grain_segmentation(n_grains: int, n_particles: int, seed: int = 0) -> af.Segmentation:
    """A fine-sampled field (0.05 nm/px): ``n_particles`` discs 2 nm across and ``n_grains``
    specks 0.7 nm across, the size of an amorphous carbon film's grain."""
    rng = np.random.default_rng(seed)
    shape = (400, 400)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    centres = [(r, c) for r in range(35, 370, 60) for c in range(35, 370, 60)]
    order = rng.permutation(len(centres))
    for j, i in enumerate(order[: n_particles + n_grains]):
        r, c = centres[i]
        radius = 20.0 if j < n_particles else 7.0  # px: 2 nm and 0.7 nm across
        mask |= (yy - r) ** 2 + (xx - c) ** 2 <= radius**2
    return af.Segmentation(mask, mask.astype(np.float32), "test", None, (), 0.0)


def test_specks_at_the_grain_of_the_support_are_flagged() -> None:
    def quality(n_grains: int, n_particles: int, px: float = 0.05, **kw: float) -> dict:
        seg = _grain_segmentation(n_grains, n_particles)
        img = np.where(seg.mask, 800, 3000).astype(np.uint16)
        res = finish(af.Micrograph.from_array(img, px), seg, THRESHOLD.replace(**kw))
        return res.provenance["quality"]

    # specks beside a population of 2-nm particles (under 1 nm and under half the median)
    q = quality(4, 20)
    assert q["support_grain"] == 4 and len(q["warnings"]) == 1
    assert "4 of 24 measured particles are under 1 nm and under half the median" in q["warnings"][0]
    assert "--min-diameter-nm 1" in q["warnings"][0]
    # a field of specks with a particle or two: 40 % or more of the table under 1 nm
    q = quality(12, 2)
    assert (
        q["support_grain"] == 12
        and "12 of 14 measured particles are under 1 nm across" in (q["warnings"][0])
    )
    # the advice removes them; one or two specks, clean fields and coarse sampling do not warn
    assert quality(4, 20, min_diameter_nm=1.0)["warnings"] == []
    assert quality(2, 20)["warnings"] == [] and quality(2, 20)["support_grain"] == 2
    assert quality(0, 20)["warnings"] == []
    coarse = quality(12, 2, px=0.4)  # 1 nm is 2.5 px: the under-3-px check's ground
    assert coarse["support_grain"] == 0
    assert not any("amorphous carbon" in w for w in coarse["warnings"])


def test_real_noisy_frame_flags_its_specks(shared_data) -> None:  # type: ignore[no-untyped-def]
    # a liquid-cell TEM frame (SAM-EM): the network finds a few particles and many specks
    path = shared_data / "streams" / "samem_lptem" / "000010.jpeg"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = af.analyze(path, pixel_size_nm=0.5, settings=af.Settings(threads=2))
    assert res.provenance["quality"]["under_resolved"] >= 0.25 * res.n_particles
    flagged = [str(w.message) for w in caught if "measured particles are under 3 px" in str(w)]
    assert len(flagged) == 1 and flagged[0].startswith(str(path))
    advice = float(re.search(r"--min-diameter-nm ([0-9.]+)", flagged[0]).group(1))
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        clean = af.analyze(
            path, pixel_size_nm=0.5, settings=af.Settings(threads=2, min_diameter_nm=advice)
        )
    assert clean.provenance["quality"]["under_resolved"] == 0
    assert not [w for w in again if "under 3 px" in str(w.message)]
    assert 0 < clean.n_particles < res.n_particles
