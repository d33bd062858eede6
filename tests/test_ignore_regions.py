"""Settings.ignore_regions: rectangles that are not specimen (a burned-in scale bar, a data
bar) are not segmented or measured, and particles that touch them are excluded like those cut
by the image border, in postprocess, analyze, the pictures, streams and the command line."""

from __future__ import annotations

import json

import antema_fast as af
import cv2
import numpy as np
import pandas as pd
import pytest
from antema_fast import Settings
from antema_fast.cli import main as cli_main
from antema_fast.pipeline import segmentation_input
from antema_fast.separate import measured_share
from antema_fast.stream import stream

S = 0.1  # nm/px


def disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def field(shape=(200, 260), bar_rows=40):
    """Bright-field picture (uint8) of dark discs, with a black data bar (white text and scale
    bar) over the bottom ``bar_rows`` rows, as many exported micrographs have; the clean image;
    the true discs as (cy, cx, r). The last two discs reach into the bar's rows."""
    rng = np.random.default_rng(4)
    discs = [
        (30, 40, 10),
        (40, 120, 12),
        (35, 200, 9),
        (95, 60, 11),
        (100, 150, 13),
        (90, 225, 8),
        (152, 30, 9),
        (150, 105, 10),
    ]
    img = np.full(shape, 190.0)
    for cy, cx, r in discs:
        img[disc(shape, cy, cx, r)] = 70.0
    clean = np.clip(img + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)
    barred = clean.copy()
    barred[-bar_rows:] = 0
    cv2.rectangle(barred, (170, shape[0] - 12), (245, shape[0] - 8), 255, -1)
    cv2.putText(barred, "20 nm", (180, shape[0] - 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    cv2.putText(barred, "Mag 200kx", (8, shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    return barred, clean, discs


THRESHOLD = Settings(backend="threshold", check_scale=False)
BAR = ((0, -40, 0, 0),)


# ------------------------------------------------------------------------------ the settings


def test_regions_resolve_with_negative_offsets_and_edges() -> None:
    s = Settings(ignore_regions=[[-3, -2, 0, 0], (0, 0, 2, 1)])
    assert s.ignore_regions == ((-3, -2, 0, 0), (0, 0, 2, 1))  # tuples: hashable, frozen
    hash(s)
    m = s.ignored_mask((5, 6))
    want = np.zeros((5, 6), bool)
    want[3:, 3:] = True
    want[0, 0:2] = True
    np.testing.assert_array_equal(m, want)
    # regions are clipped to the image; the default has none
    assert Settings(ignore_regions=((4, 4, 100, 100),)).ignored_mask((5, 6)).sum() == 2
    assert Settings().ignored_mask((5, 6)) is None
    # round trip through a manifest's JSON
    back = Settings(**json.loads(json.dumps(s.to_dict())))
    assert back == s


@pytest.mark.parametrize(
    "bad", ["0,0,1,1", [(1, 2, 3)], [(0, 0, -1, 2)], [(0.5, 0, 1, 1)], [(True, 0, 1, 1)], 5]
)
def test_bad_regions_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="ignore_regions"):
        Settings(ignore_regions=bad)


def test_regions_that_do_not_fit_the_image_are_errors() -> None:
    with pytest.raises(ValueError, match=r"outside the 6×5 px image"):
        Settings(ignore_regions=((10, 0, 5, 5),)).ignored_mask((5, 6))
    with pytest.raises(ValueError, match="whole"):
        Settings(ignore_regions=((0, 0, 0, 0),)).ignored_mask((5, 6))
    with pytest.raises(ValueError, match=r"^scan\.png: ignore_regions"):
        segmentation_input(np.zeros((5, 6)), Settings(ignore_regions=((0, 9, 1, 1),)), "scan.png")


# ------------------------------------------------------------------------------ postprocess


def test_particles_touching_a_region_are_excluded_like_border_ones() -> None:
    m = disc((80, 120), 30, 30, 10) | disc((80, 120), 62, 70, 10) | disc((80, 120), 30, 95, 8)
    # the region's top edge (row 60) cuts the second disc; the third sits 1 px beside a region
    st = Settings(ignore_regions=((0, 60, 0, 0), (104, 20, 10, 10)))
    r = af.postprocess(m, S, st)
    assert len(r.table) == 1 and r.table.centroid_x_px.iloc[0] == pytest.approx(30, abs=0.5)
    ex = r.excluded[r.excluded.reason == "ignored_region"]
    assert r.counts["ignored_region"] == 2 and len(ex) == 2
    assert set(ex.stage) == {"cleaning"}
    # the excluded pieces are what was left outside the regions: rows above 60, cols left of 104
    cut = ex[ex.bbox_col_min > 50].sort_values("bbox_col_min")
    assert cut.bbox_row_max.iloc[0] == 59 and cut.area_px.iloc[0] == m[:60, 55:85].sum()
    assert cut.bbox_col_max.iloc[1] == 103
    assert list(r.area_id) == [0]  # kept in step with the particles
    # without the regions the three are measured
    assert len(af.postprocess(m, S).table) == 3
    # a particle with one pixel of background between it and a region is kept
    far = Settings(ignore_regions=((105, 20, 10, 10), (0, 74, 0, 0)))
    assert len(af.postprocess(m, S, far).table) == 3


def test_separation_keeps_the_free_particle_of_a_pair_cut_by_a_region() -> None:
    pair = disc((80, 120), 40, 40, 15) | disc((80, 120), 40, 67, 15)
    r = af.postprocess(pair, S, Settings(ignore_regions=((0, 0, 30, 0),)))  # cuts the left one
    assert len(r.table) == 1 and r.table.separated.iloc[0]
    assert r.table.centroid_x_px.iloc[0] == pytest.approx(67, abs=1.5)
    assert r.counts["ignored_region"] == 1


def test_measured_share_leaves_out_areas_cut_by_a_region() -> None:
    m = np.zeros((60, 80), bool)
    m[10:20, 10:20] = True  # measured
    m[40:60, 30:50] = True  # cut by the region below row 50 (and by the border)
    m[20:30, 50:70] = True  # unmeasured, inside
    ps = [af.Particle(10, 10, np.ones((10, 10), bool))]
    ign = Settings(ignore_regions=((0, 50, 0, 0),)).ignored_mask(m.shape)
    with_region = measured_share(m, ps, ignored=ign)
    assert with_region["area_px"] == 300 and with_region["measured_fraction"] == pytest.approx(
        1 / 3
    )
    m2 = m.copy()
    m2[40:50, 30:50] = False
    m2[35:45, 30:50] = True  # now clear of the region by 4 rows: counted
    assert measured_share(m2, ps, ignored=ign)["area_px"] == 500


# ------------------------------------------------------------------------------ analyze


def test_what_is_in_a_region_does_not_change_the_result() -> None:
    barred, clean, discs = field()
    st = THRESHOLD.replace(ignore_regions=BAR)
    a = af.analyze(barred, pixel_size_nm=S, settings=st)
    b = af.analyze(clean, pixel_size_nm=S, settings=st)
    pd.testing.assert_frame_equal(a.table, b.table)
    # the particles are the six discs clear of the bar, each within 3 % of its true diameter;
    # the two cut by it are excluded
    assert len(a.table) == len(discs) - 2 and a.counts["ignored_region"] == 2
    d_true = sorted(2 * r * S for _, _, r in discs[:-2])
    np.testing.assert_allclose(sorted(a.table.equivalent_diameter_nm), d_true, rtol=0.03)
    assert not a.mask[-40:].any()
    # without the region the bar's text and scale bar change the result
    with pytest.warns(UserWarning, match=r"bottom 40 rows look like a data bar"):
        plain = af.analyze(barred, pixel_size_nm=S, settings=THRESHOLD)
    assert len(plain.table) != len(discs) or plain.mask[-40:].any()


def test_the_region_is_filled_for_segmentation_only() -> None:
    barred, _, _ = field()
    st = Settings(ignore_regions=BAR)
    seg_in = segmentation_input(barred, st)
    assert seg_in.dtype == barred.dtype and seg_in is not barred
    assert np.all(seg_in[-40:] == np.median(barred[:-40]).astype(np.uint8))
    np.testing.assert_array_equal(seg_in[:-40], barred[:-40])
    assert segmentation_input(barred, Settings()) is barred  # no copy without regions
    r = af.analyze(barred, pixel_size_nm=S, settings=THRESHOLD.replace(ignore_regions=BAR))
    np.testing.assert_array_equal(r.micrograph.data, barred)  # the result keeps the real image
    assert r.provenance["settings"]["ignore_regions"] == [[0, -40, 0, 0]]


def test_shipped_model_with_a_data_bar() -> None:
    """The network on a synthetic bright-field field exported with a data bar: with the region
    the table equals that of the same field without the bar."""
    from antema_fast import synth

    s = synth.generate(11, (384, 384), "tem", pixel_size_nm=0.6)
    img = s.image.astype(np.float32)
    lo, hi = np.percentile(img, [0.5, 99.5])
    clean = np.clip((img - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    barred = clean.copy()
    barred[-32:] = 0
    cv2.putText(barred, "50 nm", (300, 372), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    st = Settings(ignore_regions=((0, -32, 0, 0),), check_scale=False)
    seg = af.Segmenter(st)
    a = af.analyze(barred, pixel_size_nm=0.6, settings=st, segmenter=seg)
    b = af.analyze(clean, pixel_size_nm=0.6, settings=st, segmenter=seg)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert len(a.table) >= 20 and (a.table.bbox_row_max < 384 - 33).all()


# ------------------------------------------------------------------------------ entry points


def test_stream_frames_honour_the_regions() -> None:
    barred, clean, discs = field()
    st = THRESHOLD.replace(ignore_regions=BAR)
    frames = list(stream([barred, clean, barred], settings=st, pixel_size_nm=S))
    assert [len(f.table) for f in frames] == [len(discs) - 2] * 3


def test_cli_ignore_region_reaches_tables_manifest_and_pictures(tmp_path) -> None:
    import tifffile

    barred, _, discs = field()
    src = tmp_path / "bar.tif"
    tifffile.imwrite(src, barred)
    out = tmp_path / "out"
    args = [str(src), "-o", str(out), "--pixel-size", str(S), "--backend", "threshold"]
    rc = cli_main(["analyze", *args, "--ignore-region", "0,-40,0,0", "--ignore-region=-5,0,5,5"])
    assert rc == 0
    folder = out / "bar"
    assert len(pd.read_csv(folder / "particles.csv")) == len(discs) - 2
    assert (pd.read_csv(folder / "excluded.csv").reason == "ignored_region").sum() == 2
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["provenance"]["settings"]["ignore_regions"] == [[0, -40, 0, 0], [-5, 0, 5, 5]]
    assert (folder / "particle_map.png").stat().st_size > 0
    # a region that does not fit is that file's failure, named
    rc = cli_main(["analyze", *args, "-o", str(tmp_path / "o2"), "--ignore-region", "900,0,5,5"])
    assert rc == 1
    failures = pd.read_csv(tmp_path / "o2" / "failures.csv")
    assert "bar.tif" in failures.to_string() and "outside" in failures.to_string()


def test_cli_refuses_a_malformed_region(capsys) -> None:
    assert cli_main(["analyze", "x.tif", "-o", "o", "--ignore-region", "1,2,3"]) == 2
    assert "X,Y,W,H" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore")
def test_non_finite_pixels_are_left_out_like_given_regions(tmp_path) -> None:
    """A float TIFF whose left columns and a spot are NaN (an aligned frame with a masked
    defect): analyze, the command line and stream give the table of the filled picture with
    those rectangles given by hand, and the provenance names them; particles cut by the NaN
    strip are excluded as at the border, not measured as halves."""
    import tifffile

    _, clean, _ = field()
    data = clean.astype(np.float32)
    data[:, :35] = np.nan  # cuts the discs at x = 30 and 40
    data[140:143, 120:122] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", data)
    mg = af.io.read(tmp_path / "nan.tif", pixel_size_nm=S)
    regions = mg.metadata["non_finite_regions"]
    assert regions[0] == (0, 0, 35, 200) and len(regions) == 2
    st = Settings(backend="threshold", check_scale=False)
    got = af.analyze(tmp_path / "nan.tif", pixel_size_nm=S, settings=st)
    ref = af.analyze(mg.data, pixel_size_nm=S, settings=st.replace(ignore_regions=tuple(regions)))
    cols = [c for c in ref.table.columns if c != "image"]
    assert len(ref.table) >= 5
    pd.testing.assert_frame_equal(got.table[cols], ref.table[cols])
    assert (got.table["bbox_col_min"] > 35).all()  # the discs at x = 30 and 40 are cut
    q = got.provenance["quality"]
    assert q["non_finite_regions"] == [list(r) for r in regions]
    assert q["ignored_regions_used"] == [list(r) for r in regions]
    assert got.counts.get("ignored_region", 0) >= 1

    out = tmp_path / "out"
    args = ["analyze", str(tmp_path / "nan.tif"), "-o", str(out), "--pixel-size", str(S)]
    assert cli_main([*args, "--backend", "threshold", "--no-scale-check", "--quiet"]) == 0
    assert len(pd.read_csv(out / "nan" / "particles.csv")) == len(ref.table)

    fr = next(iter(stream([mg], settings=st)))
    pd.testing.assert_frame_equal(
        fr.table[cols].reset_index(drop=True), ref.table[cols].reset_index(drop=True)
    )
