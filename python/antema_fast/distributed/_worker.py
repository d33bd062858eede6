"""What runs on the Dask workers: the model cache, the worker plugin and the two task functions.

This module imports Dask at the top; :mod:`antema_fast.distributed._archive` imports it only
when a run starts, so that ``import antema_fast.distributed`` works without the extra.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from distributed import WorkerPlugin, get_worker

from .._settings import Settings
from ._layout import METADATA_KEY, ArchiveItem

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# One segmenter per (process, settings): tasks on every thread of a worker share it.
_SEGMENTERS: dict[Settings, Any] = {}
_SEGMENTERS_LOCK = threading.Lock()


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def host_of(address: str) -> str:
    """``"tcp://10.0.0.5:4321"`` → ``"10.0.0.5"``."""
    return address.split("://", 1)[-1].rsplit(":", 1)[0]


def engine_settings(settings: Settings, threads_on_host: int) -> Settings:
    """``settings`` with the engine's thread count set from this worker's share of the cores.

    An explicit ``settings.threads`` is kept. Otherwise each of the ``threads_on_host`` task
    threads of the workers on this machine gets ``cores // threads_on_host`` engine threads (at
    least one), so that tasks × engine threads match the cores instead of oversubscribing them.
    """
    if settings.threads is not None:
        return settings
    return settings.replace(threads=max(1, available_cores() // max(1, threads_on_host)))


def _own_threads() -> int:
    try:
        worker = get_worker()
    except ValueError:  # not inside a worker (e.g. called directly in a test)
        return 1
    return int(worker.state.nthreads)


def worker_segmenter(settings: Settings, threads_on_host: int | None = None) -> Any:
    """The segmenter of this process for ``settings``, built once, then reused by every task."""
    with _SEGMENTERS_LOCK:
        seg = _SEGMENTERS.get(settings)
        if seg is None:
            from ..segment import Segmenter

            threads = threads_on_host if threads_on_host is not None else _own_threads()
            seg = Segmenter(engine_settings(settings, threads))
            _SEGMENTERS[settings] = seg
        return seg


class SegmenterPlugin(WorkerPlugin):
    """Loads the segmentation model once on every worker, when it starts or joins later.

    Parameters
    ----------
    settings : Settings
        The run's settings (the model, backend and thread count come from them).
    threads_by_host : dict of str to int
        Task threads of all workers per host when the run started; a worker that joins a host
        unknown then counts only its own threads.
    """

    idempotent = False

    def __init__(self, settings: Settings, threads_by_host: dict[str, int]) -> None:
        self.settings = settings
        self.threads_by_host = dict(threads_by_host)

    def setup(self, worker: Any) -> None:
        # import the pipeline now too, so that the first task does not pay for it
        from .. import export, pipeline  # noqa: F401

        own = int(worker.state.nthreads)
        worker_segmenter(self.settings, self.threads_by_host.get(host_of(worker.address), own))

    def teardown(self, worker: Any) -> None:
        with _SEGMENTERS_LOCK:
            _SEGMENTERS.pop(self.settings, None)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def particles_frame(result: Any, item: ArchiveItem) -> pd.DataFrame:
    """The image's particle table with the columns ``sample`` and ``source`` in front."""
    table = result.table.reset_index(drop=True).copy()
    table.insert(0, "source", item.path)
    table.insert(0, "sample", item.sample)
    return table


def write_particles(result: Any, item: ArchiveItem, outdir: str) -> int:
    """Write the image's Parquet file: its particle table, and its record in the metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = particles_frame(result, item)
    record = {
        "key": item.key,
        "source": item.path,
        "sample": item.sample,
        "image": str(result.name),
        "particles": len(frame),
        "pixel_size_nm": float(result.micrograph.pixel_size_nm),
        "warnings": [
            *(str(w) for w in getattr(result.micrograph, "warnings", ()) or ()),
            *(result.provenance.get("quality") or {}).get("warnings", ()),
        ],
        "counts": dict(result.counts),
        "timings": dict(result.timings),
        "provenance": result.provenance,
    }
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, name in enumerate(("sample", "source")):  # text even in a table without rows
        table = table.set_column(i, name, table.column(name).cast(pa.string()))
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(_jsonable(record)).encode()
    table = table.replace_schema_metadata(meta)
    from ..export import atomic_write

    atomic_write(item.particles_path(outdir), lambda tmp: pq.write_table(table, tmp))
    return len(frame)


def process(
    item: ArchiveItem,
    outdir: str,
    settings: Settings,
    pixel_size_nm: float | None,
    images: bool,
    formats: tuple[str, ...],
) -> dict[str, Any]:
    """The Dask task of one file: analyse it, write its per-image folder, then its Parquet file.

    The Parquet file comes last, so that its presence means the image is complete.
    """
    from .. import export
    from ..pipeline import analyze

    t0 = time.perf_counter()
    result = analyze(
        item.path,
        pixel_size_nm=pixel_size_nm,
        settings=settings,
        segmenter=worker_segmenter(settings),
    )
    if images or formats:
        folder = item.images_dir(outdir)
        export.write_image_outputs(
            result,
            folder.parent,
            formats=formats,
            images=images,
            name=folder.name,
            extra={"sample": item.sample, "source": item.path, "key": item.key},
        )
    n = write_particles(result, item, outdir)
    return {"key": item.key, "particles": n, "seconds": time.perf_counter() - t0}


def _read_record(path: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """An image's record from the file's metadata, and only the columns the summary needs."""
    import pyarrow.parquet as pq

    from ..pipeline import SUMMARY_QUANTITIES

    pf = pq.ParquetFile(path)
    raw = (pf.schema_arrow.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(
            f"{path}: expected a Parquet file written by antema_fast (metadata key "
            f"{METADATA_KEY.decode()!r}), got a file without it"
        )
    rec = json.loads(raw)
    out = {k: rec.get(k) for k in ("sample", "source", "key", "image", "particles")}
    out["pixel_size_nm"] = rec.get("pixel_size_nm")
    out["warnings"] = "; ".join(rec.get("warnings") or [])
    quality = (rec.get("provenance") or {}).get("quality") or {}
    out["measured_fraction"] = quality.get("measured_fraction")
    out["under_resolved"] = quality.get("under_resolved")
    timings = rec.get("timings") or {}
    out["seconds"] = float(sum(v for v in timings.values() if isinstance(v, (int, float))))
    for reason, n in sorted((rec.get("counts") or {}).items()):
        out[f"excluded_{reason}"] = n
    names = set(pf.schema_arrow.names)
    columns = ["sample", *(c for c in SUMMARY_QUANTITIES if c in names)]
    return out, pf.read(columns=columns).to_pandas()


def summarize_folder(folder: str, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The task that summarises one ``particles/<sample>`` folder.

    Returns
    -------
    summary : pandas.DataFrame
        ``sample, images`` and the columns of ``pipeline.summarize``, one row per quantity, for
        each sample label found in the folder.
    index : pandas.DataFrame
        One row per image: sample, source, key, image, particles, pixel size, the readers'
        warnings (calibration doubts; ``; ``-joined), seconds and the number of areas excluded
        per reason.
    """
    import pandas as pd

    from ..pipeline import summarize

    files = sorted(
        e.path
        for e in os.scandir(folder)
        if e.name.endswith(".parquet") and not e.name.startswith((".", "_"))
    )
    pairs = [_read_record(f) for f in files]
    index = pd.DataFrame.from_records([r for r, _ in pairs])
    if not pairs:
        return pd.DataFrame(), index
    particles = pd.concat([t for _, t in pairs], ignore_index=True)
    parts = []
    for sample in sorted(index["sample"].unique()):
        rows = particles[particles["sample"] == sample].drop(columns=["sample"])
        s = summarize(rows.reset_index(drop=True), settings)
        if s.index.name is not None or not isinstance(s.index, pd.RangeIndex):
            s = s.reset_index()
        s.insert(0, "images", int((index["sample"] == sample).sum()))
        s.insert(0, "sample", sample)
        parts.append(s)
    return pd.concat(parts, ignore_index=True), index
