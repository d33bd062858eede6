"""Writing results: particle tables (CSV, XLSX, Parquet), summaries, manifests and pictures.

Every file is written atomically: first to a temporary name in the same folder, then renamed, so
that a crash or an interruption never leaves a half-written file under the final name. An image's
folder is itself built under a temporary name and renamed into place; its ``manifest.json`` is the
last file written, so a folder with a complete manifest is a finished image (``--resume`` relies on
that).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import AnalysisResult

__all__ = [
    "FORMATS",
    "MANIFEST_NAME",
    "atomic_write",
    "atomic_write_text",
    "definitions_table",
    "folder_name",
    "read_manifest",
    "read_particle_table",
    "write_image_outputs",
    "write_tables",
]

#: Table formats that can be asked for.
FORMATS = ("csv", "xlsx", "parquet")
#: Name of the manifest in every image folder.
MANIFEST_NAME = "manifest.json"
#: Version of the manifest layout.
MANIFEST_VERSION = 1

# column -> (unit, definition); SPEC section 2
_DEFINITIONS: dict[str, tuple[str, str]] = {
    "image": ("–", "name of the micrograph the particle comes from"),
    "sample": ("–", "name of the specimen the images were pooled as"),
    "particle_id": ("–", "number of the particle within its image (1, 2, …)"),
    "area_nm2": ("nm²", "pixel count × s², s = pixel size"),
    "area_px": ("px", "pixel count"),
    "equivalent_diameter_nm": ("nm", "2·√(area/π): diameter of the disc of the same area"),
    "equivalent_diameter_px": ("px", "equivalent diameter in pixels"),
    "perimeter_nm": (
        "nm",
        "8-connected outer boundary through boundary-pixel centres: 0.980·even steps + "
        "1.406·odd steps − 0.091·corners, × s (MATLAB regionprops estimator); one pixel: 0",
    ),
    "perimeter_px": ("px", "perimeter in pixels"),
    "circularity": (
        "–",
        "corrected: 4π·area/perimeter² · (1 − 0.5/r)², r = perimeter/(2π) + 0.5 (MATLAB ≥ "
        "R2023a); legacy: 4π·area/perimeter² (ANTEMA v1.0, ImageJ); never clipped; one pixel: NaN",
    ),
    "feret_max_nm": (
        "nm",
        "largest distance between two points of the convex hull of the pixel corners (exact "
        "rotating calipers); one pixel: √2·s",
    ),
    "feret_max_px": ("px", "max Feret diameter in pixels"),
    "feret_max_angle_deg": (
        "°",
        "angle of the max Feret segment from the +col axis, counter-clockwise with row 0 at the "
        "top, in [0, 180)",
    ),
    "feret_min_nm": (
        "nm",
        "smallest caliper width of the same hull (minimum over hull edges of the farthest vertex "
        "from the edge's line); one pixel: s",
    ),
    "feret_min_px": ("px", "min Feret diameter in pixels"),
    "feret_min_angle_deg": ("°", "angle of the min Feret caliper direction, as above"),
    "aspect_ratio": ("–", "feret_max / feret_min"),
    "convexity": (
        "–",
        "perimeter of the convex image / perimeter (ANTEMA's separation gate; convex image: pixel "
        "centres strictly inside the hull of the boundary pixels' edge midpoints)",
    ),
    "solidity": ("–", "area / area of the convex image"),
    "centroid_x_nm": ("nm", "mean pixel-centre column × s"),
    "centroid_y_nm": ("nm", "mean pixel-centre row × s"),
    "centroid_x_px": ("px", "mean pixel-centre column"),
    "centroid_y_px": ("px", "mean pixel-centre row"),
    "bbox_row_min": ("px", "first row of the bounding box (inclusive)"),
    "bbox_col_min": ("px", "first column of the bounding box (inclusive)"),
    "bbox_row_max": ("px", "last row of the bounding box (inclusive)"),
    "bbox_col_max": ("px", "last column of the bounding box (inclusive)"),
    "separated": ("bool", "the particle came out of the separation step"),
    "non_convex": ("bool", "convexity ≤ convexity_threshold (meaningful with separation none)"),
    "reason": ("–", "why an area was excluded (low_convexity, too_many_holes, …)"),
}


# --------------------------------------------------------------------------------------------
# atomic writes


def atomic_write(path: str | os.PathLike[str], writer_fn: Callable[[Path], Any]) -> Path:
    """Write a file atomically: ``writer_fn(tmp)`` writes a temporary file, which is then renamed.

    Parameters
    ----------
    path : path-like
        Final file name; its folder is created if needed.
    writer_fn : callable
        Called with the temporary path (same folder, same suffix) and must write the whole file
        there.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    The rename (``os.replace``) is atomic on one file system, so readers see either the old file or
    the complete new one. If ``writer_fn`` raises, the temporary file is removed and the old file,
    if any, is left untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = atomic_write(d / "a.txt", lambda tmp: tmp.write_text("hello"))
    >>> p.read_text()
    'hello'
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer_fn(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, os.PathLike):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean_nan(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_nan(v) for v in value]
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def dumps_json(value: Any) -> str:
    """Strict JSON text (NaN and infinities become ``null``), indented for people to read."""
    return json.dumps(
        _clean_nan(value), indent=2, ensure_ascii=False, allow_nan=False, default=_json_default
    )


# --------------------------------------------------------------------------------------------
# names


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def folder_name(name: str) -> str:
    """A file-system-safe folder name for an image name (letters, digits, ``._+-``).

    >>> folder_name("grid 3/region #2")
    'grid_3_region_2'
    """
    safe = _UNSAFE.sub("_", name).strip("._") or "image"
    return safe[:120]


# --------------------------------------------------------------------------------------------
# tables


def definitions_table(
    columns: Iterable[str],
    *,
    settings: Settings | None = None,
    pixel_size_nm: float | None = None,
    pixel_size_source: str | None = None,
) -> pd.DataFrame:
    """The Definitions sheet: unit and definition of each column, formula variant, pixel size.

    Parameters
    ----------
    columns : iterable of str
        Columns of the exported particle table, in order.
    settings : Settings, optional
        Gives the circularity variant in use and the separation method.
    pixel_size_nm, pixel_size_source : optional
        Pixel size used and where it came from (``"file:…"`` or ``"user"``); for a pooled table
        pass None and the per-image values stay in the Particles sheet's ``image`` rows' manifests.
    """
    rows = []
    for col in columns:
        unit, text = _DEFINITIONS.get(col, ("", ""))
        rows.append({"item": col, "unit": unit, "definition": text})
    settings = settings if settings is not None else Settings()
    variant = (
        "corrected (MATLAB ≥ R2023a bias-corrected form)"
        if settings.circularity == "corrected"
        else "legacy (4π·area/perimeter², ANTEMA v1.0 and ImageJ)"
    )
    rows.append({"item": "circularity formula", "unit": "–", "definition": variant})
    rows.append({"item": "separation", "unit": "–", "definition": settings.separation})
    if pixel_size_nm is not None:
        rows.append(
            {"item": "pixel size", "unit": "nm/px", "definition": f"{float(pixel_size_nm):.6g}"}
        )
    rows.append(
        {
            "item": "pixel size source",
            "unit": "–",
            "definition": pixel_size_source
            or "per image (see each image's manifest.json and the Settings sheet)",
        }
    )
    rows.append(
        {
            "item": "summary",
            "unit": "–",
            "definition": "count, mean, SD (n − 1), median; ci95: percentile bootstrap of the mean "
            f"({settings.bootstrap_samples} resamples, seed {settings.seed})",
        }
    )
    return pd.DataFrame(rows, columns=["item", "unit", "definition"])


def _settings_table(settings: Settings, provenance: Mapping[str, Any] | None) -> pd.DataFrame:
    rows: list[dict[str, str]] = []
    for k, v in settings.to_dict().items():
        rows.append({"key": f"settings.{k}", "value": json.dumps(_clean_nan(v), default=str)})
    for k, v in (provenance or {}).items():
        if k == "settings":
            continue
        rows.append(
            {"key": k, "value": v if isinstance(v, str) else json.dumps(_clean_nan(v), default=str)}
        )
    return pd.DataFrame(rows, columns=["key", "value"])


def _excel_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Excel has no NaN/inf cells: leave them empty; booleans stay booleans."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].where(np.isfinite(out[col].to_numpy(dtype=np.float64)), None)
    return out


def write_tables(
    folder: str | os.PathLike[str],
    table: pd.DataFrame,
    summary: pd.DataFrame,
    excluded: pd.DataFrame | None,
    *,
    formats: Sequence[str] = ("csv",),
    settings: Settings | None = None,
    provenance: Mapping[str, Any] | None = None,
    pixel_size_nm: float | None = None,
    pixel_size_source: str | None = None,
    stem: str = "particles",
) -> dict[str, Any]:
    """Write the particle table in each format, plus ``summary.csv`` and ``excluded.csv``.

    Returns
    -------
    dict
        ``{"particles": {format: file name}, "summary": …, "excluded": …}`` (names relative to
        ``folder``).
    """
    folder = Path(folder)
    formats = _check_formats(formats, allow_empty=True)
    settings = settings if settings is not None else Settings()
    excluded = excluded if excluded is not None else pd.DataFrame({"reason": []})
    files: dict[str, Any] = {"particles": {}}
    for fmt in formats:
        name = f"{stem}.{fmt}"
        target = folder / name
        if fmt == "csv":
            atomic_write(target, lambda tmp: table.to_csv(tmp, index=False))
        elif fmt == "parquet":
            atomic_write(target, lambda tmp: table.to_parquet(tmp, index=False, engine="pyarrow"))
        elif fmt == "xlsx":
            defs = definitions_table(
                table.columns,
                settings=settings,
                pixel_size_nm=pixel_size_nm,
                pixel_size_source=pixel_size_source,
            )
            sheets = {
                "Particles": _excel_safe(table),
                "Summary": _excel_safe(summary),
                "Excluded": _excel_safe(excluded),
                "Definitions": defs,
                "Settings": _settings_table(settings, provenance),
            }

            def _xlsx(tmp: Path, sheets: dict[str, pd.DataFrame] = sheets) -> None:
                with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
                    for sheet, df in sheets.items():
                        df.to_excel(xw, sheet_name=sheet, index=False)

            atomic_write(target, _xlsx)
        files["particles"][fmt] = name
    summary_name = "summary.csv" if stem == "particles" else f"{stem}_summary.csv"
    atomic_write(folder / summary_name, lambda tmp: summary.to_csv(tmp, index=False))
    files["summary"] = summary_name
    excluded_name = "excluded.csv" if stem == "particles" else f"{stem}_excluded.csv"
    atomic_write(folder / excluded_name, lambda tmp: excluded.to_csv(tmp, index=False))
    files["excluded"] = excluded_name
    return files


def _check_formats(formats: Sequence[str] | str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f.strip()]
    out: list[str] = []
    for f in formats:
        f = f.strip().lower()
        if f not in FORMATS:
            raise ValueError(f"formats: expected some of {FORMATS}, got {f!r}")
        if f not in out:
            out.append(f)
    if not out and not allow_empty:
        raise ValueError(f"formats: expected at least one of {FORMATS}, got none")
    return tuple(out)


def read_particle_table(
    folder: str | os.PathLike[str], manifest: Mapping[str, Any]
) -> pd.DataFrame:
    """Read back the particle table an image folder's manifest lists.

    Parquet is preferred, then CSV, then XLSX.
    """
    folder = Path(folder)
    files = manifest.get("files", {}).get("particles", {})
    if "parquet" in files:
        return pd.read_parquet(folder / files["parquet"])
    if "csv" in files:
        return pd.read_csv(folder / files["csv"])
    if "xlsx" in files:
        return pd.read_excel(folder / files["xlsx"], sheet_name="Particles")
    raise ValueError(f"{folder / MANIFEST_NAME}: lists no particle table")


# --------------------------------------------------------------------------------------------
# manifests


def _listed_files(manifest: Mapping[str, Any]) -> list[str]:
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, Mapping):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(manifest.get("files", {}))
    return out


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a finished image folder, or None if the folder is missing or incomplete.

    A folder is finished when ``manifest.json`` parses, says ``"complete": true`` and every file it
    lists exists.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("complete") is not True:
        return None
    if not all((folder / f).is_file() for f in _listed_files(manifest)):
        return None
    return manifest


def write_image_outputs(
    result: AnalysisResult,
    outdir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("csv",),
    images: bool = True,
    name: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write one image's folder: tables, summary, excluded areas, pictures and ``manifest.json``.

    Parameters
    ----------
    result : AnalysisResult
        What :func:`antema_fast.analyze` returned.
    outdir : path-like
        The folder ``<outdir>/<name>/`` is (re)created in.
    formats : sequence of {"csv", "xlsx", "parquet"}
        Formats of the particle table (``summary.csv`` and ``excluded.csv`` are always written);
        may be empty when the caller stores the particle table elsewhere.
    images : bool
        Also draw the PNG pictures (micrograph with scale bar, segmentation overlay, particle map,
        histograms) and an ``index.html`` page.
    name : str, optional
        Folder name; defaults to a safe form of ``result.name``.
    extra : mapping, optional
        More keys for the manifest (for example the sample name).

    Returns
    -------
    pathlib.Path
        The image's folder.

    Notes
    -----
    The folder is built as ``<outdir>/.<name>.partial-<pid>`` and renamed into place when complete,
    replacing an older folder of the same name; ``manifest.json`` is written last.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    formats = _check_formats(formats, allow_empty=True)
    folder = name if name is not None else folder_name(result.name)
    final = outdir / folder
    tmp = outdir / f".{folder}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        settings = Settings(**_settings_kwargs(result.provenance.get("settings")))
        files = write_tables(
            tmp,
            result.table,
            result.summary,
            result.excluded,
            formats=formats,
            settings=settings,
            provenance=result.provenance,
            pixel_size_nm=result.pixel_size_nm,
            pixel_size_source=result.provenance.get("pixel_size_source"),
        )
        if images:
            from . import plots, report

            files["pictures"] = plots.write_image_pictures(result, tmp)
        timings = dict(result.timings)
        timings["export"] = time.perf_counter() - t0
        manifest = _image_manifest(result, folder, formats, files, timings, extra)
        if images:
            files["report"] = report.write_image_report(tmp, manifest)
            manifest["files"] = files
        atomic_write_text(tmp / MANIFEST_NAME, dumps_json(manifest))
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _settings_kwargs(d: Mapping[str, Any] | None) -> dict[str, Any]:
    if not d:
        return {}
    known = set(Settings.__dataclass_fields__)
    return {k: v for k, v in d.items() if k in known}


def _image_manifest(
    result: AnalysisResult,
    folder: str,
    formats: Sequence[str],
    files: Mapping[str, Any],
    timings: Mapping[str, float],
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "kind": "antema_fast image",
        "manifest_version": MANIFEST_VERSION,
        "complete": True,
        "name": result.name,
        "folder": folder,
        "n_particles": int(result.n_particles),
        "n_excluded": int(len(result.excluded)),
        "counts": dict(result.counts),
        "image_shape": list(np.shape(result.mask)),
        "pixel_size_nm": result.pixel_size_nm,
        "pixel_size_source": result.provenance.get("pixel_size_source"),
        "formats": list(formats),
        "timings_s": dict(timings),
        "summary": result.summary.to_dict(orient="records"),
        "provenance": dict(result.provenance),
        "files": dict(files),
    }
    if extra:
        manifest.update(extra)
    return manifest


def _swap_into_place(tmp: Path, final: Path) -> None:
    old: Path | None = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
