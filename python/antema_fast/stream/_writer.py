"""Outputs written while the movie runs, so that a crash loses at most the last frame.

CSV files are appended and flushed after every frame: they are the crash-safe record. Parquet
files are written in row groups of ``row_group_frames`` frames to ``<name>.parquet.partial`` and
renamed to ``<name>.parquet`` by :meth:`StreamWriter.close` (also on Ctrl-C, through ``with``),
so a ``.parquet`` file that exists is always complete and readable.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..export import atomic_write, atomic_write_text
from ._sources import SkippedFrame

_FORMATS = ("csv", "parquet")


class _TableSink:
    """One table written as CSV (flushed per frame) and/or Parquet (row groups)."""

    def __init__(self, outdir: Path, name: str, formats: tuple[str, ...], group_frames: int):
        self.csv_path = outdir / f"{name}.csv" if "csv" in formats else None
        self.parquet_path = outdir / f"{name}.parquet" if "parquet" in formats else None
        self._partial = (
            self.parquet_path.with_name(self.parquet_path.name + ".partial")
            if self.parquet_path is not None
            else None
        )
        for p in (self.csv_path, self.parquet_path, self._partial):
            if p is not None and p.exists():
                p.unlink()
        self._fh: IO[str] | None = None
        self._columns: list[str] | None = None
        self._pq: Any = None
        self._schema: Any = None
        self._buffer: list[Any] = []
        self._buffered_frames = 0
        self._group_frames = group_frames
        self._template: Any = None  # an empty frame's table, for an empty Parquet file
        self.rows = 0

    def append(self, df: Any) -> None:
        """Append one frame's rows (an empty frame only counts towards the row group)."""
        if len(df) == 0:
            if self._columns is None:  # the header is known: write it, so the CSV exists
                self._columns = [str(c) for c in df.columns]
                self._template = df
                if self.csv_path is not None:
                    self._fh = self.csv_path.open("w", newline="", encoding="utf-8")
                    df.to_csv(self._fh, header=True, index=False, lineterminator="\n")
                    self._fh.flush()
            self._buffered_frames += 1
            return
        if self._columns is None:
            self._columns = [str(c) for c in df.columns]
        else:
            missing = set(self._columns) ^ {str(c) for c in df.columns}
            if missing:
                raise ValueError(
                    f"{self.csv_path or self.parquet_path}: every frame must give the same "
                    f"columns; these differ from the first frame's: {sorted(missing)}"
                )
            df = df[self._columns]
        if self.csv_path is not None:
            header = self._fh is None
            if self._fh is None:
                self._fh = self.csv_path.open("w", newline="", encoding="utf-8")
            df.to_csv(self._fh, header=header, index=False, lineterminator="\n")
            self._fh.flush()
        if self.parquet_path is not None:
            self._buffer.append(df)
            self._buffered_frames += 1
            if self._buffered_frames >= self._group_frames:
                self._flush_parquet()
        self.rows += len(df)

    def _flush_parquet(self) -> None:
        self._buffered_frames = 0
        if not self._buffer or self._partial is None:
            return
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        df = (
            pd.concat(self._buffer, ignore_index=True) if len(self._buffer) > 1 else self._buffer[0]
        )
        self._buffer = []
        if self._pq is None:
            table = pa.Table.from_pandas(df, preserve_index=False)
            self._schema = table.schema
            self._pq = pq.ParquetWriter(str(self._partial), self._schema)
        else:
            table = pa.Table.from_pandas(df, schema=self._schema, preserve_index=False)
        self._pq.write_table(table)

    def close(self) -> list[Path]:
        """Finish both files; return the paths written."""
        written: list[Path] = []
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.csv_path is not None and self.csv_path.exists():
            written.append(self.csv_path)
        if self.parquet_path is not None and self._partial is not None:
            self._flush_parquet()
            if self._pq is not None:
                self._pq.close()
                self._pq = None
                os.replace(self._partial, self.parquet_path)
                written.append(self.parquet_path)
            elif self._template is not None:  # no rows at all: an empty file with the columns
                self._template.to_parquet(self._partial, index=False)
                os.replace(self._partial, self.parquet_path)
                written.append(self.parquet_path)
        return written


def _write_whole(df: Any, outdir: Path, name: str, formats: tuple[str, ...]) -> list[Path]:
    """Write a table known only at the end (tracks, curves) atomically: temp file, then rename."""
    out = []
    if "csv" in formats:
        out.append(
            atomic_write(
                outdir / f"{name}.csv", lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n")
            )
        )
    if "parquet" in formats:
        out.append(
            atomic_write(outdir / f"{name}.parquet", lambda tmp: df.to_parquet(tmp, index=False))
        )
    return out


class StreamWriter:
    """Incremental writer of a stream's tables.

    Files in ``outdir`` (each as ``.csv`` and/or ``.parquet``):

    - ``particles``: one row per particle per frame (``frame``, ``time_s``, ``track_id`` first);
    - ``timeseries``: one row per analysed frame (count, coverage, mean/SD/median equivalent
      diameter, mean circularity, frames skipped so far, seconds per stage);
    - ``events`` (tracking): appearance, disappearance, coalescence, splitting;
    - at :meth:`close`: ``tracks`` (one row per track), ``growth_curves`` (diameter per track
      and frame), ``skipped`` (every frame not analysed and why) and ``manifest.json``.

    Parameters
    ----------
    outdir : path
        Output folder (created).
    formats : tuple of {"csv", "parquet"}
        Which formats to write.
    row_group_frames : int
        Frames per Parquet row group.

    Examples
    --------
    >>> import tempfile
    >>> with StreamWriter(tempfile.mkdtemp()) as w:
    ...     pass
    """

    def __init__(
        self,
        outdir: str | os.PathLike[str],
        *,
        formats: tuple[str, ...] = _FORMATS,
        row_group_frames: int = 50,
    ) -> None:
        bad = [f for f in formats if f not in _FORMATS]
        if bad or not formats:
            raise ValueError(f"formats: expected a non-empty subset of {_FORMATS}, got {formats!r}")
        if not isinstance(row_group_frames, int) or row_group_frames < 1:
            raise ValueError(f"row_group_frames: expected an integer ≥ 1, got {row_group_frames!r}")
        self.outdir = Path(outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.formats = tuple(formats)
        self._particles = _TableSink(self.outdir, "particles", self.formats, row_group_frames)
        self._series = _TableSink(self.outdir, "timeseries", self.formats, row_group_frames)
        self._events = _TableSink(self.outdir, "events", ("csv",), 1)
        self.series_rows: list[dict[str, Any]] = []
        self.diameters: list[np.ndarray] = []
        self.events: list[dict[str, Any]] = []
        self.skipped: list[SkippedFrame] = []
        self.frames = 0
        self._t0 = time.perf_counter()
        self.closed = False
        self.files: list[Path] = []

    def write(self, fr: Any) -> None:
        """Append one :class:`FrameResult` (flushed before returning)."""
        import pandas as pd

        if self.closed:
            raise ValueError(f"{self.outdir}: the writer is closed")
        self._particles.append(fr.table)
        self._series.append(pd.DataFrame([fr.series]))
        if fr.events:
            self.add_events(fr.events)
        self.series_rows.append(dict(fr.series))
        d = fr.table["equivalent_diameter_nm"].to_numpy(dtype=np.float32) if len(fr.table) else None
        self.diameters.append(d if d is not None else np.empty(0, np.float32))
        self.frames += 1

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Append tracking events (flushed)."""
        import pandas as pd

        if events:
            self._events.append(pd.DataFrame(events))
            self.events.extend(events)

    def close(
        self,
        *,
        tracker: Any | None = None,
        skipped: list[SkippedFrame] | None = None,
        manifest: dict[str, Any] | None = None,
        interrupted: bool = False,
        extra_files: list[Path] | None = None,
    ) -> list[Path]:
        """Finish every file and write the end-of-movie tables and ``manifest.json``.

        Safe to call twice; the second call does nothing.
        """
        import pandas as pd

        if self.closed:
            return self.files
        self.closed = True
        files = self._particles.close() + self._series.close() + self._events.close()
        if tracker is not None:
            files += _write_whole(tracker.tracks_table(), self.outdir, "tracks", self.formats)
            files += _write_whole(tracker.curves(), self.outdir, "growth_curves", self.formats)
            # the incremental events.csv was the crash record; the final one is complete and sorted
            files += _write_whole(tracker.events_table(), self.outdir, "events", self.formats)
        self.skipped = list(skipped or [])
        sk = pd.DataFrame(
            [(s.index, s.name, s.reason) for s in self.skipped], columns=["frame", "name", "reason"]
        )
        files += _write_whole(sk, self.outdir, "skipped", ("csv",))
        elapsed = time.perf_counter() - self._t0
        info: dict[str, Any] = {
            "frames_analysed": self.frames,
            "frames_skipped": len(self.skipped),
            "particles": self._particles.rows,
            "interrupted": interrupted,
            "elapsed_s": round(elapsed, 3),
            "fps": round(self.frames / elapsed, 3) if elapsed > 0 else math.nan,
            "tracking": tracker is not None,
        }
        if self.series_rows:
            for stage in ("read", "segment", "measure"):
                v = [r.get(f"{stage}_s", math.nan) for r in self.series_rows]
                v = [x for x in v if isinstance(x, float) and math.isfinite(x)]
                if v:
                    info[f"mean_{stage}_s"] = round(float(np.mean(v)), 6)
        info.update(manifest or {})
        files += list(extra_files or [])
        files.append(self.outdir / "manifest.json")
        files = sorted(set(files))
        info["files"] = [p.name for p in files]
        atomic_write_text(self.outdir / "manifest.json", json.dumps(info, indent=2, default=str))
        self.files = files
        return files

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.close(interrupted=exc_type is not None)
