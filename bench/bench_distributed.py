"""Images per second on Dask: sequential vs a LocalCluster, and a 100,000-image archive estimate.

Forty synthetic bright-field micrographs of 1024² px (``antema_fast.synth``, calibrated ImageJ
TIFF files in two sample folders) are analysed three ways, each writing the same Parquet file per
image:

* ``sequential``: one process, one loaded :class:`~antema_fast.Segmenter` (engine threads = all
  cores), ``analyze()`` then the worker's Parquet writer, file after file;
* ``dask, 1 worker`` and ``dask, N workers``: :func:`antema_fast.distributed.analyze_archive` on an
  embedded LocalCluster of single-threaded worker processes (each engine gets cores / N threads).

Images per second are measured over the processing loop (cluster start-up is printed apart); the
scaling efficiency is ``(rate with N workers / sequential rate) / N``. The benchmark checks its
results: every run's Parquet dataset must equal the sequential one row for row.

It then estimates what a 100,000-image archive costs on M machines: a discrete-event simulation
draws task times from the measured per-image times (core-seconds, from the N-worker run),
dispatches them through one scheduler that spends the measured per-task overhead on each (a
no-op task round trip through the same submission loop), onto M × cores slots, and reports the
makespan, core-hours, and a price at a stated $ per core-hour. The shared file system's
bandwidth is a separate floor (bytes per image / bandwidth), printed beside.

Usage::

    nice -n 10 python bench/bench_distributed.py                      # 40 × 1024², 2 workers
    nice -n 10 python bench/bench_distributed.py --n 16 --size 512    # quick
    python bench/bench_distributed.py --json bench/results/distributed.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import antema_fast as af
import numpy as np
import pandas as pd
import tifffile
from antema_fast.distributed import analyze_archive, iter_archive
from antema_fast.distributed._worker import write_particles
from antema_fast.synth import Population, generate, to_uint16

PIXEL_NM = 0.25
POPULATION = Population(
    median_diameter_nm=6.0,
    sigma_log=0.2,
    coverage=0.15,
    overlap_fraction=0.2,
    shapes=("sphere", "truncated_octahedron"),
    max_particles=2000,
)


def make_archive(root: Path, n: int, size: int) -> list[Path]:
    paths = []
    for k in range(n):
        folder = root / f"sample{k % 2 + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        synth = generate(
            1000 + k, (size, size), "tem", pixel_size_nm=PIXEL_NM, population=POPULATION
        )
        p = folder / f"micrograph_{k:03d}.tif"
        res = 1.0 / PIXEL_NM
        tifffile.imwrite(
            p, to_uint16(synth.image), imagej=True, resolution=(res, res), metadata={"unit": "nm"}
        )
        paths.append(p)
    return paths


def run_sequential(
    root: Path, out: Path, settings: af.Settings, cores: int
) -> tuple[float, list[float]]:
    """One process: analyze() + the same Parquet writer, file after file."""
    segmenter = af.Segmenter(settings.replace(threads=settings.threads or cores))
    times = []
    t0 = time.perf_counter()
    for item in iter_archive(root):
        t = time.perf_counter()
        result = af.analyze(item.path, settings=settings, segmenter=segmenter)
        write_particles(result, item, str(out))
        times.append(time.perf_counter() - t)
    return time.perf_counter() - t0, times


def read_dataset(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "particles")
    df = df.sort_values(["source", "particle_id"], kind="stable").reset_index(drop=True)
    text = [c for c in df.columns if pd.api.types.is_string_dtype(df[c])]
    return df.astype({c: object for c in text})


def scheduler_overhead(n_tasks: int = 2000) -> float:
    """Seconds per task of a scheduler round trip (no-op tasks, same bounded submission loop)."""
    from distributed import Client, LocalCluster, as_completed

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as c,
        Client(c) as client,
    ):
        client.wait_for_workers(1)
        limit = 8
        t0 = time.perf_counter()
        submitted = 0
        queue = as_completed()
        while submitted < limit:
            queue.add(client.submit(int, submitted, pure=False))
            submitted += 1
        for fut in queue:
            fut.release()
            if submitted < n_tasks:
                queue.add(client.submit(int, submitted, pure=False))
                submitted += 1
        return (time.perf_counter() - t0) / n_tasks


def simulate(
    n_images: int,
    machines: int,
    cores: int,
    task_s: np.ndarray,
    overhead_s: float,
    rng: np.random.Generator,
) -> float:
    """Makespan of ``n_images`` tasks on ``machines × cores`` slots behind one scheduler.

    Each task takes a time drawn from ``task_s`` (core-seconds measured per image); the
    scheduler hands out one task per ``overhead_s`` at most; a task starts when both a slot is
    free and the scheduler has dispatched it.
    """
    slots = [0.0] * (machines * cores)
    heapq.heapify(slots)
    draws = rng.choice(task_s, size=n_images, replace=True)
    dispatcher = 0.0
    end = 0.0
    for d in draws:
        free = heapq.heappop(slots)
        dispatcher = max(dispatcher, free) + overhead_s
        finish = dispatcher + float(d)
        end = max(end, finish)
        heapq.heappush(slots, finish)
    return end


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40, help="number of micrographs (default 40)")
    ap.add_argument("--size", type=int, default=1024, help="image side in px (default 1024)")
    ap.add_argument("--workers", type=int, default=2, help="workers of the parallel run")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each mode; medians shown")
    ap.add_argument(
        "--backend",
        default=None,
        help="segmentation backend (default: auto when the shipped model exists, else threshold)",
    )
    ap.add_argument("--archive", type=int, default=100_000, help="images in the estimate")
    ap.add_argument("--cores", type=int, default=16, help="cores per machine in the estimate")
    ap.add_argument(
        "--price", type=float, default=0.04, help="$ per core-hour in the estimate (default 0.04)"
    )
    ap.add_argument(
        "--mb-per-image", type=float, default=8.0, help="input size per image, MB (2048² uint16)"
    )
    ap.add_argument("--storage-gbps", type=float, default=1.0, help="shared storage GB/s")
    ap.add_argument(
        "--task-core-s",
        type=float,
        nargs="*",
        default=[1.0, 5.0],
        help="also estimate with these core-seconds per image (default: 1 5)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also save the results here")
    args = ap.parse_args(argv)

    from antema_fast.distributed._worker import available_cores

    cores = available_cores()
    backend = args.backend
    if backend is None:
        try:
            af.Segmenter(af.Settings(threads=1))
            backend = "auto"
        except FileNotFoundError as exc:
            print(f"note: {exc} -> using backend threshold", file=sys.stderr)
            backend = "threshold"
    settings = af.Settings(backend=backend)
    seg = af.Segmenter(settings.replace(threads=1))
    print(
        f"{args.n} micrographs of {args.size}² px; backend {seg.backend_name}, model "
        f"{seg.model_name}; {cores} cores, {platform.machine()}, {platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.1f} (other processes share these cores)"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        t0 = time.perf_counter()
        paths = make_archive(tmpdir / "archive", args.n, args.size)
        print(f"made {len(paths)} files in {time.perf_counter() - t0:.1f} s")

        expected = None
        task_s = None
        seq_times: list[float] = []
        for rep in range(args.repeat):  # interleaved, so that a burst of load hits every mode
            seconds, seq_times = run_sequential(
                tmpdir / "archive", tmpdir / f"seq{rep}", settings, cores
            )
            if expected is None:
                expected = read_dataset(tmpdir / f"seq{rep}")
            rows.append({"run": "sequential", "workers": 0, "wall_s": seconds, "startup_s": 0.0})
            for workers in sorted({1, args.workers}):
                out = tmpdir / f"dask{workers}-{rep}"
                t0 = time.perf_counter()
                report = analyze_archive(
                    tmpdir / "archive",
                    out,
                    settings=settings,
                    n_workers=workers,
                    threads_per_worker=1,
                    images=False,
                    formats=(),
                    progress=False,
                )
                total = time.perf_counter() - t0
                assert report.processed == args.n and report.failed == 0, report
                pd.testing.assert_frame_equal(read_dataset(out), expected)
                rows.append(
                    {
                        "run": f"dask, {workers} worker{'s' if workers > 1 else ''}",
                        "workers": workers,
                        "wall_s": report.seconds,
                        "startup_s": total - report.seconds,
                    }
                )
                if workers == args.workers:
                    index = pd.read_csv(out / "images.csv")
                    # core-seconds per image as the workers saw them (one task per core)
                    t = index["seconds"].to_numpy(dtype=float)
                    t = t * float(report.seconds * workers / max(t.sum(), 1e-9))
                    task_s = t if task_s is None else np.concatenate([task_s, t])
    runs = pd.DataFrame(rows)
    df = runs.groupby(["run", "workers"], as_index=False, sort=False).median()
    rate_seq = args.n / float(df.loc[df["workers"] == 0, "wall_s"].iloc[0])
    df["images_per_s"] = args.n / df["wall_s"]
    df["speedup"] = df["images_per_s"] / rate_seq
    df["efficiency"] = np.where(df["workers"] > 0, df["speedup"] / df["workers"].clip(lower=1), 1)
    print(f"\nmedian of {args.repeat} interleaved runs each:")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    eff = float(df.loc[df["workers"] == args.workers, "efficiency"].iloc[0])

    overhead = scheduler_overhead()
    assert task_s is not None
    mean_task = float(np.mean(task_s))
    print(
        f"\nper image: {mean_task:.3f} core-s in the {args.workers}-worker run (sequential "
        f"{np.mean(seq_times):.3f} s with {cores} engine threads); scheduler round trip "
        f"{overhead * 1e3:.2f} ms per task"
    )
    rng = np.random.default_rng(0)
    io_floor = args.archive * args.mb_per_image / 1e3 / args.storage_gbps
    est = []
    # the measured distribution, and the same shape scaled to heavier per-image costs (a neural
    # network on the CPU costs more than the threshold baseline)
    for target in (mean_task, *args.task_core_s):
        scaled = task_s * (target / mean_task)
        for machines in (1, 2, 4, 8, 16, 32, 64, 128):
            span = simulate(args.archive, machines, args.cores, scaled, overhead, rng)
            span = max(span, io_floor)
            core_h = machines * args.cores * span / 3600
            est.append(
                {
                    "core_s_per_image": round(float(target), 3),
                    "machines": machines,
                    "cores": machines * args.cores,
                    "hours": span / 3600,
                    "images_per_s": args.archive / span,
                    "core_hours": core_h,
                    "cost_usd": core_h * args.price,
                    "io_bound": bool(span <= io_floor * 1.0001),
                }
            )
    est_df = pd.DataFrame(est)
    print(
        f"\n{args.archive:,} images on M machines of {args.cores} cores (task times resampled "
        f"from this run, and scaled to {args.task_core_s} core-s; scheduler "
        f"{overhead * 1e3:.2f} ms/task; storage floor {io_floor / 3600:.2f} h at "
        f"{args.storage_gbps} GB/s × {args.mb_per_image} MB/image; ${args.price}/core-hour):"
    )
    print(est_df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": {
                "cores": cores,
                "arch": platform.machine(),
                "load_average_1min_at_end": os.getloadavg()[0],
            },
            "n": args.n,
            "size": args.size,
            "backend": seg.backend_name,
            "model": seg.model_name,
            "runs": df.to_dict(orient="records"),
            "all_runs": runs.to_dict(orient="records"),
            "efficiency": eff,
            "task_core_s_mean": mean_task,
            "scheduler_overhead_s": overhead,
            "estimate": est_df.to_dict(orient="records"),
            "assumptions": {
                "cores_per_machine": args.cores,
                "price_per_core_hour": args.price,
                "mb_per_image": args.mb_per_image,
                "storage_gbps": args.storage_gbps,
            },
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
