"""Batches: many micrographs into one output folder, past bad files, resumable.

Used by ``antema analyze``. Each input image gets its own folder (see
:func:`antema_fast.export.write_image_outputs`); the run folder gets the pooled table, summary and
histograms, ``failures.csv``, ``run.json`` and an ``index.html`` report. An image whose folder holds
a complete manifest made from the same input and settings is finished: ``resume=True`` skips it.
"""

from __future__ import annotations

import glob
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ._settings import Settings

__all__ = [
    "SUPPORTED_SUFFIXES",
    "BatchReport",
    "ImageRecord",
    "assign_folders",
    "expand_inputs",
    "run_batch",
]

#: File suffixes picked up when a folder is given (a file named explicitly is always tried).
SUPPORTED_SUFFIXES = (".dm3", ".dm4", ".tif", ".tiff", ".emd", ".ser", ".mrc", ".hspy")

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class ImageRecord:
    """One finished image of a batch."""

    path: str
    name: str
    folder: str
    n_particles: int
    status: str  # "done" or "skipped" (already finished, resumed)
    seconds: float
    manifest: dict[str, Any]
    warnings: tuple[str, ...] = ()


@dataclass
class BatchReport:
    """What a batch did: finished images, failures (file, reason) and the pooled result."""

    outdir: Path
    images: list[ImageRecord] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    pooled_table: pd.DataFrame | None = None
    pooled_summary: pd.DataFrame | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every input was analysed."""
        return not self.failures


def expand_inputs(
    inputs: Iterable[str | os.PathLike[str]],
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to analyse from files, folders and glob patterns, in a stable order.

    A folder contributes its files with a :data:`SUPPORTED_SUFFIXES` suffix (not its sub-folders;
    use a ``**`` glob for those); when it has none, the reason says what it does hold (pictures,
    micrographs in sub-folders) and how to name them. Patterns are expanded with
    :func:`glob.glob` (``recursive=True``) and contribute the matches with a supported suffix, or
    with the suffix the pattern itself ends in: ``"figs/*.png"`` takes PNG pictures (which carry
    no calibration, so a folder does not pick them up), ``"data/**/*"`` only micrographs. Quoted
    patterns matter where the shell does not expand them (Windows). Duplicates are dropped,
    keeping the first occurrence.

    Returns
    -------
    files : list of pathlib.Path
    missing : list of (input, reason)
        Inputs that matched nothing.
    """
    files: list[Path] = []
    missing: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    def add_folder(d: Path) -> int:
        found = sorted(
            f for f in d.iterdir() if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES
        )
        for f in found:
            add(f)
        return len(found)

    for item in inputs:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            if add_folder(p) == 0:
                missing.append((text, _empty_folder_reason(p)))
        elif p.is_file():
            add(p)
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text, recursive=True))
            named = text.lower()
            n = 0
            for m in matches:
                mp = Path(m)
                suffix = mp.suffix.lower()
                if mp.is_file() and (
                    suffix in SUPPORTED_SUFFIXES or (suffix and named.endswith(suffix))
                ):
                    add(mp)
                    n += 1
            if n == 0:
                missing.append(
                    (
                        text,
                        "pattern matched no micrographs"
                        + (f" ({len(matches)} other file(s))" if matches else ""),
                    )
                )
        else:
            missing.append((text, "no such file or folder"))
    return files, missing


#: Suffixes of plain pictures: readable, but without calibration, so a folder does not pick
#: them up (an output folder of overlays would otherwise be analysed too).
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def _empty_folder_reason(d: Path, limit: int = 10000) -> str:
    """Why folder ``d`` contributed nothing, and what to pass instead: its pictures by suffix
    (:data:`PICTURE_SUFFIXES`), and the micrographs of its sub-folders (a walk of at most
    ``limit`` entries)."""
    reason = f"folder holds no micrographs ({', '.join(SUPPORTED_SUFFIXES)})"
    pictures: dict[str, int] = {}
    for f in d.iterdir():
        suffix = f.suffix.lower()
        if suffix in PICTURE_SUFFIXES and f.is_file():
            pictures[suffix] = pictures.get(suffix, 0) + 1
    if pictures:
        suffix, n = max(pictures.items(), key=lambda kv: kv[1])
        reason += (
            f"; it holds {n} {suffix} picture(s), which carry no calibration and are taken only "
            f"when named: pass '{d / ('*' + suffix)}' (quoted) with --pixel-size or --scale-bar-nm"
        )
    seen = 0
    nested = 0
    for root, _dirs, names in os.walk(d):
        if Path(root) == d:
            continue
        for name in names:
            seen += 1
            nested += Path(name).suffix.lower() in SUPPORTED_SUFFIXES
        if seen >= limit:
            break
    if nested:
        reason += (
            f"; its sub-folders hold {nested}{'+' if seen >= limit else ''} micrograph(s), "
            f"which a folder does not include: pass '{d / '**' / '*'}' (quoted)"
        )
    return reason


def assign_folders(files: Sequence[Path]) -> list[str]:
    """A unique, file-system-safe output folder name for each input file.

    The name is the file's stem; when two inputs share a stem the suffix is added
    (``img_dm3``, ``img_tif``), and then a counter.
    """
    from .export import folder_name

    stems = [folder_name(f.stem) for f in files]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    out: list[str] = []
    used: set[str] = set()
    for f, s in zip(files, stems, strict=True):
        name = s if counts[s] == 1 else folder_name(f"{f.stem}_{f.suffix.lstrip('.')}")
        base, k = name, 2
        while name.lower() in used:
            name = f"{base}_{k}"
            k += 1
        used.add(name.lower())
        out.append(name)
    return out


def _is_finished(
    manifest: dict[str, Any] | None,
    path: Path,
    settings: Settings,
    pixel_size_nm: float | None,
    formats: Sequence[str],
    images: bool,
) -> bool:
    if manifest is None:
        return False
    from .pipeline import _jsonable

    prov = manifest.get("provenance") or {}
    try:
        same_input = Path(str(prov.get("input"))).resolve() == path.resolve()
    except OSError:
        same_input = False
    recorded = prov.get("settings")
    if isinstance(recorded, dict):
        # a field the manifest lacks came in a later version, whose new options default to
        # what earlier versions did: a run resumed after such an upgrade keeps its images
        recorded = {**_jsonable(Settings().to_dict()), **recorded}
    if not same_input or recorded != _jsonable(settings.to_dict()):
        return False
    if pixel_size_nm is not None and (
        manifest.get("pixel_size_source") != "user"
        or abs(float(manifest.get("pixel_size_nm") or 0.0) - pixel_size_nm) > 1e-12 * pixel_size_nm
    ):
        return False
    if not set(formats) <= set(manifest.get("formats") or ()):
        return False
    return not (images and not (manifest.get("files") or {}).get("pictures"))


Progress = Callable[[int, int, Path, str, int | None, float, tuple[str, ...]], None]


def _renamed(result: Any, name: str) -> Any:
    """The result under another image name (``image`` columns included)."""
    import dataclasses

    table = result.table.copy()
    table["image"] = name
    excluded = result.excluded.copy()
    if "image" in excluded.columns:
        excluded["image"] = name
    return dataclasses.replace(result, name=name, table=table, excluded=excluded)


def run_batch(
    inputs: Sequence[Path],
    outdir: str | os.PathLike[str],
    settings: Settings,
    *,
    sample: str | None = None,
    pixel_size_nm: float | None = None,
    formats: Sequence[str] = ("csv",),
    images: bool = True,
    resume: bool = False,
    missing: Sequence[tuple[str, str]] = (),
    progress: Progress | None = None,
    segmenter: Any = None,
) -> BatchReport:
    """Analyse every input into ``outdir``, keep going past failures, write pooled outputs.

    Parameters
    ----------
    inputs : sequence of pathlib.Path
        Files, as :func:`expand_inputs` returns them.
    outdir : path-like
        Run folder; created if needed.
    settings : Settings
        Analysis settings, shared by every image.
    sample : str, optional
        Pool the inputs as one specimen of this name (a ``sample`` column, the report's title).
    pixel_size_nm : float, optional
        Overrides every file's calibration.
    formats, images
        As for :func:`antema_fast.export.write_image_outputs`.
    resume : bool
        Skip images whose folder holds a complete manifest from the same input and settings.
    missing : sequence of (input, reason)
        Inputs that matched nothing; listed with the failures.
    progress : callable, optional
        ``progress(i, n, path, status, n_particles, seconds, messages)``, called before (status
        ``"running"``) and after (``"done"``, ``"skipped"``, ``"failed"``) each image.
    segmenter : Segmenter, optional
        A loaded engine; by default one is made from ``settings`` when the first image needs it.

    Returns
    -------
    BatchReport

    Raises
    ------
    Exception
        Whatever makes the segmentation engine itself unusable (a missing model, a bad backend):
        that is not a problem of one file, and every image would fail the same way.
    """
    from . import export
    from .pipeline import _make_segmenter, analyze, summarize

    t_run = time.perf_counter()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    formats = export._check_formats(formats)
    report = BatchReport(outdir=outdir, failures=[(str(a), b) for a, b in missing])
    folders = assign_folders(inputs)
    stem_counts: dict[str, int] = {}
    for p in inputs:
        stem_counts[p.stem] = stem_counts.get(p.stem, 0) + 1
    duplicate_stems = {stem for stem, k in stem_counts.items() if k > 1}
    tables: list[pd.DataFrame] = []
    excluded: list[pd.DataFrame] = []
    n = len(inputs)
    extra = {"sample": sample} if sample else None
    for i, (path, folder) in enumerate(zip(inputs, folders, strict=True), start=1):
        t0 = time.perf_counter()
        target = outdir / folder
        if resume:
            manifest = export.read_manifest(target)
            if _is_finished(manifest, path, settings, pixel_size_nm, formats, images):
                assert manifest is not None
                try:
                    table = export.read_particle_table(target, manifest)
                    exc = pd.read_csv(target / manifest["files"]["excluded"])
                except Exception:  # unreadable leftovers: analyse again
                    manifest = None
                if manifest is not None:
                    tables.append(table)
                    excluded.append(exc)
                    rec = ImageRecord(
                        str(path),
                        str(manifest.get("name")),
                        folder,
                        int(manifest.get("n_particles", len(table))),
                        "skipped",
                        0.0,
                        manifest,
                    )
                    report.images.append(rec)
                    if progress:
                        progress(i, n, path, "skipped", rec.n_particles, 0.0, ())
                    continue
        if progress:
            progress(i, n, path, "running", None, 0.0, ())
        if segmenter is None:
            segmenter = _make_segmenter(settings)  # errors here are fatal for the whole run
        try:
            # warnings (odd calibration, converted data) are kept with the image, not printed
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = analyze(
                    path, pixel_size_nm=pixel_size_nm, settings=settings, segmenter=segmenter
                )
            messages = tuple(dict.fromkeys(str(w.message) for w in caught))
            check = result.provenance.get("scale_check") or {}
            if (check.get("merged_scale") or {}).get("regions"):
                # auto_scale changed the mask: say so beside the warnings (an unconfirmed
                # finding that changed nothing stays in the provenance only)
                messages += (check["message"],)
            if path.stem in duplicate_stems:  # keep the image column unique within the run
                result = _renamed(result, f"{result.name}_{path.suffix.lstrip('.').lower()}")
            written = export.write_image_outputs(
                result, outdir, formats=formats, images=images, name=folder, extra=extra
            )
            manifest = export.read_manifest(written)
            if manifest is None:
                raise RuntimeError(f"{written}: the manifest written is incomplete")
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # one bad file must not stop the batch
            reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            report.failures.append((str(path), reason))
            if progress:
                progress(i, n, path, "failed", None, time.perf_counter() - t0, (reason,))
            continue
        tables.append(result.table)
        excluded.append(result.excluded)
        seconds = time.perf_counter() - t0
        report.images.append(
            ImageRecord(
                str(path),
                result.name,
                folder,
                result.n_particles,
                "done",
                seconds,
                manifest,
                messages,
            )
        )
        if progress:
            progress(i, n, path, "done", result.n_particles, seconds, messages)

    # pooled outputs of the run (or the sample)
    pooled = (
        pd.concat([t for t in tables if len(t.columns)], ignore_index=True)
        if any(len(t.columns) for t in tables)
        else pd.DataFrame({"image": pd.Series([], dtype=object)})
    )
    if sample:
        if "sample" in pooled.columns:
            pooled["sample"] = sample
        else:
            pooled.insert(1 if "image" in pooled.columns else 0, "sample", sample)
    pooled_excl = (
        pd.concat([e for e in excluded if len(e.columns)], ignore_index=True)
        if any(len(e.columns) for e in excluded)
        else pd.DataFrame({"reason": []})
    )
    summary = summarize(pooled, settings)
    files = export.write_tables(
        outdir, pooled, summary, pooled_excl, formats=formats, settings=settings
    )
    fail_df = pd.DataFrame(report.failures, columns=["file", "reason"])
    export.atomic_write(outdir / "failures.csv", lambda tmp: fail_df.to_csv(tmp, index=False))
    files["failures"] = "failures.csv"
    if images:
        from . import plots

        plots.write_histograms(
            pooled,
            outdir / "histograms.png",
            title=f"{sample or 'all images'}: {len(pooled)} particles",
        )
        files["histograms"] = "histograms.png"
    report.pooled_table = pooled
    report.pooled_summary = summary
    report.seconds = time.perf_counter() - t_run
    from . import __version__

    run_manifest = {
        "kind": "antema_fast run",
        "version": __version__,
        "sample": sample,
        "settings": settings.to_dict(),
        "pixel_size_nm": pixel_size_nm,
        "formats": list(formats),
        "images": [
            {
                "input": r.path,
                "name": r.name,
                "folder": r.folder,
                "particles": r.n_particles,
                "status": r.status,
                "warnings": list(r.warnings),
            }
            for r in report.images
        ],
        "failures": [{"file": f, "reason": r} for f, r in report.failures],
        "n_particles": len(pooled),
        "summary": summary.to_dict(orient="records"),
        "seconds": report.seconds,
        "files": files,
    }
    export.atomic_write_text(outdir / "run.json", export.dumps_json(run_manifest))
    from . import report as html_report

    html_report.write_run_report(
        outdir,
        f"Sample {sample}" if sample else "antema analyze",
        [(r.folder, r.manifest) for r in report.images],
        pooled={"n_particles": len(pooled), "summary": run_manifest["summary"], "files": files},
        failures=report.failures,
    )
    return report
