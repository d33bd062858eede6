"""Exports: atomic writes, the image folder, spreadsheets, manifests, pictures and the HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import antema_fast as af
import numpy as np
import pandas as pd
import pytest
from antema_fast import export, plots

SETTINGS = af.Settings(backend="threshold", bootstrap_samples=200)


def _image() -> np.ndarray:
    rng = np.random.default_rng(1)
    img = rng.normal(3000.0, 50.0, (180, 220))
    yy, xx = np.mgrid[:180, :220]
    for r, c, rad in [(40, 40, 10), (60, 150, 12), (130, 70, 9), (130, 95, 9), (0, 110, 8)]:
        img[(yy - r) ** 2 + (xx - c) ** 2 <= rad**2] = 900.0
    return img.astype(np.uint16)


@pytest.fixture(scope="module")
def result() -> af.AnalysisResult:
    return af.analyze(_image(), pixel_size_nm=0.25, settings=SETTINGS)


def html_references(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return re.findall(r"""(?:src|href)=['"]([^'"#]+)['"]""", text)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    export.atomic_write_text(target, "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        export.atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]  # no temporary left


def test_image_folder_has_every_promised_file(tmp_path: Path, result: af.AnalysisResult) -> None:
    folder = export.write_image_outputs(
        result, tmp_path, formats=("csv", "xlsx", "parquet"), images=True
    )
    assert folder == tmp_path / "array"
    names = {p.name for p in folder.iterdir()}
    assert names == {
        "particles.csv",
        "particles.xlsx",
        "particles.parquet",
        "summary.csv",
        "excluded.csv",
        "manifest.json",
        "index.html",
        "micrograph.png",
        "overlay.png",
        "particle_map.png",
        "histograms.png",
    }
    # tables read back equal to the result's
    csv = pd.read_csv(folder / "particles.csv")
    pq = pd.read_parquet(folder / "particles.parquet")
    assert len(csv) == len(pq) == result.n_particles
    pd.testing.assert_frame_equal(pq, result.table)
    np.testing.assert_allclose(
        csv["equivalent_diameter_nm"], result.table["equivalent_diameter_nm"]
    )
    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["quantity"]) == list(result.summary["quantity"])
    # the workbook: five sheets, definitions with units, formula variant and pixel-size source
    import openpyxl

    wb = openpyxl.load_workbook(folder / "particles.xlsx", read_only=True)
    assert wb.sheetnames == ["Particles", "Summary", "Excluded", "Definitions", "Settings"]
    wb.close()
    defs = pd.read_excel(folder / "particles.xlsx", sheet_name="Definitions")
    items = dict(zip(defs["item"], defs["definition"], strict=True))
    assert "corrected" in items["circularity formula"]
    assert items["pixel size source"] == "user" and float(items["pixel size"]) == 0.25
    units = dict(zip(defs["item"], defs["unit"], strict=True))
    assert units["area_nm2"] == "nm²" and units["equivalent_diameter_nm"] == "nm"
    particles = pd.read_excel(folder / "particles.xlsx", sheet_name="Particles")
    assert len(particles) == result.n_particles
    settings_sheet = pd.read_excel(folder / "particles.xlsx", sheet_name="Settings")
    assert "settings.convexity_threshold" in set(settings_sheet["key"])
    # manifest: complete, provenance, timings with the export stage
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["n_particles"] == result.n_particles
    assert manifest["provenance"]["backend"] == "threshold"
    assert manifest["timings_s"]["export"] > 0
    assert export.read_manifest(folder) == manifest
    # pictures decode to images of a sensible size
    import matplotlib.image as mpimg

    for key, name in manifest["files"]["pictures"].items():
        pixels = mpimg.imread(folder / name)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 200, key
    # the page references only files that exist, all relative
    refs = html_references(folder / "index.html")
    assert refs and all(not r.startswith(("/", "http", "file:")) for r in refs)
    assert all((folder / r).is_file() for r in refs)


def test_incomplete_folder_is_not_finished(tmp_path: Path, result: af.AnalysisResult) -> None:
    folder = export.write_image_outputs(result, tmp_path, images=False)
    assert export.read_manifest(folder) is not None
    (folder / "summary.csv").unlink()
    assert export.read_manifest(folder) is None
    # writing again replaces the folder as a whole
    folder2 = export.write_image_outputs(result, tmp_path, images=False, name="array")
    assert folder2 == folder and export.read_manifest(folder) is not None
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    (folder / "manifest.json").write_text('{"complete": false}')
    assert export.read_manifest(folder) is None
    (folder / "manifest.json").write_text("{not json")
    assert export.read_manifest(folder) is None


def test_bad_format_is_refused(tmp_path: Path, result: af.AnalysisResult) -> None:
    with pytest.raises(ValueError, match="formats"):
        export.write_image_outputs(result, tmp_path, formats=("csv", "docx"))
    assert not any(tmp_path.iterdir())
    # no particle table at all (a caller that stores it elsewhere): the rest is still written
    folder = export.write_image_outputs(result, tmp_path, formats=(), images=False)
    assert sorted(p.name for p in folder.iterdir()) == [
        "excluded.csv",
        "manifest.json",
        "summary.csv",
    ]
    assert export.read_manifest(folder)["files"]["particles"] == {}


def test_scale_bar_lengths_are_round() -> None:
    assert plots.nice_scale_bar_nm(100.0) == 20.0
    assert plots.nice_scale_bar_nm(51.2) == 10.0
    assert plots.nice_scale_bar_nm(0.9) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        plots.nice_scale_bar_nm(float("nan"))


def test_lognormal_fit_recovers_parameters() -> None:
    rng = np.random.default_rng(0)
    x = rng.lognormal(mean=1.2, sigma=0.3, size=20000)
    fit = plots.lognormal_fit(x)
    assert fit is not None
    assert fit[0] == pytest.approx(1.2, abs=0.01) and fit[1] == pytest.approx(0.3, abs=0.01)
    assert plots.lognormal_fit(np.array([2.0, 2.0, 2.0])) is None


def test_histograms_of_an_empty_table(tmp_path: Path) -> None:
    path = plots.write_histograms(pd.DataFrame(), tmp_path / "h.png", title="nothing")
    import matplotlib.image as mpimg

    assert mpimg.imread(path).ndim == 3


def test_folder_names_are_safe() -> None:
    assert export.folder_name("a b/c:d") == "a_b_c_d"
    assert export.folder_name("...") == "image"
