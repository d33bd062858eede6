"""Linking particles between frames: track ids, growth curves, and events.

The linker works frame by frame, as the stream delivers them:

1. **Overlap** of every particle of the previous frame with every particle of this one (exact,
   from their bitmaps; only pairs whose bounding boxes meet are compared).
2. **Coalescence**: a particle that covers at least ``overlap_fraction`` of the area of two or
   more particles of the previous frame. It continues the track of the largest of them; the
   others end, with fate ``merged_into``.
   **Splitting**: a particle of the previous frame of which two or more particles of this frame
   each lie at least ``overlap_fraction`` inside it. The largest child continues its track; the
   others start new tracks with origin ``split_from``.
3. **Nearest-neighbour linking** of the rest: every (track, particle) pair within the gate
   ``r`` (``max_displacement_nm``, or by default the track's own diameter) of the track's last
   or predicted position is a candidate, with cost
   ``distance / r + size_weight · |Δd| / max(d)``; pairs are accepted in
   increasing cost, each track and particle at most once (a global greedy assignment). Tracks
   not seen for up to ``memory`` frames stay candidates; after that they end as ``disappeared``.
4. Particles left over start new tracks (event ``appearance``, except on the first frame).

Positions are predicted from the last two observations (constant velocity), which keeps drifting
particles on their tracks; the distance used is the smaller of the distances to the predicted and
to the last position, so that centroid jitter (noisy segmentation) is not extrapolated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

_EVENT_COLUMNS = (
    "frame",
    "time_s",
    "event",
    "track_id",
    "parents",
    "children",
    "x_nm",
    "y_nm",
    "diameter_nm",
)


@dataclass
class _Track:
    track_id: int
    first_frame: int
    last_frame: int
    x: float
    y: float
    d: float
    vx: float = 0.0
    vy: float = 0.0
    origin: str = "start"
    fate: str = "end"
    closed: bool = False


def _ids(ids: list[int]) -> str:
    return ";".join(str(i) for i in sorted(ids))


class Tracker:
    """Frame-by-frame particle linker with coalescence and splitting events.

    Parameters
    ----------
    max_displacement_nm : float or None
        Largest distance a particle may move between two analysed frames. None: each track's
        own equivalent diameter (particles in situ rarely move by more than their size between
        frames, and the centroids of large particles jitter more in absolute terms).
    memory : int
        Frames a particle may be missed (not detected) and still continue its track.
    size_weight : float
        Weight of the relative size change in the linking cost.
    overlap_fraction : float
        Fraction of a particle's area that must lie inside another particle of the next (or
        previous) frame for coalescence and splitting.
    predict : bool
        Predict positions with constant velocity from the last two observations.

    Examples
    --------
    >>> import pandas as pd
    >>> t = Tracker(max_displacement_nm=5.0)
    >>> tab = pd.DataFrame({"centroid_x_nm": [10.0], "centroid_y_nm": [10.0],
    ...                     "equivalent_diameter_nm": [4.0]})
    >>> t.update(0, None, tab, None)[0].tolist(), t.update(1, None, tab, None)[0].tolist()
    ([1], [1])
    """

    def __init__(
        self,
        max_displacement_nm: float | None = None,
        memory: int = 3,
        size_weight: float = 1.0,
        overlap_fraction: float = 0.2,
        predict: bool = True,
    ) -> None:
        if max_displacement_nm is not None and not (
            math.isfinite(max_displacement_nm) and max_displacement_nm > 0
        ):
            raise ValueError(
                f"max_displacement_nm: expected None or a number > 0, got {max_displacement_nm!r}"
            )
        if not isinstance(memory, int) or memory < 0:
            raise ValueError(f"memory: expected an integer ≥ 0, got {memory!r}")
        if not (0.0 < overlap_fraction <= 1.0):
            raise ValueError(
                f"overlap_fraction: expected a number in (0, 1], got {overlap_fraction!r}"
            )
        self.max_displacement_nm = max_displacement_nm
        self.memory = memory
        self.size_weight = float(size_weight)
        self.overlap_fraction = float(overlap_fraction)
        self.predict = predict
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._frames: list[int] = []
        self._pos: dict[int, int] = {}  # frame -> position among analysed frames
        self._times: dict[int, float | None] = {}
        self._prev: tuple[np.ndarray, list[Any], np.ndarray] | None = None  # ids, particles, areas
        self._obs: list[np.ndarray] = []  # per frame: (track_id, frame, x, y, d, area_px)
        self._open: set[int] = set()  # ids of tracks not closed
        self.events: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------

    def _new_track(self, frame: int, x: float, y: float, d: float, origin: str) -> int:
        tid = self._next_id
        self._next_id += 1
        self._tracks[tid] = _Track(tid, frame, frame, x, y, d, origin=origin)
        self._open.add(tid)
        return tid

    def _extend(
        self, tid: int, frame: int, x: float, y: float, d: float, *, jump: bool = False
    ) -> None:
        tr = self._tracks[tid]
        gap = frame - tr.last_frame
        if jump:  # coalescence/splitting moves the centroid: not a velocity
            tr.vx = tr.vy = 0.0
        elif gap > 0:
            tr.vx, tr.vy = (x - tr.x) / gap, (y - tr.y) / gap
        tr.x, tr.y, tr.d, tr.last_frame = x, y, d, frame

    def _event(
        self,
        frame: int,
        kind: str,
        tid: int,
        *,
        parents: list[int] | None = None,
        children: list[int] | None = None,
        x: float = math.nan,
        y: float = math.nan,
        d: float = math.nan,
    ) -> dict[str, Any]:
        t = self._times.get(frame)
        ev = {
            "frame": frame,
            "time_s": math.nan if t is None else float(t),
            "event": kind,
            "track_id": tid,
            "parents": _ids(parents or []),
            "children": _ids(children or []),
            "x_nm": x,
            "y_nm": y,
            "diameter_nm": d,
        }
        self.events.append(ev)
        return ev

    @staticmethod
    def _overlaps(prev: list[Any], cur: list[Any]) -> dict[tuple[int, int], int]:
        """Pixel overlap of every (previous, current) pair of particles whose boxes meet."""
        out: dict[tuple[int, int], int] = {}
        if not prev or not cur:
            return out

        def boxes(ps: list[Any]) -> np.ndarray:
            b = np.empty((len(ps), 4), dtype=np.int64)
            for k, p in enumerate(ps):
                h, w = p.bitmap.shape
                b[k] = (p.row0, p.col0, p.row0 + h, p.col0 + w)
            return b

        bp, bc = boxes(prev), boxes(cur)
        hit = (
            (bp[:, None, 0] < bc[None, :, 2])
            & (bc[None, :, 0] < bp[:, None, 2])
            & (bp[:, None, 1] < bc[None, :, 3])
            & (bc[None, :, 1] < bp[:, None, 3])
        )
        for i, j in zip(*np.nonzero(hit), strict=True):
            r0, c0 = max(bp[i, 0], bc[j, 0]), max(bp[i, 1], bc[j, 1])
            r1, c1 = min(bp[i, 2], bc[j, 2]), min(bp[i, 3], bc[j, 3])
            a = prev[i].bitmap[r0 - bp[i, 0] : r1 - bp[i, 0], c0 - bp[i, 1] : c1 - bp[i, 1]]
            b = cur[j].bitmap[r0 - bc[j, 0] : r1 - bc[j, 0], c0 - bc[j, 1] : c1 - bc[j, 1]]
            n = int(np.count_nonzero(a & b))
            if n:
                out[(int(i), int(j))] = n
        return out

    def update(
        self, frame: int, time_s: float | None, table: Any, particles: list[Any] | None
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Link the particles of one frame; return their track ids and the events decided now.

        Parameters
        ----------
        frame : int
            Frame index (increasing from call to call).
        time_s : float or None
            Time of the frame.
        table : pandas.DataFrame
            Particle table with ``centroid_x_nm``, ``centroid_y_nm``, ``equivalent_diameter_nm``.
        particles : list of Particle or None
            Their masks (``row0``, ``col0``, ``bitmap``), in table order; None turns off
            coalescence and splitting detection.
        """
        if self._frames and frame <= self._frames[-1]:
            raise ValueError(f"frame: expected > {self._frames[-1]}, got {frame}")
        n_before = len(self.events)
        self._pos[frame] = len(self._frames)
        self._frames.append(frame)
        self._times[frame] = time_s
        x = np.asarray(table["centroid_x_nm"], dtype=float)
        y = np.asarray(table["centroid_y_nm"], dtype=float)
        d = np.asarray(table["equivalent_diameter_nm"], dtype=float)
        n = len(x)
        ids = np.zeros(n, dtype=np.int64)
        areas = (
            np.array([np.count_nonzero(p.bitmap) for p in particles], dtype=np.int64)
            if particles is not None
            else np.zeros(n, dtype=np.int64)
        )

        # 1-2. coalescence and splitting from mask overlap with the previous frame
        taken_tracks: set[int] = set()
        if particles is not None and self._prev is not None:
            prev_ids, prev_parts, prev_areas = self._prev
            ov = self._overlaps(prev_parts, particles)
            f = self.overlap_fraction
            # each particle's dominant partner in the other frame (largest overlap): a
            # particle passing over another is not a merge or split of either
            best_cur: dict[int, tuple[int, int]] = {}
            best_prev: dict[int, tuple[int, int]] = {}
            for (i, j), cnt in ov.items():
                if cnt > best_cur.get(i, (0, -1))[0]:
                    best_cur[i] = (cnt, j)
                if cnt > best_prev.get(j, (0, -1))[0]:
                    best_prev[j] = (cnt, i)
            parents_of: dict[int, list[int]] = {}
            children_of: dict[int, list[int]] = {}
            for (i, j), cnt in ov.items():
                if cnt >= f * prev_areas[i] and best_cur[i][1] == j:
                    parents_of.setdefault(j, []).append(i)
                if cnt >= f * areas[j] and best_prev[j][1] == i:
                    children_of.setdefault(i, []).append(j)
            for j, par in sorted(parents_of.items()):
                tids = [int(prev_ids[i]) for i in par if not self._tracks[int(prev_ids[i])].closed]
                tids = [t for t in tids if t not in taken_tracks]
                if len(tids) < 2:
                    continue
                area_of = {int(prev_ids[i]): int(prev_areas[i]) for i in par}
                main = max(tids, key=lambda t: (area_of[t], -t))
                ids[j] = main
                taken_tracks.update(tids)
                self._extend(main, frame, x[j], y[j], d[j], jump=True)
                for t in tids:
                    if t != main:
                        tr = self._tracks[t]
                        tr.closed, tr.fate = True, f"merged_into:{main}"
                        self._open.discard(t)
                self._event(
                    frame,
                    "coalescence",
                    main,
                    parents=tids,
                    children=[main],
                    x=x[j],
                    y=y[j],
                    d=d[j],
                )
            for i, ch in sorted(children_of.items()):
                tid = int(prev_ids[i])
                ch = [j for j in ch if ids[j] == 0]
                if len(ch) < 2 or tid in taken_tracks or self._tracks[tid].closed:
                    continue
                ch.sort(key=lambda j: (-areas[j], j))
                ids[ch[0]] = tid
                taken_tracks.add(tid)
                self._extend(tid, frame, x[ch[0]], y[ch[0]], d[ch[0]], jump=True)
                new = []
                for j in ch[1:]:
                    ids[j] = self._new_track(frame, x[j], y[j], d[j], f"split_from:{tid}")
                    new.append(int(ids[j]))
                self._event(
                    frame,
                    "splitting",
                    tid,
                    parents=[tid],
                    children=[tid, *new],
                    x=x[ch[0]],
                    y=y[ch[0]],
                    d=d[ch[0]],
                )

        # 3. global greedy nearest-neighbour linking of the rest
        open_tracks = [
            t
            for t in (self._tracks[k] for k in sorted(self._open))
            if not t.closed and t.track_id not in taken_tracks and t.last_frame != frame
        ]
        free = np.flatnonzero(ids == 0)
        if open_tracks and free.size:
            gaps = np.array([frame - t.last_frame for t in open_tracks], dtype=float)
            tx = np.array([t.x for t in open_tracks])
            ty = np.array([t.y for t in open_tracks])
            td = np.array([t.d for t in open_tracks])
            if self.max_displacement_nm is None:
                rmax = np.maximum(td, 1e-9)[:, None]
            else:
                rmax = np.full((len(open_tracks), 1), float(self.max_displacement_nm))
            dist = np.hypot(tx[:, None] - x[free][None, :], ty[:, None] - y[free][None, :])
            if self.predict:
                px = tx + np.array([t.vx for t in open_tracks]) * gaps
                py = ty + np.array([t.vy for t in open_tracks]) * gaps
                dpred = np.hypot(px[:, None] - x[free][None, :], py[:, None] - y[free][None, :])
                dist = np.minimum(dist, dpred)
            dmax = np.maximum(np.maximum(td[:, None], d[free][None, :]), 1e-12)
            cost = dist / rmax + self.size_weight * np.abs(td[:, None] - d[free][None, :]) / dmax
            cost = cost + 1e-3 * (gaps[:, None] - 1)  # prefer recently seen tracks on ties
            ok = dist <= rmax
            ti, pj = np.nonzero(ok)
            order = np.argsort(cost[ti, pj], kind="stable")
            used_t: set[int] = set()
            used_p: set[int] = set()
            for k in order:
                a, b = int(ti[k]), int(pj[k])
                if a in used_t or b in used_p:
                    continue
                used_t.add(a)
                used_p.add(b)
                j = int(free[b])
                tid = open_tracks[a].track_id
                ids[j] = tid
                self._extend(tid, frame, x[j], y[j], d[j])

        # 4. new tracks
        first = len(self._frames) == 1
        for j in (int(k) for k in np.flatnonzero(ids == 0)):
            tid = self._new_track(frame, x[j], y[j], d[j], "start" if first else "appeared")
            ids[j] = tid
            if not first:
                self._event(frame, "appearance", tid, x=x[j], y=y[j], d=d[j])

        # tracks unseen for more than `memory` frames have disappeared
        for tr in [self._tracks[k] for k in sorted(self._open)]:
            if not tr.closed and len(self._frames) - 1 - self._pos[tr.last_frame] > self.memory:
                self._disappear(tr)

        self._obs.append(np.column_stack([ids, np.full(n, frame), x, y, d, areas]).astype(float))
        self._prev = (ids.copy(), list(particles) if particles is not None else [], areas)
        return ids, self.events[n_before:]

    def _disappear(self, tr: _Track) -> None:
        tr.closed, tr.fate = True, "disappeared"
        self._open.discard(tr.track_id)
        k = self._pos[tr.last_frame]
        gone = self._frames[k + 1] if k + 1 < len(self._frames) else tr.last_frame + 1
        self._event(gone, "disappearance", tr.track_id, x=tr.x, y=tr.y, d=tr.d)

    def finish(self) -> list[dict[str, Any]]:
        """Close the tracks at the end of the movie; return the events decided now.

        Tracks missing from the last frame end as ``disappeared``; the others end as ``end``.
        """
        n_before = len(self.events)
        last = self._frames[-1] if self._frames else None
        for tr in [self._tracks[k] for k in sorted(self._open)]:
            if not tr.closed:
                if tr.last_frame != last:
                    self._disappear(tr)
                else:
                    tr.closed = True
                    self._open.discard(tr.track_id)
        return self.events[n_before:]

    # ------------------------------------------------------------------------------------

    def events_table(self) -> Any:
        """All events so far as a DataFrame (columns: frame, time_s, event, track_id, …)."""
        import pandas as pd

        ev = pd.DataFrame(self.events, columns=list(_EVENT_COLUMNS))
        return ev.sort_values(["frame", "event", "track_id"], kind="stable").reset_index(drop=True)

    def curves(self) -> Any:
        """Growth curves: one row per (track, frame) with position, diameter and area."""
        import pandas as pd

        cols = [
            "track_id",
            "frame",
            "centroid_x_nm",
            "centroid_y_nm",
            "equivalent_diameter_nm",
            "area_px",
        ]
        obs = np.concatenate(self._obs) if self._obs else np.empty((0, len(cols)))
        df = pd.DataFrame(obs, columns=cols)
        df = df.astype({"track_id": np.int64, "frame": np.int64, "area_px": np.int64})
        t = df["frame"].map(lambda f: self._times.get(f))
        df.insert(2, "time_s", pd.to_numeric(t, errors="coerce").astype(float))
        return df.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)

    def tracks_table(self) -> Any:
        """One row per track: span, sizes, growth rate, origin and fate."""
        import pandas as pd

        curves = self.curves()
        rows = []
        for tid, g in curves.groupby("track_id", sort=True):
            tr = self._tracks[int(tid)]
            f = g["frame"].to_numpy(float)
            dd = g["equivalent_diameter_nm"].to_numpy(float)
            t = g["time_s"].to_numpy(float)
            rate_f = float(np.polyfit(f, dd, 1)[0]) if len(f) > 1 else math.nan
            rate_t = (
                float(np.polyfit(t, dd, 1)[0])
                if len(t) > 1 and np.all(np.isfinite(t)) and np.ptp(t) > 0
                else math.nan
            )
            rows.append(
                {
                    "track_id": int(tid),
                    "first_frame": int(f[0]),
                    "last_frame": int(f[-1]),
                    "n_frames": len(f),
                    "first_time_s": float(t[0]),
                    "last_time_s": float(t[-1]),
                    "first_diameter_nm": float(dd[0]),
                    "last_diameter_nm": float(dd[-1]),
                    "mean_diameter_nm": float(dd.mean()),
                    "max_diameter_nm": float(dd.max()),
                    "growth_nm_per_frame": rate_f,
                    "growth_nm_per_s": rate_t,
                    "origin": tr.origin,
                    "fate": tr.fate,
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "track_id",
                "first_frame",
                "last_frame",
                "n_frames",
                "first_time_s",
                "last_time_s",
                "first_diameter_nm",
                "last_diameter_nm",
                "mean_diameter_nm",
                "max_diameter_nm",
                "growth_nm_per_frame",
                "growth_nm_per_s",
                "origin",
                "fate",
            ],
        )
