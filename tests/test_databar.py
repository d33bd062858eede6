"""find_data_bar and analyze's data-bar warning: full-width strips of an exported micrograph or
SEM image (Zeiss's data zone, a camera's info bar) are found, with the --ignore-region that
leaves them out; real micrographs and clipped synthetic exports are not flagged."""

from __future__ import annotations

import warnings

import antema_fast as af
import cv2
import numpy as np
import pytest
from antema_fast import Settings, synth
from antema_fast._databar import find_data_bar
from antema_fast.io import read


def export(seed: int, regime: str = "tem", clip: float = 0.5, size: int = 384, **kw) -> np.ndarray:
    """A synthetic field as an 8-bit export, ``clip`` % clipped at each end."""
    img = synth.generate(seed, (size, size), regime, **kw).image.astype(np.float32)
    lo, hi = np.percentile(img, [clip, 100 - clip])
    return np.clip((img - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)


def with_bar(img: np.ndarray, rows: int, edge: str = "bottom", colour: int = 0) -> np.ndarray:
    """``img`` with a data bar: ``rows`` rows at ``colour``, text, a scale bar and a divider line
    in the opposite colour, a one-pixel grey frame line at the very edge."""
    out = img.copy()
    h, w = out.shape
    bar = np.full((rows, w), colour, np.uint8)
    ink = 255 - colour
    cv2.putText(bar, "HV 200 kV  Mag 50 kx", (6, rows - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, ink, 1)
    cv2.rectangle(bar, (w - 110, rows - 12), (w - 20, rows - 9), ink, -1)
    bar[rows // 2, :] = 128  # a divider line across the bar
    bar[-1, :] = 100  # a frame line at the edge
    if edge == "bottom":
        out[-rows:] = bar
    else:
        out[:rows] = bar[::-1]
    return out


@pytest.mark.parametrize("edge", ["bottom", "top"])
@pytest.mark.parametrize("colour", [0, 255])
@pytest.mark.parametrize("regime", ["tem", "haadf"])
def test_a_bar_is_found_with_its_height(edge, colour, regime) -> None:
    img = export(3, regime)
    found = find_data_bar(with_bar(img, 30, edge, colour))
    region = (0, -30, 0, 0) if edge == "bottom" else (0, 0, 0, 30)
    assert found == {"edge": edge, "rows": 30, "region": region}
    assert find_data_bar(img) is None


def test_what_is_not_a_bar() -> None:
    img = export(5, "tem")
    assert find_data_bar(with_bar(img, 5)) is None  # under MIN_ROWS: a frame, not a bar
    assert find_data_bar(with_bar(img, 200)) is None  # over 40 % of the height
    binary = (img > 128).astype(np.uint8) * 255  # extreme everywhere
    assert find_data_bar(binary) is None
    # a saturated region that rises gradually (a film hole whose edge is tilted)
    ramp = img.copy()
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    ramp[yy > 300 + 0.3 * (xx - 192)] = 255
    assert find_data_bar(ramp) is None
    nan = img.astype(np.float32)
    nan[0, 0] = np.nan
    assert find_data_bar(nan) is None
    assert find_data_bar(np.zeros((100, 100))) is None
    assert find_data_bar(np.zeros((10, 100))) is None


def test_clipped_synthetic_exports_are_not_flagged() -> None:
    hits = []
    for k in range(40):
        regime = ("tem", "hrtem", "haadf", "ultrasmall", "lowdose")[k % 5]
        img = export(
            2000 + k, regime, clip=(0.0, 1.0, 5.0, 10.0)[k % 4], size=256, film_hole=k % 3 == 0
        )
        if find_data_bar(img) is not None:
            hits.append(k)
    assert hits == []


def test_analyze_warns_and_the_region_silences_it() -> None:
    img = with_bar(export(7, "tem", size=256), 24)
    st = Settings(check_scale=False)
    seg = af.Segmenter(st)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = af.analyze(img, pixel_size_nm=0.5, settings=st, segmenter=seg)
    text = " ".join(str(w.message) for w in caught)
    assert "bottom 24 rows look like a data bar" in text and "--ignore-region 0,-24,0,0" in text
    assert r.provenance["quality"]["data_bar"]["rows"] == 24
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the other quality warnings
        r2 = af.analyze(
            img,
            pixel_size_nm=0.5,
            settings=st.replace(ignore_regions=((0, -24, 0, 0),)),
            segmenter=seg,
        )
    assert not any("data bar" in w for w in r2.provenance["quality"]["warnings"])
    assert r2.provenance["quality"]["data_bar"]["rows"] == 24  # still recorded


# ------------------------------------------------------------------------------ real files


ZEISS = "formats/rosettasciio/tiff/tiff_Zeiss_SEM.zip"


@pytest.mark.parametrize(
    "member, rows",
    [
        ("test_tiff_Zeiss_SEM_512pix.tif", 34),
        ("test_tiff_Zeiss_SEM_1k.tif", 77),
        ("ZEISS_SEM_multipage.tif", None),
    ],
)
def test_zeiss_data_zone(shared_data, member, rows) -> None:
    """Zeiss SEM draws its data zone inside the stored image (white, black text, black frame
    lines); the first page of the multipage file has none. The Zeiss text in the 512-px file is
    measured as 14 specks without the region."""
    img = read(shared_data / ZEISS, member=member).data
    found = find_data_bar(img)
    assert (found and found["rows"]) == rows
    if rows:
        band = np.asarray(img)[-rows:]
        assert (np.isin(band, [0, 255])).mean() > 0.8
        above = np.asarray(img)[:-rows]
        assert (np.isin(above[-5:], [0, 255])).mean() < 0.3


def test_real_micrographs_are_not_flagged(shared_data) -> None:
    files = sorted((shared_data / "train" / "msaem" / "images").glob("*.png"))[:10]
    files += sorted((shared_data / "streams" / "samem_lptem").glob("*.jp*g"))[:5]
    files += sorted((shared_data / "formats" / "temul").glob("*.emd"))
    files += sorted((shared_data / "formats" / "ncempy").glob("*.dm[34]"))
    assert len(files) >= 15
    flagged = []
    for f in files:
        try:
            mg = read(f, require_calibration=False)
        except Exception:  # not an image (a spectrum): nothing to check
            continue
        if find_data_bar(mg.data) is not None:
            flagged.append(f.name)
    assert flagged == []


@pytest.mark.filterwarnings("ignore")
def test_ignore_data_bar_leaves_out_each_image_s_own_bar(tmp_path) -> None:
    """`ignore_data_bar`: each image's bar, whatever its height, is ignored as a region; the
    table equals that of the same field without the bar; the settings as given stay in the
    provenance (so --resume recognises the run) and the regions used are recorded; a batch from
    the command line does the same for images with bars of different heights."""
    import json

    import pandas as pd
    import tifffile
    from antema_fast.cli import main as cli_main

    st = Settings(backend="threshold", check_scale=False, ignore_data_bar=True)
    clean = export(7, "tem", size=256)
    barred = with_bar(clean, 24)
    a = af.analyze(barred, pixel_size_nm=0.5, settings=st)
    b = af.analyze(clean, pixel_size_nm=0.5, settings=st.replace(ignore_regions=((0, -24, 0, 0),)))
    pd.testing.assert_frame_equal(a.table, b.table)
    assert a.provenance["settings"]["ignore_regions"] == []
    assert a.provenance["settings"]["ignore_data_bar"] is True
    assert a.provenance["quality"]["ignored_regions_used"] == [[0, -24, 0, 0]]
    assert not any("data bar" in w for w in a.provenance["quality"]["warnings"])
    # no bar: nothing added, nothing recorded
    c = af.analyze(clean, pixel_size_nm=0.5, settings=st)
    assert "ignored_regions_used" not in c.provenance["quality"]
    # the command line, two images with bars of 20 and 40 rows
    for name, rows, size in (("small", 20, 256), ("large", 40, 384)):
        tifffile.imwrite(tmp_path / f"{name}.tif", with_bar(export(9, "tem", size=size), rows))
    out = tmp_path / "out"
    args = [str(tmp_path / "small.tif"), str(tmp_path / "large.tif"), "-o", str(out)]
    args += ["--pixel-size", "0.5", "--backend", "threshold", "--no-scale-check"]
    assert cli_main(["analyze", *args, "--ignore-data-bar", "--quiet"]) == 0
    for name, rows in (("small", 20), ("large", 40)):
        m = json.loads((out / name / "manifest.json").read_text())
        assert m["provenance"]["quality"]["ignored_regions_used"] == [[0, -rows, 0, 0]]
        t = pd.read_csv(out / name / "particles.csv")
        h = 256 if name == "small" else 384
        assert (t.bbox_row_max < h - rows - 1).all()
    # --resume recognises the finished images
    assert cli_main(["analyze", *args, "--ignore-data-bar", "--quiet", "--resume"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert "skipped" in json.dumps(run)


@pytest.mark.filterwarnings("ignore")
def test_streams_ignore_each_frame_s_data_bar() -> None:
    import pandas as pd
    from antema_fast.stream import stream

    st = Settings(backend="threshold", check_scale=False, ignore_data_bar=True)
    frames = [with_bar(export(7, "tem", size=256), 24), with_bar(export(8, "tem", size=256), 30)]
    got = list(stream(frames, settings=st, pixel_size_nm=0.5))
    for fr, img in zip(got, frames, strict=True):
        ref = af.analyze(img, pixel_size_nm=0.5, settings=st)
        cols = [c for c in ref.table.columns if c != "image"]
        pd.testing.assert_frame_equal(
            fr.table[cols].reset_index(drop=True), ref.table[cols].reset_index(drop=True)
        )
    assert [len(f.table) for f in got] != [0, 0]
