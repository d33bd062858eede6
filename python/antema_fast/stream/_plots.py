"""Pictures of a stream: time series, size distribution over time, growth curves, overlay movie.

matplotlib (Agg) and OpenCV are imported only here, when pictures are asked for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def _time_axis(rows: list[dict[str, Any]]) -> tuple[np.ndarray, str]:
    t = np.array([r.get("time_s", math.nan) for r in rows], dtype=float)
    if t.size and np.all(np.isfinite(t)):
        return t, "time (s)"
    return np.array([r["frame"] for r in rows], dtype=float), "frame"


def plot_stream(writer: Any, tracker: Any | None, outdir: Path, n_tracks: int = 8) -> list[Path]:
    """Write ``timeseries.png``, ``size_vs_time.png`` and (tracking) ``tracks.png``.

    Parameters
    ----------
    writer : StreamWriter
        Holds the time-series rows and each frame's diameters.
    tracker : Tracker or None
        For the growth curves of the ``n_tracks`` longest tracks.
    outdir : Path
        Where the PNGs go.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out: list[Path] = []
    rows = writer.series_rows
    t, tlabel = _time_axis(rows)

    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=120)
    ax1.plot(t, [r["count"] for r in rows], color="tab:blue", lw=1.2)
    ax1.set_xlabel(tlabel)
    ax1.set_ylabel("particles per frame", color="tab:blue")
    ax2 = ax1.twinx()
    mean = np.array([r["mean_diameter_nm"] for r in rows], dtype=float)
    sd = np.array([r["sd_diameter_nm"] for r in rows], dtype=float)
    ax2.plot(t, mean, color="tab:red", lw=1.2)
    ok = np.isfinite(mean) & np.isfinite(sd)
    if ok.any():
        ax2.fill_between(t[ok], (mean - sd)[ok], (mean + sd)[ok], color="tab:red", alpha=0.15, lw=0)
    ax2.set_ylabel("mean equivalent diameter ± SD (nm)", color="tab:red")
    ax1.set_title("Particle count and size over the movie")
    fig.tight_layout()
    p = outdir / "timeseries.png"
    fig.savefig(p)
    plt.close(fig)
    out.append(p)

    all_d = np.concatenate([d for d in writer.diameters if d.size] or [np.empty(0)])
    if all_d.size:
        lo, hi = float(np.nanmin(all_d)), float(np.nanmax(all_d))
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, 41)
        hist = np.stack([np.histogram(d, bins=edges)[0] for d in writer.diameters]).T
        fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
        x_edges = np.append(t, t[-1] + (t[-1] - t[-2] if t.size > 1 else 1.0))
        mesh = ax.pcolormesh(x_edges, edges, hist, cmap="viridis", shading="flat")
        fig.colorbar(mesh, ax=ax, label="particles")
        ax.set_xlabel(tlabel)
        ax.set_ylabel("equivalent diameter (nm)")
        ax.set_title("Size distribution over the movie")
        fig.tight_layout()
        p = outdir / "size_vs_time.png"
        fig.savefig(p)
        plt.close(fig)
        out.append(p)

    if tracker is not None:
        curves = tracker.curves()
        if len(curves):
            lengths = curves.groupby("track_id").size().sort_values(ascending=False, kind="stable")
            chosen = list(lengths.index[:n_tracks])
            fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
            use_time = tlabel.startswith("time")
            for tid in chosen:
                g = curves[curves["track_id"] == tid]
                ax.plot(
                    g["time_s"] if use_time else g["frame"],
                    g["equivalent_diameter_nm"],
                    lw=1.2,
                    marker=".",
                    ms=3,
                    label=f"track {tid}",
                )
            ax.set_xlabel(tlabel)
            ax.set_ylabel("equivalent diameter (nm)")
            ax.set_title(f"Growth curves of the {len(chosen)} longest tracks")
            ax.legend(fontsize=7, ncol=2)
            fig.tight_layout()
            p = outdir / "tracks.png"
            fig.savefig(p)
            plt.close(fig)
            out.append(p)
    return out


def _fourcc(code: str) -> int:
    import cv2

    return int(cv2.VideoWriter_fourcc(*code))  # type: ignore[attr-defined]


class OverlayMovie:
    """MP4 (``mp4v``) of each frame with particle outlines and, when tracking, track ids.

    Written frame by frame; :meth:`close` finishes the file.
    """

    def __init__(self, path: Path, fps: float = 10.0) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self._vw: Any = None
        self._size: tuple[int, int] | None = None

    @staticmethod
    def _to_bgr(img: np.ndarray) -> np.ndarray:
        import cv2

        a = np.asarray(img, dtype=np.float32)
        lo, hi = np.percentile(a, (0.5, 99.5)) if a.size else (0.0, 1.0)
        scale = 255.0 / (hi - lo) if hi > lo else 1.0
        u8 = np.clip((a - lo) * scale, 0, 255).astype(np.uint8)
        return cv2.cvtColor(u8, cv2.COLOR_GRAY2BGR)

    def write(self, fr: Any) -> None:
        """Draw one :class:`FrameResult` and append it."""
        import cv2

        res = fr.result
        frame = self._to_bgr(res.micrograph.data)
        h, w = frame.shape[:2]
        if self._vw is None:
            self._size = (w, h)
            self._vw = cv2.VideoWriter(str(self.path), _fourcc("mp4v"), self.fps, (w, h))
            if not self._vw.isOpened():
                raise OSError(f"{self.path}: OpenCV could not open an mp4v video writer")
        elif (w, h) != self._size:
            frame = cv2.resize(frame, self._size)
        ids = fr.table["track_id"].to_numpy() if "track_id" in fr.table else None
        for k, p in enumerate(res.particles):
            bm = np.ascontiguousarray(p.bitmap, dtype=np.uint8)
            contours, _ = cv2.findContours(bm, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            colour = (0, 200, 255) if not getattr(p, "separated", False) else (255, 160, 0)
            for c in contours:
                cv2.polylines(frame, [c + np.array([p.col0, p.row0])], True, colour, 1)
            if ids is not None:
                ys, xs = np.nonzero(bm)
                if xs.size:
                    org = (int(p.col0 + xs.mean()) - 6, int(p.row0 + ys.mean()) + 4)
                    cv2.putText(
                        frame,
                        str(int(ids[k])),
                        org,
                        cv2.FONT_HERSHEY_SIMPLEX,
                        0.35,
                        (0, 0, 255),
                        1,
                        cv2.LINE_AA,
                    )
        cv2.putText(
            frame,
            f"frame {fr.index}",
            (6, 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        self._vw.write(frame)

    def close(self) -> None:
        """Finish the file."""
        if self._vw is not None:
            self._vw.release()
            self._vw = None
