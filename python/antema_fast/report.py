"""Self-contained HTML reports: one ``index.html`` per image folder and one per run or sample.

The pages use relative links only and inline styles, so they open from disk in any browser,
without a server, and keep working when the whole output folder is moved or zipped.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["write_image_report", "write_run_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em;
color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}
.pics{display:flex;flex-wrap:wrap;gap:.6em}.pics figure{margin:0}
.pics img{max-width:440px;height:auto;border:1px solid #ddd}
figcaption{font-size:.8em;color:#555}
.fail{color:#b00}.warn{color:#a60}.small{font-size:.85em;color:#555}
"""

_PICTURE_CAPTIONS = {
    "micrograph": "micrograph with scale bar",
    "overlay": "segmentation overlay",
    "particles": "particles: outlines and ids (separated in magenta), excluded areas dashed",
    "histograms": "histograms with mean ± SD and log-normal fit",
}


def _href(*parts: str) -> str:
    """A relative URL from path parts (percent-encoded, forward slashes)."""
    joined = "/".join(p.strip("/") for p in parts if p)
    return quote(joined)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def _summary_table(records: Sequence[Mapping[str, Any]]) -> str:
    head = (
        "<tr><th class=l>quantity</th><th class=l>unit</th><th>n</th><th>mean</th><th>SD</th>"
        "<th>median</th><th>95 % CI of the mean</th></tr>"
    )
    rows = []
    for r in records:
        ci = f"{_fmt(r.get('ci95_low'))} – {_fmt(r.get('ci95_high'))}"
        rows.append(
            f"<tr><td class=l>{html.escape(str(r.get('quantity')))}</td>"
            f"<td class=l>{html.escape(str(r.get('unit', '')))}</td><td>{_fmt(r.get('count'))}</td>"
            f"<td>{_fmt(r.get('mean'))}</td><td>{_fmt(r.get('sd'))}</td>"
            f"<td>{_fmt(r.get('median'))}</td><td>{ci}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _image_section(manifest: Mapping[str, Any], prefix: str, level: int = 2) -> str:
    files = manifest.get("files", {})
    name = html.escape(str(manifest.get("name")))
    out = [f"<h{level} id='{_href(prefix) or 'image'}'>{name}</h{level}>"]
    counts = manifest.get("counts", {}) or {}
    excl = ", ".join(f"{html.escape(str(k))}: {v}" for k, v in counts.items()) or "none"
    prov = manifest.get("provenance", {}) or {}
    out.append(
        "<p>"
        f"<b>{manifest.get('n_particles', 0)}</b> particles; excluded areas: {excl}.<br>"
        f"<span class=small>input {html.escape(str(prov.get('input')))}; pixel size "
        f"{_fmt(manifest.get('pixel_size_nm'), 6)} nm/px "
        f"({html.escape(str(manifest.get('pixel_size_source')))}); backend "
        f"{html.escape(str(prov.get('backend')))}, model "
        f"{html.escape(str(prov.get('model_name')))}</span></p>"
    )
    q = prov.get("quality") or {}
    if q.get("measured_fraction") is not None:
        out.append(
            f"<p class=small>measured particles cover {q['measured_fraction']:.0%} of the "
            "segmented particle area (border effects aside)</p>"
        )
    notes = [*(prov.get("reader_warnings") or ()), *(q.get("warnings") or ())]
    check = prov.get("scale_check") or {}
    if "merged_scale" not in check or check["merged_scale"].get("regions"):
        notes.append(check.get("message"))  # a warning, or auto_scale changed the mask
    for note in filter(None, notes):
        out.append(f"<p class=warn>warning: {html.escape(str(note))}</p>")
    out.append(_summary_table(manifest.get("summary", [])))
    links = []
    for fmt, fname in (files.get("particles") or {}).items():
        links.append(f"<a href='{_href(prefix, fname)}'>particles ({fmt})</a>")
    for key in ("summary", "excluded"):
        if files.get(key):
            links.append(f"<a href='{_href(prefix, files[key])}'>{key}</a>")
    links.append(f"<a href='{_href(prefix, 'manifest.json')}'>manifest</a>")
    out.append("<p>" + " · ".join(links) + "</p>")
    pics = files.get("pictures") or {}
    if pics:
        figs = []
        for key, fname in pics.items():
            cap = _PICTURE_CAPTIONS.get(key, key)
            src = _href(prefix, fname)
            figs.append(
                f"<figure><a href='{src}'><img src='{src}' alt='{html.escape(cap)}'></a>"
                f"<figcaption>{html.escape(cap)}</figcaption></figure>"
            )
        out.append("<div class=pics>" + "".join(figs) + "</div>")
    return "\n".join(out)


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"{body}\n</body></html>\n"
    )


def write_image_report(folder: str | os.PathLike[str], manifest: Mapping[str, Any]) -> str:
    """Write ``index.html`` for one image folder; returns the file name (``"index.html"``)."""
    from .export import atomic_write_text

    body = _image_section(manifest, "", level=1)
    atomic_write_text(Path(folder) / "index.html", _page(str(manifest.get("name")), body))
    return "index.html"


def write_run_report(
    outdir: str | os.PathLike[str],
    title: str,
    images: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    pooled: Mapping[str, Any] | None = None,
    failures: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write ``<outdir>/index.html`` with the pooled numbers and every image's pictures.

    Parameters
    ----------
    outdir : path-like
        The run's output folder.
    title : str
        Page title (the sample name, or "antema analyze").
    images : sequence of (folder, manifest)
        Each image's folder relative to ``outdir`` and its manifest.
    pooled : mapping, optional
        ``{"n_particles", "summary" (records), "files": {"particles": {fmt: name}, "summary",
        "histograms"}}`` for the pooled table, names relative to ``outdir``.
    failures : sequence of (file, reason)
        Inputs that could not be analysed.
    """
    from .export import atomic_write_text

    parts = [f"<h1>{html.escape(title)}</h1>"]
    n_total = sum(int(m.get("n_particles", 0)) for _, m in images)
    parts.append(
        f"<p>{len(images)} image(s) analysed, {n_total} particles"
        + (f", <span class=fail>{len(failures)} failed</span>" if failures else "")
        + ".</p>"
    )
    # overview table with links to each image's section
    rows = []
    for folder, m in images:
        summ = {r.get("quantity"): r for r in m.get("summary", [])}
        d = summ.get("equivalent_diameter_nm", {})
        rows.append(
            f"<tr><td class=l><a href='#{_href(folder)}'>{html.escape(str(m.get('name')))}</a></td>"
            f"<td>{m.get('n_particles', 0)}</td><td>{_fmt(d.get('mean'))}</td>"
            f"<td>{_fmt(d.get('sd'))}</td><td>{m.get('n_excluded', 0)}</td>"
            f"<td>{_fmt(m.get('pixel_size_nm'), 6)}</td></tr>"
        )
    if rows:
        parts.append(
            "<table><tr><th class=l>image</th><th>particles</th><th>mean d (nm)</th>"
            "<th>SD d (nm)</th><th>excluded</th><th>pixel size (nm/px)</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    if pooled:
        files = pooled.get("files", {})
        parts.append("<h2>All images pooled</h2>")
        parts.append(f"<p><b>{pooled.get('n_particles', 0)}</b> particles.</p>")
        parts.append(_summary_table(pooled.get("summary", [])))
        links = [
            f"<a href='{_href(fname)}'>pooled particles ({fmt})</a>"
            for fmt, fname in (files.get("particles") or {}).items()
        ]
        if files.get("summary"):
            links.append(f"<a href='{_href(files['summary'])}'>pooled summary</a>")
        if files.get("failures"):
            links.append(f"<a href='{_href(files['failures'])}'>failures</a>")
        parts.append("<p>" + " · ".join(links) + "</p>")
        if files.get("histograms"):
            src = _href(files["histograms"])
            parts.append(
                f"<div class=pics><figure><a href='{src}'><img src='{src}' alt='pooled "
                "histograms'></a><figcaption>pooled histograms</figcaption></figure></div>"
            )
    if failures:
        parts.append(
            "<h2 class=fail>Failures</h2><table><tr><th class=l>file</th>"
            "<th class=l>reason</th></tr>"
        )
        for f, reason in failures:
            parts.append(
                f"<tr><td class=l>{html.escape(f)}</td><td class=l>{html.escape(reason)}</td></tr>"
            )
        parts.append("</table>")
    for folder, m in images:
        parts.append(_image_section(m, folder))
    path = Path(outdir) / "index.html"
    atomic_write_text(path, _page(title, "\n".join(parts)))
    return path
