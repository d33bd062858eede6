"""Client side of an archive run: the cluster, the bounded submission loop, the report."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .._settings import Settings
from ._layout import (
    IMAGES,
    MICROGRAPH_EXTENSIONS,
    PARTICLES,
    TMP_DIR_MARK,
    TMP_FILE_SUFFIX,
    TMP_PREFIX,
    ArchiveItem,
    iter_archive,
    outputs_complete,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from distributed import Client, Future

FAILURE_COLUMNS = ["source", "sample", "key", "error_type", "message"]


def require_distributed() -> Any:
    """Import :mod:`distributed` or raise an ImportError that names the extra to install."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "antema_fast.distributed needs Dask: expected the 'distributed' package, which is "
            'not installed; install the extra with: pip install "antema_fast[distributed]"'
        ) from exc
    return distributed


@dataclass(frozen=True)
class ArchiveReport:
    """What :func:`analyze_archive` did.

    Attributes
    ----------
    outdir : Path
        The output folder (layout in :mod:`antema_fast.distributed`).
    listed : int
        Inputs listed, duplicates removed.
    processed : int
        Images analysed in this run.
    skipped : int
        Images skipped because ``resume=True`` found their outputs complete.
    failed : int
        Images that failed after their retries (the rows of ``failures``).
    particles : int
        Particles measured in this run.
    seconds : float
        Wall time of the processing loop (listing, submission, results; not the summaries).
    failures : pandas.DataFrame
        ``source, sample, key, error_type, message``; also written to ``failures.csv``.
    summary : pandas.DataFrame
        One row per sample and quantity, over every image in ``outdir`` (this run's and earlier
        runs'); also written to ``summary.csv``.
    dashboard_link : str or None
        The Dask dashboard of the cluster, when it serves one.
    """

    outdir: Path
    listed: int
    processed: int
    skipped: int
    failed: int
    particles: int
    seconds: float
    failures: pd.DataFrame = field(repr=False)
    summary: pd.DataFrame = field(repr=False)
    dashboard_link: str | None = None

    @property
    def images_per_second(self) -> float:
        """Images analysed per second of wall time in this run."""
        return self.processed / self.seconds if self.seconds > 0 else math.nan

    @property
    def particles_path(self) -> Path:
        """The Parquet dataset folder, for ``pandas.read_parquet`` or ``dask.dataframe``."""
        return self.outdir / PARTICLES

    def read_particles(self) -> pd.DataFrame:
        """Every particle in ``outdir`` as one DataFrame (use Dask for archives beyond memory)."""
        import pandas as pd

        return pd.read_parquet(self.particles_path)


class _Progress:
    """A progress line over files: redrawn in place on a terminal, every 5 s in a log."""

    def __init__(self, stream: IO[str] | None, enabled: bool) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self.t0 = time.perf_counter()
        self.last = -math.inf
        self.printed = ""

    def message(self, text: str) -> None:
        if self.enabled:
            if self.tty and self.last > -math.inf:
                print(file=self.stream)
            print(f"antema: {text}", file=self.stream, flush=True)

    def update(
        self, done: int, failed: int, skipped: int, listed: int, listing: bool, force: bool = False
    ) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        finished = done + failed + skipped
        rate = done / (now - self.t0) if now > self.t0 else 0.0
        width = 30
        filled = 0 if listing or listed == 0 else round(width * finished / listed)
        bar = "#" * filled + "-" * (width - filled)
        total = f"{listed}+" if listing else str(listed)
        line = (
            f"[{bar}] {finished}/{total} files  done {done}  failed {failed}  "
            f"skipped {skipped}  {rate:.2f} img/s"
        )
        if line == self.printed:
            return
        self.printed = line
        print(
            "\r" + line if self.tty else line,
            end="" if self.tty else "\n",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=self.stream, flush=True)


@contextlib.contextmanager
def _open_client(
    client: Client | None,
    scheduler: str | None,
    n_workers: int | None,
    threads_per_worker: int | None,
) -> Iterator[Client]:
    distributed = require_distributed()
    given = {"client": client, "scheduler": scheduler}
    if client is not None and scheduler is not None:
        raise ValueError(f"analyze_archive: expected one of client and scheduler, got {given}")
    if (client is not None or scheduler is not None) and (
        n_workers is not None or threads_per_worker is not None
    ):
        raise ValueError(
            "analyze_archive: n_workers/threads_per_worker start a local cluster and cannot be "
            f"combined with an existing cluster ({given}); got n_workers={n_workers!r}, "
            f"threads_per_worker={threads_per_worker!r}"
        )
    if client is not None:
        yield client
        return
    if scheduler is not None:
        with distributed.Client(scheduler) as c:
            yield c
        return
    tpw = 1 if threads_per_worker is None else threads_per_worker
    if n_workers is None:
        from ._worker import available_cores

        n_workers = max(1, available_cores() // max(1, tpw))
    for name, v in (("n_workers", n_workers), ("threads_per_worker", tpw)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"analyze_archive: {name}: expected an integer ≥ 1, got {v!r}")
    with (
        _local_worker_environment(),
        distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=tpw,
            processes=True,
            dashboard_address=":0",
            # a file that fails is expected and goes to failures.csv; Dask would also log each
            # one with its traceback ("Compute Failed") on stderr
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@contextlib.contextmanager
def _local_worker_environment() -> Iterator[None]:
    """Spawn the embedded cluster's workers without ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets it (65536) to hand freed memory back to the OS; it also pins glibc's mmap
    threshold, so every large temporary array is mapped and unmapped again. On this pipeline
    (1024² images) that made each image about 1.5× slower (bench/README.md); the thread
    variables Dask sets (``OMP_NUM_THREADS=1`` …) are kept. Clusters given by address or client
    are left as they are.
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        yield


def _dashboard(client: Client, local: bool) -> str | None:
    """The dashboard link, when the scheduler serves one (an embedded one needs bokeh here)."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    if local and importlib.util.find_spec("bokeh") is None:
        return None
    return str(client.dashboard_link)


def _threads_by_host(client: Client) -> dict[str, int]:
    from ._worker import host_of

    out: dict[str, int] = {}
    for addr, w in client.scheduler_info(n_workers=-1)["workers"].items():
        host = host_of(addr)
        out[host] = out.get(host, 0) + int(w.get("nthreads", 1))
    return out


def _failure_row(item: ArchiveItem, future: Future) -> dict[str, Any]:
    exc: BaseException | None
    try:
        exc = future.exception(timeout=60)
    except Exception as e:  # the cluster went away: CancelledError, TimeoutError
        exc = e
    error_type: str
    if exc is None:
        error_type, message = str(future.status), f"task ended with status {future.status!r}"
    else:
        error_type = type(exc).__name__
        message = str(exc) or "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {
        "source": item.path,
        "sample": item.sample,
        "key": item.key,
        "error_type": error_type,
        "message": message,
    }


def _sweep_partials(outdir: Path) -> int:
    """Remove what killed tasks left half-written, once every task of the run has ended.

    Only one run may write to an output folder at a time, so no live task owns these files.
    """
    removed = 0
    for top, is_leftover in (
        (outdir / PARTICLES, lambda e: e.is_file() and e.name.endswith(TMP_FILE_SUFFIX)),
        (outdir / IMAGES, lambda e: e.is_dir() and TMP_DIR_MARK in e.name),
    ):
        if not top.is_dir():
            continue
        for folder in os.scandir(top):
            if not folder.is_dir() or folder.name.startswith(TMP_PREFIX):
                continue
            for e in os.scandir(folder.path):
                if not (e.name.startswith(TMP_PREFIX) and is_leftover(e)):
                    continue
                with contextlib.suppress(OSError):
                    if e.is_dir(follow_symlinks=False):
                        shutil.rmtree(e.path)
                    else:
                        os.unlink(e.path)
                    removed += 1
    return removed


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    from ..export import atomic_write

    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def _collect_summaries(c: Client, out: Path, settings: Settings) -> tuple[Any, Any]:
    """Summaries per sample folder, computed on the workers (each reads only its folder)."""
    import pandas as pd

    from ._worker import summarize_folder

    root = out / PARTICLES
    folders = sorted(e.path for e in os.scandir(root) if e.is_dir()) if root.is_dir() else []
    if not folders:
        return pd.DataFrame(), pd.DataFrame()
    futures = c.map(summarize_folder, folders, settings=settings, pure=False, retries=1)
    results = c.gather(futures)
    summaries = [s for s, _ in results if len(s)]
    indexes = [i for _, i in results if len(i)]
    summary = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    index = pd.concat(indexes, ignore_index=True) if indexes else pd.DataFrame()
    return summary, index


def analyze_archive(
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    pixel_size_nm: float | None = None,
    sample: str | None = None,
    client: Client | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    scheduler: str | None = None,
    retries: int = 2,
    resume: bool = False,
    images: bool = True,
    formats: Sequence[str] = ("csv",),
    batch_size: int | None = None,
    progress: bool = True,
    extensions: Sequence[str] = MICROGRAPH_EXTENSIONS,
    worker_timeout_s: float = 600.0,
    stream: IO[str] | None = None,
) -> ArchiveReport:
    """Analyse every micrograph of an archive on a Dask cluster, one task per file.

    Parameters
    ----------
    inputs : path, glob pattern, or iterable of them
        Files, folders (walked recursively) and glob patterns, listed lazily (see
        :func:`iter_archive`).
    outdir : path
        Output folder (created). With a remote cluster it must be on a file system that the
        workers and this process see under the same path, and so must the inputs.
    settings : Settings, optional
        The analysis settings (default ``Settings()``), the same for every file.
    pixel_size_nm : float, optional
        Pixel size for every file, overriding the files' calibration.
    sample : str, optional
        One sample label for every input (pooled in one summary row set), instead of each file's
        folder.
    client : distributed.Client, optional
        Use this client's cluster (it is left open).
    n_workers, threads_per_worker : int, optional
        Size of the embedded :class:`distributed.LocalCluster` of worker processes started when
        neither ``client`` nor ``scheduler`` is given (default: one single-threaded worker per
        core).
    scheduler : str, optional
        Address of a running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    retries : int
        How many times Dask re-runs a task that raised before it is recorded as a failure. A
        worker that dies does not use up retries: Dask reschedules its tasks on the others.
    resume : bool
        Skip inputs whose outputs in ``outdir`` are complete (:func:`outputs_complete`).
    images : bool
        Write the per-image pictures of ``antema analyze``.
    formats : sequence of {"csv", "xlsx", "parquet"}
        Per-image table formats handed to ``export.write_image_outputs`` (the Parquet dataset
        is always written). Empty, with ``images=False``: no per-image folder at all.
    batch_size : int, optional
        Most tasks in flight at once; default four per worker thread. Inputs are listed and
        submitted as results come back, so the scheduler never holds the whole archive.
    progress : bool
        Write a progress line over files, and the dashboard link, to ``stream``.
    extensions : sequence of str
        File endings taken from folders and globs.
    worker_timeout_s : float
        How long to wait for the first worker of the cluster.
    stream : text stream, optional
        Where progress goes (default ``sys.stderr``).

    Returns
    -------
    ArchiveReport

    Raises
    ------
    ImportError
        Dask is not installed (the ``distributed`` extra).
    FileNotFoundError
        An input does not exist.
    TimeoutError
        No worker joined the cluster within ``worker_timeout_s``.

    Notes
    -----
    Every output file is written under a hidden temporary name in its folder, then renamed, so a
    worker killed mid-task leaves nothing a reader sees; Dask re-runs the task elsewhere and it
    writes the same deterministic names. An image is complete when its Parquet file exists
    (written last). Run one ``analyze_archive`` per output folder at a time.

    Scripts that start a local cluster must guard their entry point with
    ``if __name__ == "__main__":`` (worker processes are spawned and import the script).

    Examples
    --------
    >>> report = analyze_archive("archive/", "out/", n_workers=4)  # doctest: +SKIP
    >>> report.read_particles().groupby("sample").equivalent_diameter_nm.mean()  # doctest: +SKIP
    """
    distributed = require_distributed()
    import pandas as pd

    from ._worker import SegmenterPlugin, process

    settings = settings if settings is not None else Settings()
    if not isinstance(settings, Settings):
        raise TypeError(f"settings: expected antema_fast.Settings, got {type(settings).__name__}")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries: expected an integer ≥ 0, got {retries!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size: expected None or an integer ≥ 1, got {batch_size!r}")
    if sample is not None and (not isinstance(sample, str) or not sample.strip()):
        raise ValueError(f"sample: expected None or a non-empty name, got {sample!r}")
    from ..export import _check_formats

    formats = _check_formats(formats, allow_empty=not images)
    out = Path(outdir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    run_start = time.time()
    prog = _Progress(stream, progress)

    with _open_client(client, scheduler, n_workers, threads_per_worker) as c:
        c.wait_for_workers(1, timeout=worker_timeout_s)
        link = _dashboard(c, local=client is None and scheduler is None)
        if link:
            prog.message(f"Dask dashboard: {link}")
        threads = _threads_by_host(c)
        # Loads the model on every worker now (a model that fails to load fails here, once).
        c.register_plugin(SegmenterPlugin(settings, threads), name="antema-segmenter")
        limit = batch_size or 4 * max(1, sum(threads.values()))

        listing = iter_archive(inputs, extensions=extensions)
        seen: set[str] = set()
        pending: dict[Future, ArchiveItem] = {}
        failures: list[dict[str, Any]] = []
        listed = done = skipped = particles = 0
        exhausted = False
        queue = distributed.as_completed()
        token = f"{run_start:.6f}"
        t0 = prog.t0 = time.perf_counter()  # the rate counts from the first submission

        def refill() -> None:
            nonlocal listed, skipped, exhausted
            while not exhausted and len(pending) < limit:
                item = next(listing, None)
                if item is None:
                    exhausted = True
                    return
                if item.key in seen:
                    continue
                if sample is not None:
                    item = dataclasses.replace(item, sample=sample)
                seen.add(item.key)
                listed += 1
                if resume and outputs_complete(item, out, images=images):
                    skipped += 1
                    continue
                fut = c.submit(
                    process,
                    item,
                    str(out),
                    settings,
                    pixel_size_nm,
                    images,
                    formats,
                    key=f"antema-{item.key}-{token}",
                    retries=retries,
                    pure=False,
                )
                pending[fut] = item
                queue.add(fut)

        try:
            refill()
            prog.update(done, 0, skipped, listed, not exhausted)
            for fut in queue:
                item = pending.pop(fut)
                if fut.status == "finished":
                    particles += int(fut.result()["particles"])
                    done += 1
                else:
                    failures.append(_failure_row(item, fut))
                fut.release()
                refill()
                prog.update(done, len(failures), skipped, listed, not exhausted)
        except BaseException:  # Ctrl-C, a listing error: do not leave tasks running on a cluster
            prog.close()
            with contextlib.suppress(Exception):
                c.cancel(list(pending), force=True)
            raise
        seconds = time.perf_counter() - t0
        prog.update(done, len(failures), skipped, listed, False, force=True)
        prog.close()

        failures_df = pd.DataFrame(failures, columns=FAILURE_COLUMNS)
        _write_csv(failures_df, out / "failures.csv")
        _sweep_partials(out)
        summary, index = _collect_summaries(c, out, settings)
        _write_csv(summary, out / "summary.csv")
        _write_csv(index, out / "images.csv")

    if failures:
        prog.message(f"{len(failures)} file(s) failed; see {out / 'failures.csv'}")
    return ArchiveReport(
        outdir=out,
        listed=listed,
        processed=done,
        skipped=skipped,
        failed=len(failures),
        particles=particles,
        seconds=seconds,
        failures=failures_df,
        summary=summary,
        dashboard_link=link,
    )
