"""Seconds per image, by stage: read, segment, separate + measure, export (tables), pictures.

Synthetic bright-field micrographs (``antema_fast.synth``) of 1024² and 2048² px with few and with
many overlapping particles are written as calibrated TIFF files, then each goes through the same
stages as ``antema analyze``, timed one by one, with separation ``none`` and ``uecs``. Everything
runs with 2 threads for the segmentation engine. The paper's figures (ANTEMA on a workstation
with a GPU) are printed beside ours: under 10 s per image without separation, under 15 s with it,
under 90 s with heavy overlap.

The benchmark also checks its results: the staged run must equal one ``analyze()`` call on the same
file, the image folder must hold a complete manifest, and separation must find at least as many
particles as no separation.

Usage::

    nice -n 10 python bench/bench_pipeline.py                 # default model, else threshold
    python bench/bench_pipeline.py --backend threshold --repeat 1 --sizes 1024
    python bench/bench_pipeline.py --json bench/results/pipeline.json

Set ``OMP_NUM_THREADS=2`` to also hold NumPy/OpenCV to two threads, as in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import antema_fast as af
import numpy as np
import pandas as pd
import tifffile
from antema_fast import export, plots
from antema_fast.pipeline import finish
from antema_fast.synth import Population, generate, to_uint16

PAPER_S = {"none": 10.0, "uecs": 15.0, "uecs, heavy overlap": 90.0}

CASES = {
    "few overlaps": Population(
        median_diameter_nm=6.0,
        sigma_log=0.2,
        coverage=0.12,
        overlap_fraction=0.05,
        shapes=("sphere", "truncated_octahedron"),
        max_particles=2000,
    ),
    "many overlaps": Population(
        median_diameter_nm=6.0,
        sigma_log=0.25,
        coverage=0.3,
        overlap_fraction=0.6,
        shapes=("sphere", "truncated_octahedron", "octahedron"),
        max_particles=2000,
    ),
}


def make_image(folder: Path, size: int, case: str, seed: int) -> tuple[Path, int]:
    synth = generate(seed, (size, size), "tem", pixel_size_nm=0.25, population=CASES[case])
    path = folder / f"{case.replace(' ', '_')}_{size}.tif"
    tifffile.imwrite(
        path, to_uint16(synth.image), imagej=True, resolution=(4.0, 4.0), metadata={"unit": "nm"}
    )
    # the analysis drops particles cut by the border by design: count those inside only
    return path, sum(1 for i in synth.instances if not i.touches_border)


def run_once(
    path: Path, settings: af.Settings, segmenter: af.Segmenter, outdir: Path
) -> tuple[dict[str, float], af.AnalysisResult]:
    t0 = time.perf_counter()
    mg = af.read(path)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg = segmenter.segment(mg.data, pixel_size_nm=mg.pixel_size_nm)
    t_seg = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = finish(mg, seg, settings)
    t_sep = time.perf_counter() - t0
    t0 = time.perf_counter()
    folder = export.write_image_outputs(res, outdir, formats=("csv",), images=False)
    t_exp = time.perf_counter() - t0
    if export.read_manifest(folder) is None:
        raise AssertionError(f"{folder}: no complete manifest after export")
    t0 = time.perf_counter()
    pictures = plots.write_image_pictures(res, folder)
    t_pic = time.perf_counter() - t0
    if not all((folder / name).stat().st_size > 0 for name in pictures.values()):
        raise AssertionError(f"{folder}: an empty picture")
    stages = {
        "read": t_read,
        "segment": t_seg,
        "separate_measure": t_sep,
        "export": t_exp,
        "pictures": t_pic,
    }
    stages["total"] = sum(stages.values())
    return stages, res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument(
        "--backend",
        default=None,
        help="segmentation backend (default: auto when the shipped model exists, else threshold)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="runs per case; the median is shown")
    ap.add_argument("--json", type=Path, default=None, help="also save the results here")
    args = ap.parse_args(argv)

    backend = args.backend
    if backend is None:
        try:
            af.Segmenter(af.Settings(threads=args.threads))
            backend = "auto"
        except FileNotFoundError as exc:
            print(f"note: {exc} -> using backend threshold", file=sys.stderr)
            backend = "threshold"
    base = af.Settings(backend=backend, threads=args.threads)
    segmenter = af.Segmenter(base)
    print(
        f"backend {segmenter.backend_name}, model {segmenter.model_name}, "
        f"{args.threads} threads, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        # warm-up: imports, font cache and engine start-up are not part of a per-image time
        warm, _ = make_image(tmpdir, 256, "few overlaps", seed=99)
        run_once(warm, base, segmenter, tmpdir / "warm")
        for size in args.sizes:
            for k, case in enumerate(CASES):
                path, n_true = make_image(tmpdir, size, case, seed=100 + k)
                counts: dict[str, int] = {}
                dropped: dict[str, int] = {}
                for separation in ("none", "uecs"):
                    settings = base.replace(separation=separation)
                    runs = []
                    res = None
                    for _ in range(args.repeat):
                        stages, res = run_once(path, settings, segmenter, tmpdir / "out")
                        runs.append(stages)
                    assert res is not None
                    # the staged run equals one analyze() call
                    ref = af.analyze(path, settings=settings, segmenter=segmenter)
                    pd.testing.assert_frame_equal(ref.table, res.table)
                    counts[separation] = res.n_particles
                    # objects the separation step itself excludes, with a reason (SPEC)
                    dropped[separation] = sum(
                        res.counts.get(k, 0) for k in ("marker_too_small", "regrown_non_convex")
                    )
                    med = {s: statistics.median(r[s] for r in runs) for s in runs[0]}
                    paper_key = (
                        separation
                        if separation == "none"
                        else ("uecs, heavy overlap" if case == "many overlaps" else "uecs")
                    )
                    rows.append(
                        {
                            "size": size,
                            "case": case,
                            "separation": separation,
                            "particles": res.n_particles,
                            "true_inside": n_true,
                            **{f"{s}_s": v for s, v in med.items()},
                            "paper_limit_s": PAPER_S[paper_key],
                        }
                    )
                if counts["uecs"] + dropped["uecs"] < counts["none"]:
                    raise AssertionError(
                        f"{size} {case}: separation lost particles without a reason: "
                        f"{counts}, excluded by the separation step {dropped}"
                    )
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "backend": segmenter.backend_name,
            "model": segmenter.model_name,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "numpy": np.__version__,
            "antema_fast": af.__version__,
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
