"""Streaming throughput: each stage alone and the threaded pipeline, and memory over a long run.

A synthetic 1024² movie (``antema_fast.stream._synthetic``: drifting, growing and coalescing
particles, rendered by ``antema_fast.synth``) is written as a calibrated 8-bit TIFF stack. Then:

1. **read** alone: ``antema_fast.io.iter_frames`` over the stack;
2. **segment** alone: ``Segmenter.segment`` on every frame (frames already in memory);
3. **measure** alone: ``antema_fast.pipeline.finish`` on every (frame, segmentation);
4. **pipeline**: ``antema_fast.stream.stream`` on the stack (three threads, bounded queues),
   and the same with tracking;

and reports frames per second of each, the pipeline efficiency (pipeline fps ÷ the slowest
stage's fps; target ≥ 0.9) and whether the pipeline's per-frame tables equal the stage-by-stage
ones. Finally ``antema_fast.stream.run`` (tables written as CSV + Parquet, tracking on) goes
through ``--rss-frames`` frames (the movie cycled) and the resident memory is sampled: growth
from frame 100 to the end (target < 50 MB).

    nice -n 10 python bench/bench_stream.py --frames 200 --rss-frames 1000 \\
        --json bench/results/stream.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _report_timing(
    out: dict[str, object],
    best: dict[str, float],
    cpu: dict[str, float],
    n: int,
    equal: bool,
    rounds: int,
) -> None:
    """Frames per second of each stage and of the pipeline, and the efficiency."""
    stages = {k: n / best[k] for k in ("read", "segment", "measure")}
    slowest = min(stages, key=stages.__getitem__)
    pipe_fps = n / best["pipeline"]
    out["rounds"] = rounds
    out["stage_fps"] = {k: round(v, 2) for k, v in stages.items()}
    out["cpu_s_per_frame"] = {k: round(v / n, 4) for k, v in cpu.items()}
    out["slowest_stage"] = slowest
    out["pipeline_fps"] = round(pipe_fps, 2)
    out["pipeline_with_tracking_fps"] = round(n / best["pipeline_tracking"], 2)
    out["efficiency"] = round(pipe_fps / stages[slowest], 3)
    out["serial_fps"] = round(n / sum(best[k] for k in stages), 2)
    out["pipeline_equals_stages"] = bool(equal)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rss-frames", type=int, default=1000)
    ap.add_argument("--backend", default="threshold", help="segmentation backend")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (best kept)")
    ap.add_argument("--only-memory", action="store_true", help="skip the timing rounds")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    import tifffile
    from antema_fast import Settings
    from antema_fast.io import iter_frames
    from antema_fast.pipeline import finish
    from antema_fast.segment import Segmenter
    from antema_fast.stream import run, stream
    from antema_fast.stream._synthetic import synthetic_movie

    settings = Settings(backend=args.backend)
    seg = Segmenter(settings)
    out: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs visible",
        "backend": seg.backend_name,
        "model": getattr(seg, "model_name", None),
        "frame": f"{args.size}x{args.size}",
        "frames": args.frames,
    }
    print(f"rendering {args.frames} frames of {args.size}² ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    movie = synthetic_movie(args.frames, (args.size, args.size), n_merges=6, seed=2)
    u8 = movie.frames_u8()
    del movie.frames, movie.identities
    print(f"  {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tif = Path(tmp) / "movie.tif"
        r = 1.0 / movie.pixel_size_nm
        tifffile.imwrite(
            tif,
            u8,
            imagej=True,
            resolution=(r, r),
            metadata={"axes": "TYX", "unit": "nm", "finterval": 0.5},
        )

        # Stages alone and the pipeline, in interleaved rounds; each one's best round counts,
        # so that load from other processes (a shared machine) biases none of them.
        n = args.frames
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        equal = True

        def keep(name: str, wall: float, cpu_s: float) -> None:
            if wall < best.get(name, float("inf")):
                best[name], cpu[name] = wall, cpu_s

        for rnd in range(0 if args.only_memory else args.rounds):
            print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr, flush=True)
            # 1. read alone
            t0, c0 = time.perf_counter(), time.process_time()
            mgs = list(iter_frames(tif))
            keep("read", time.perf_counter() - t0, time.process_time() - c0)
            # 2. segment alone
            t0, c0 = time.perf_counter(), time.process_time()
            segs = [seg.segment(m.data, pixel_size_nm=m.pixel_size_nm) for m in mgs]
            keep("segment", time.perf_counter() - t0, time.process_time() - c0)
            # 3. measure alone
            t0, c0 = time.perf_counter(), time.process_time()
            tables = [finish(m, s, settings).table for m, s in zip(mgs, segs, strict=True)]
            keep("measure", time.perf_counter() - t0, time.process_time() - c0)
            del segs, mgs
            # 4. pipeline (its tables are checked against the stage-by-stage ones after timing)
            t0, c0 = time.perf_counter(), time.process_time()
            got = [fr.table for fr in stream(tif, settings=settings, segmenter=seg)]
            keep("pipeline", time.perf_counter() - t0, time.process_time() - c0)
            for a, b in zip(got, tables, strict=True):
                equal &= (
                    a.drop(columns=["frame", "time_s"])
                    .reset_index(drop=True)
                    .equals(b.reset_index(drop=True))
                )
            del got, tables
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in stream(tif, settings=settings, segmenter=seg, track=True):
                pass
            keep("pipeline_tracking", time.perf_counter() - t0, time.process_time() - c0)

        if not args.only_memory:
            _report_timing(out, best, cpu, n, equal, args.rounds)

        # 5. memory over a long run (the movie cycled), with writing and tracking
        samples: list[tuple[int, float]] = []

        def progress(fr) -> None:
            if fr.index % 50 == 0 or fr.index == args.rss_frames - 1:
                samples.append((fr.index, rss_mb()))

        frames = itertools.islice(itertools.cycle(u8), args.rss_frames)
        t0 = time.perf_counter()
        info = run(
            frames,
            Path(tmp) / "long",
            settings=settings,
            segmenter=seg,
            track=True,
            pixel_size_nm=movie.pixel_size_nm,
            progress=progress,
            plots=False,
        )
        t_long = time.perf_counter() - t0
        base = next((m for i, m in samples if i >= 100), samples[0][1])
        out["rss_frames"] = info["frames_analysed"]
        out["rss_mb_at_100"] = round(base, 1)
        out["rss_mb_end"] = round(samples[-1][1], 1)
        out["rss_growth_mb"] = round(samples[-1][1] - base, 1)
        # per-frame allocations make single samples vary by tens of MB: compare medians too
        after = [m for i, m in samples if i >= 100]
        out["rss_growth_median_mb"] = round(
            float(np.median(after[-5:])) - float(np.median(after[:5])), 1
        )
        out["rss_samples"] = [(i, round(m, 1)) for i, m in samples]
        out["long_run_fps"] = round(info["frames_analysed"] / t_long, 2)
        out["long_run_particles"] = info["particles"]

    print(json.dumps({k: v for k, v in out.items() if k != "rss_samples"}, indent=2))
    print(pd.DataFrame(out["rss_samples"], columns=["frame", "rss_mb"]).T.to_string(header=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    if not equal:
        print("FAIL: pipeline tables differ from the stage-by-stage tables", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
