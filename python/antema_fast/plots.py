"""Pictures of a result: micrograph with scale bar, segmentation overlay, particle map, histograms.

matplotlib is imported only when a picture is drawn, with the non-interactive Agg backend, so that
importing the package stays cheap and drawing works without a display.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .pipeline import AnalysisResult

__all__ = [
    "HISTOGRAM_QUANTITIES",
    "draw_histograms",
    "draw_micrograph",
    "draw_overlay",
    "draw_particle_map",
    "nice_scale_bar_nm",
    "write_histograms",
    "write_image_pictures",
]

#: Quantities drawn as histograms: column -> (axis label, unit).
HISTOGRAM_QUANTITIES: dict[str, tuple[str, str]] = {
    "equivalent_diameter_nm": ("equivalent diameter", "nm"),
    "feret_min_nm": ("min Feret diameter", "nm"),
    "feret_max_nm": ("max Feret diameter", "nm"),
    "circularity": ("circularity", ""),
}

_DISPLAY_MAX = 1000  # longest side of the image drawn (= figure width in px; larger are reduced)
_WIDTH_IN = 8.0
_DPI = 125
_COLOUR_SINGLE = "#00e5ff"
_COLOUR_SEPARATED = "#ff3df2"
_COLOUR_IGNORED = "#9fa6ad"
_REASON_COLOURS = ("#ffb000", "#ff3b30", "#7cff4d", "#4d7cff", "#ffffff")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _display(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Image scaled to [0, 1] with robust contrast, reduced so its longest side ≤ _DISPLAY_MAX.

    Returns the display image and the reduction factor (≥ 1).
    """
    img = np.asarray(image, dtype=np.float32)
    factor = max(1.0, max(img.shape) / _DISPLAY_MAX)
    if factor > 1.0:
        import cv2

        h = max(1, round(img.shape[0] / factor))
        w = max(1, round(img.shape[1] / factor))
        img = np.asarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), dtype=np.float32)
    finite = img[np.isfinite(img)]
    if finite.size:
        lo, hi = np.percentile(finite, [0.5, 99.5])
    else:
        lo, hi = 0.0, 1.0
    if not hi > lo:
        hi = lo + 1.0
    out = np.clip((img - lo) / (hi - lo), 0.0, 1.0)
    return np.nan_to_num(out, nan=0.0), factor


def nice_scale_bar_nm(width_nm: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10ⁿ nm) close to a fifth of the image width.

    >>> nice_scale_bar_nm(100.0)
    20.0
    >>> nice_scale_bar_nm(37.0)
    5.0
    """
    if not (width_nm > 0 and math.isfinite(width_nm)):
        raise ValueError(f"width_nm: expected a finite number > 0, got {width_nm!r}")
    target = width_nm / 5.0
    exp = math.floor(math.log10(target))
    best = 1.0
    for m in (1.0, 2.0, 5.0):
        if m * 10.0**exp <= target:
            best = m
    return best * 10.0**exp


def _format_length(nm: float) -> str:
    if nm >= 1000:
        return f"{nm / 1000:g} µm"
    if nm < 1:
        return f"{nm * 10:g} Å"
    return f"{nm:g} nm"


def _new_figure(shape: tuple[int, int], strip_in: float = 0.0) -> tuple[Figure, Axes]:
    """A figure whose axes show the image edge to edge, with an optional strip below (inches)."""
    plt = _pyplot()
    h, w = shape
    image_in = _WIDTH_IN * h / max(w, 1)
    fig = plt.figure(figsize=(_WIDTH_IN, image_in + strip_in), dpi=_DPI)
    bottom = strip_in / (image_in + strip_in)
    ax = fig.add_axes((0.0, bottom, 1.0, 1.0 - bottom))
    ax.set_axis_off()
    return fig, ax


def _show_image(ax: Axes, image: np.ndarray, mask: np.ndarray | None = None) -> None:
    """Draw the image (optionally with a translucent mask) in full-resolution pixel coordinates."""
    disp, _ = _display(image)
    h, w = image.shape
    if mask is None:
        rgb = np.repeat(disp[..., None], 3, axis=2)
    else:
        m, _ = _display(np.asarray(mask, dtype=np.float32))
        alpha = 0.45 * (m > 0.5)[..., None]
        colour = np.array([1.0, 0.25, 0.0], dtype=np.float32)
        rgb = disp[..., None] * (1.0 - alpha) + colour * alpha
    # the display image is already at the figure's resolution: no resampling when drawing
    ax.imshow(rgb, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def _scale_bar(ax: Axes, shape: tuple[int, int], pixel_size_nm: float) -> None:
    from matplotlib.patches import Rectangle

    h, w = shape
    length_nm = nice_scale_bar_nm(w * pixel_size_nm)
    length_px = length_nm / pixel_size_nm
    margin = 0.04 * w
    thick = max(2.0, 0.012 * h)
    x0 = w - margin - length_px
    y0 = h - margin - thick
    ax.add_patch(
        Rectangle((x0, y0), length_px, thick, facecolor="white", edgecolor="black", linewidth=0.8)
    )
    ax.text(
        x0 + length_px / 2,
        y0 - 0.6 * thick,
        _format_length(length_nm),
        color="white",
        ha="center",
        va="bottom",
        fontsize=12,
        fontweight="bold",
        bbox={"facecolor": "black", "alpha": 0.45, "edgecolor": "none", "pad": 1.5},
    )


def _save(fig: Figure, path: Path) -> None:
    from .export import atomic_write

    plt = _pyplot()
    try:
        atomic_write(
            path,
            lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI, pil_kwargs={"compress_level": 3}),
        )
    finally:
        plt.close(fig)


def draw_micrograph(image: np.ndarray, pixel_size_nm: float, path: str | os.PathLike[str]) -> Path:
    """Draw the micrograph with a scale bar into a PNG file."""
    fig, ax = _new_figure(image.shape)
    _show_image(ax, image)
    _scale_bar(ax, image.shape, pixel_size_nm)
    _save(fig, Path(path))
    return Path(path)


def draw_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    pixel_size_nm: float,
    path: str | os.PathLike[str],
    ignored: np.ndarray | None = None,
) -> Path:
    """Draw the segmentation mask in translucent colour over the micrograph into a PNG file;
    ``ignored`` pixels (``Settings.ignore_regions``) hatched."""
    fig, ax = _new_figure(image.shape)
    _show_image(ax, image, mask)
    _hatch_ignored(ax, ignored)
    _scale_bar(ax, image.shape, pixel_size_nm)
    _save(fig, Path(path))
    return Path(path)


def _hatch_ignored(ax: Axes, ignored: np.ndarray | None) -> Any:
    """Hatch the bounding boxes of the ignored pixels' connected regions (the rectangles of
    ``Settings.ignore_regions``); returns a legend handle, or None when there are none."""
    if ignored is None or not np.any(ignored):
        return None
    import cv2
    from matplotlib.patches import Patch, Rectangle

    n, _, stats, _ = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(ignored, dtype=np.uint8), connectivity=4
    )
    c = _COLOUR_IGNORED
    for x, y, w, h, _ in stats[1:n]:
        ax.add_patch(
            Rectangle((x - 0.5, y - 0.5), w, h, fill=False, hatch="///", edgecolor=c, linewidth=1)
        )
    return Patch(label="ignored region", fill=False, hatch="///", edgecolor=c, linewidth=1)


def _outline(particle: Any) -> list[np.ndarray]:
    """Outer contours of a particle's bitmap, in image (x = col, y = row) pixel coordinates."""
    import cv2

    bitmap = np.ascontiguousarray(np.asarray(particle.bitmap, dtype=np.uint8))
    padded = np.pad(bitmap, 1)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        pts = c.reshape(-1, 2).astype(np.float64)
        pts[:, 0] += float(particle.col0) - 1.0
        pts[:, 1] += float(particle.row0) - 1.0
        if len(pts) == 1:  # a single pixel: draw a tiny square
            x, y = pts[0]
            pts = np.array(
                [[x - 0.5, y - 0.5], [x + 0.5, y - 0.5], [x + 0.5, y + 0.5], [x - 0.5, y + 0.5]]
            )
        out.append(np.vstack([pts, pts[:1]]))
    return out


def draw_particle_map(
    image: np.ndarray,
    particles: Sequence[Any],
    table: pd.DataFrame,
    excluded: pd.DataFrame,
    pixel_size_nm: float,
    path: str | os.PathLike[str],
    ignored: np.ndarray | None = None,
) -> Path:
    """Draw each particle's outline and id, separated ones in their own colour, excluded areas.

    Particles are matched to table rows by order (``particles[i]`` is row ``i``); the id written
    is the row's ``particle_id``. Excluded areas are drawn as dashed boxes coloured by reason,
    ``ignored`` pixels (``Settings.ignore_regions``) hatched.
    """
    import cv2
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    fig, ax = _new_figure(image.shape, strip_in=0.45)
    ids = (
        table["particle_id"].to_numpy()
        if "particle_id" in table.columns and len(table) == len(particles)
        else np.arange(1, len(particles) + 1)
    )
    # Outlines and ids are drawn straight into the display raster with OpenCV (anti-aliased):
    # a thousand matplotlib text objects would take seconds.
    disp, factor = _display(image)
    rgb = np.ascontiguousarray(np.repeat((disp * 255).astype(np.uint8)[..., None], 3, axis=2))
    colours = {False: _rgb255(_COLOUR_SINGLE), True: _rgb255(_COLOUR_SEPARATED)}
    labels: list[tuple[str, float, float]] = []
    for pid, p in zip(ids, particles, strict=True):
        colour = colours[bool(getattr(p, "separated", False))]
        for line in _outline(p):
            pts = np.round(((line + 0.5) / factor - 0.5) * 16).astype(np.int32)  # 4 fraction bits
            cv2.polylines(rgb, [pts], True, colour, 1, cv2.LINE_AA, shift=4)
        rows, cols = np.nonzero(p.bitmap)
        if rows.size:
            x = (cols.mean() + p.col0 + 0.5) / factor - 0.5
            y = (rows.mean() + p.row0 + 0.5) / factor - 0.5
            labels.append((str(int(pid)), x, y))
    scale = 0.4 if len(particles) < 150 else 0.3
    font = cv2.FONT_HERSHEY_SIMPLEX
    for text, x, y in labels:
        (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
        org = (int(round(x - tw / 2)), int(round(y + th / 2)))
        cv2.putText(rgb, text, org, font, scale, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(rgb, text, org, font, scale, (255, 255, 0), 1, cv2.LINE_AA)
    h, w = image.shape
    ax.imshow(rgb, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="nearest")
    handles = [
        Line2D(
            [], [], color=_COLOUR_SINGLE, label=f"particle ({len(particles) - _n_sep(particles)})"
        ),
        Line2D([], [], color=_COLOUR_SEPARATED, label=f"separated ({_n_sep(particles)})"),
    ]
    bbox_cols = ("bbox_row_min", "bbox_col_min", "bbox_row_max", "bbox_col_max")
    if len(excluded) and "reason" in excluded.columns and all(c in excluded for c in bbox_cols):
        reasons = sorted(str(r) for r in excluded["reason"].unique())
        reason_colour = {
            r: _REASON_COLOURS[i % len(_REASON_COLOURS)] for i, r in enumerate(reasons)
        }
        for _, row in excluded.iterrows():
            r0, c0 = float(row["bbox_row_min"]), float(row["bbox_col_min"])
            r1, c1 = float(row["bbox_row_max"]), float(row["bbox_col_max"])
            ax.add_patch(
                Rectangle(
                    (c0 - 0.5, r0 - 0.5),
                    c1 - c0 + 1,
                    r1 - r0 + 1,
                    fill=False,
                    edgecolor=reason_colour[str(row["reason"])],
                    linestyle="--",
                    linewidth=1.0,
                )
            )
        for r in reasons:
            n = int((excluded["reason"].astype(str) == r).sum())
            handles.append(
                Line2D([], [], color=reason_colour[r], linestyle="--", label=f"excluded: {r} ({n})")
            )
    hatch = _hatch_ignored(ax, ignored)
    if hatch is not None:
        handles.append(hatch)
    # the legend sits in the strip under the image, so it hides no particle
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 4),
        fontsize=8,
        frameon=False,
        borderaxespad=0.2,
    )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    _scale_bar(ax, image.shape, pixel_size_nm)
    _save(fig, Path(path))
    return Path(path)


def _rgb255(colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` → (r, g, b) in 0–255."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _n_sep(particles: Sequence[Any]) -> int:
    return sum(1 for p in particles if bool(getattr(p, "separated", False)))


def lognormal_fit(values: np.ndarray) -> tuple[float, float] | None:
    """Maximum-likelihood log-normal parameters (μ, σ of log x) of positive values, or None.

    >>> mu, sigma = lognormal_fit(np.array([1.0, np.e, np.e ** 2]))
    >>> round(mu, 6), round(sigma, 6)
    (1.0, 0.816497)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 2:
        return None
    logs = np.log(v)
    sigma = float(logs.std())
    if not sigma > 1e-9:  # constant values: no distribution to fit
        return None
    return float(logs.mean()), sigma


def draw_histograms(fig: Figure, table: pd.DataFrame, title: str | None = None) -> None:
    """Histograms of equivalent diameter, Feret min/max and circularity, on a 2 × 2 grid.

    Each panel states n and mean ± SD and draws the maximum-likelihood log-normal fit scaled to
    the counts.
    """
    axes = fig.subplots(2, 2).ravel()
    for ax, (col, (label, unit)) in zip(axes, HISTOGRAM_QUANTITIES.items(), strict=True):
        values = (
            pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
            if col in table.columns
            else np.empty(0)
        )
        values = values[np.isfinite(values)]
        xlabel = f"{label} ({unit})" if unit else label
        ax.set_xlabel(xlabel)
        ax.set_ylabel("particles")
        if values.size == 0:
            ax.text(0.5, 0.5, "no particles", transform=ax.transAxes, ha="center", va="center")
            continue
        bins = int(np.clip(np.ceil(np.sqrt(values.size)) + 1, 5, 50))
        lo, hi = float(values.min()), float(values.max())
        if not hi > lo:
            lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
        counts, edges, _ = ax.hist(
            values, bins=bins, range=(lo, hi), color="#4c72b0", edgecolor="white", linewidth=0.5
        )
        mean = float(values.mean())
        sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
        u = f" {unit}" if unit else ""
        text = f"n = {values.size}\nmean ± SD = {mean:.3g} ± {sd:.2g}{u}"
        fit = lognormal_fit(values)
        if fit is not None:
            mu, sigma = fit
            x = np.linspace(max(lo, 1e-12), hi, 200)
            pdf = np.exp(-((np.log(x) - mu) ** 2) / (2 * sigma**2)) / (
                x * sigma * math.sqrt(2 * math.pi)
            )
            width = edges[1] - edges[0]
            ax.plot(
                x,
                pdf * values.size * width,
                color="#dd4444",
                linewidth=1.5,
                label=f"log-normal fit\nmedian {math.exp(mu):.3g}{u}, σ = {sigma:.2g}",
            )
            ax.legend(fontsize=7, loc="upper right")
        ax.text(
            0.02,
            0.97,
            text,
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.set_ylim(0, max(1.0, float(counts.max())) * 1.3)
    if title:
        fig.suptitle(title)


def write_histograms(
    table: pd.DataFrame, path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Draw :func:`draw_histograms` into a PNG file."""
    plt = _pyplot()
    fig = plt.figure(figsize=(9.0, 7.0), dpi=100)
    draw_histograms(fig, table, title)
    # fixed margins: a layout engine would cost more than the drawing itself
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.93, wspace=0.22, hspace=0.3)
    from .export import atomic_write

    try:
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
    return Path(path)


def write_image_pictures(result: AnalysisResult, folder: str | os.PathLike[str]) -> dict[str, str]:
    """Write the four PNG pictures of one image into ``folder``.

    Returns
    -------
    dict
        ``{"micrograph": "micrograph.png", "overlay": "overlay.png", "particles":
        "particle_map.png", "histograms": "histograms.png"}``.
    """
    folder = Path(folder)
    image = np.asarray(result.micrograph.data)
    s = result.pixel_size_nm
    files = {
        "micrograph": "micrograph.png",
        "overlay": "overlay.png",
        "particles": "particle_map.png",
        "histograms": "histograms.png",
    }
    prov = result.provenance
    regions = (prov.get("quality") or {}).get("ignored_regions_used") or (
        prov.get("settings") or {}
    ).get("ignore_regions")
    ignored = Settings(ignore_regions=regions).ignored_mask(image.shape) if regions else None
    draw_micrograph(image, s, folder / files["micrograph"])
    draw_overlay(image, result.mask, s, folder / files["overlay"], ignored)
    draw_particle_map(
        image,
        result.particles,
        result.table,
        result.excluded,
        s,
        folder / files["particles"],
        ignored,
    )
    write_histograms(result.table, folder / files["histograms"], title=result.name)
    return files
