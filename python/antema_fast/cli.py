"""The ``antema`` command.

Each subcommand has an ``_add_<name>`` function that declares its arguments and a ``_run_<name>``
function that imports the heavy modules it needs only after the arguments are parsed, so that
``antema --help`` is instant. The library never imports this module.

Exit codes: 0 success, 1 some inputs failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Runner = Callable[[argparse.Namespace], int]


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="antema",
        description=(
            "Measure nanoparticles in TEM micrographs: segmentation by a neural network, "
            "separation of overlapping particles (UECS), and size/shape tables, plots and reports."
        ),
    )
    parser.add_argument("--version", action="version", version=f"antema_fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Runner] = {}
    for name, adder in _SUBCOMMANDS.items():
        runners[name] = adder(sub)
    return parser, runners


# name -> function that adds the subparser and returns its runner. Filled below by each area.
_SUBCOMMANDS: dict[str, Callable[[argparse._SubParsersAction], Runner]] = {}  # type: ignore[type-arg]


# ---- antema analyze ------------------------------------------------------------------------

_ANALYZE_EPILOG = """\
examples:
  antema analyze examples/ -o results/
      every micrograph in examples/ (DM3/DM4, TIFF, EMD, SER, MRC); one folder per image
  antema analyze "data/**/*.dm4" --sample Au-batch-7 -o results/
      pool all images as one specimen (pooled table, summary and histograms)
  antema analyze scan.tif --pixel-size 0.05 --separation none --format csv,xlsx -o out/
      a file without calibration: give nm per pixel yourself

outputs (in OUTDIR):
  <image>/particles.csv (.xlsx, .parquet)  one row per particle, sizes in nm
  <image>/summary.csv, excluded.csv        count, mean, SD, median, 95 % CI; excluded areas
  <image>/*.png, index.html, manifest.json pictures, a page per image, provenance
  particles.csv, summary.csv, histograms.png   all images pooled
  index.html                               one page with every image (open it in a browser)
  failures.csv                             inputs that could not be analysed, and why

exit status: 0 all inputs analysed, 1 some failed, 2 usage error.
"""


def _add_analyze_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the options of ``antema analyze`` (the distributed options are added beside)."""
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="micrograph files, folders (their micrographs) or glob patterns",
    )
    p.add_argument(
        "-o",
        "--outdir",
        required=True,
        metavar="OUTDIR",
        help="folder for the results (created if needed)",
    )
    p.add_argument(
        "--sample", metavar="NAME", help="pool all inputs as images of one specimen called NAME"
    )
    p.add_argument(
        "--pixel-size",
        type=float,
        metavar="NM",
        dest="pixel_size",
        help="nm per pixel for every input, overriding the files' calibration "
        "(needed for files without one)",
    )
    g = p.add_argument_group("analysis settings (defaults: ANTEMA's)")
    g.add_argument(
        "--separation",
        choices=("uecs", "watershed", "none"),
        help="how overlapping particles are split (default: uecs)",
    )
    g.add_argument(
        "--convexity-threshold",
        type=float,
        metavar="X",
        help="areas more convex than this are single particles (default: 0.95)",
    )
    g.add_argument(
        "--min-convexity",
        type=float,
        metavar="X",
        help="areas less convex than this are excluded (default: 0.5)",
    )
    g.add_argument(
        "--min-diameter-nm",
        type=float,
        metavar="NM",
        help="specks smaller than a disc of this diameter are removed (default: 0.5)",
    )
    g.add_argument(
        "--min-contrast-z",
        type=float,
        metavar="Z",
        help="exclude particles whose contrast against the pixels 2-6 px around them is under Z "
        "standard errors (low_contrast): noise specks in low-dose images; 3 is a good value "
        "(default: 0, off, as ANTEMA)",
    )
    g.add_argument(
        "--circularity",
        choices=("corrected", "legacy"),
        help="corrected: MATLAB ≥ R2023a formula; legacy: 4πA/P² as ANTEMA v1.0 "
        "(default: corrected)",
    )
    g.add_argument(
        "--backend",
        choices=("auto", "onnxruntime", "tensorrt", "threshold"),
        help="segmentation engine; threshold needs no model (default: auto)",
    )
    g.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        help="shipped model name or an .onnx file (default: the shipped model)",
    )
    g.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads for the segmentation engine (default: engine decides)",
    )
    g.add_argument(
        "--segment-scale",
        type=float,
        metavar="X",
        help="resize images by X before segmentation (mask back at full size); the model knows "
        "particles about 3-85 px wide, so use e.g. 0.1 when they are 300-800 px (default: 1)",
    )
    g.add_argument(
        "--flip-views",
        type=int,
        choices=(1, 2, 4),
        metavar="N",
        help="average the segmentation over N mirrored views (1, 2 or 4; N times slower, a "
        "little more accurate; default: 1)",
    )
    g.add_argument(
        "--no-scale-check",
        dest="check_scale",
        action="store_false",
        default=None,
        help="skip the 1/8-scale pass that finds particles too wide for the model",
    )
    g.add_argument(
        "--no-auto-scale",
        dest="auto_scale",
        action="store_false",
        default=None,
        help="when that pass finds such particles, only warn (default: segment them again at a "
        "reduced scale and merge them into the full-scale mask)",
    )
    g.add_argument(
        "--ignore-region",
        type=_region,
        action="append",
        metavar="X,Y,W,H",
        help="a rectangle of the image (px) that is not specimen, e.g. a burned-in scale bar or "
        "data bar: not segmented or measured, particles touching it excluded as at the border; "
        "negative X/Y count from the right/bottom edge, W/H 0 reach the edge (0,-64,0,0: the "
        "bottom 64 rows); repeat for several",
    )
    g.add_argument(
        "--ignore-data-bar",
        action="store_true",
        default=None,
        help="find a data bar (full-width strip of extreme values with text at the top or bottom "
        "edge, e.g. Zeiss SEM) in each image and ignore it as with --ignore-region (default: "
        "only warn)",
    )
    g.add_argument(
        "--ignore-scale-bar",
        action="store_true",
        default=None,
        help="find a scale bar burned into each image (a solid horizontal or vertical bar at the "
        "image's darkest or brightest value, with its label) and ignore it as with --ignore-region "
        "(default: only warn)",
    )
    g.add_argument(
        "--scale-bar-nm",
        type=float,
        metavar="NM",
        default=None,
        help="the length the burned-in scale bars of exported pictures stand for (the number on "
        "their labels): where a file has no pixel size, it is NM divided by the bar's length in "
        "px; where it has one, the bar checks it (a warning when they differ by more than 2 %%); "
        "implies --ignore-scale-bar",
    )
    g.add_argument(
        "--min-measured-fraction",
        type=float,
        metavar="X",
        help="warn when less than this share of the segmented particle area (border effects "
        "aside) is in measured particles, e.g. particles too few pixels wide for UECS; 0: never "
        "(default: 0.6)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--format",
        default="csv",
        metavar="LIST",
        help="particle table formats, comma separated: csv, xlsx, parquet (default: csv)",
    )
    o.add_argument(
        "--no-images",
        action="store_true",
        help="skip the PNG pictures and per-image pages (faster)",
    )
    o.add_argument(
        "--resume",
        action="store_true",
        help="skip images whose folder in OUTDIR is already complete",
    )
    o.add_argument("--quiet", action="store_true", help="no progress and no summary table")
    _add_distributed_arguments(p)


def _add_distributed_arguments(p: argparse.ArgumentParser) -> None:
    """Options of a Dask run (:mod:`antema_fast.distributed`); either one of the first two
    makes ``antema analyze`` reprocess the inputs as an archive on a cluster."""
    d = p.add_argument_group(
        "archive on a Dask cluster (needs the 'distributed' extra)",
        "With --workers or --scheduler the inputs are listed lazily and analysed one task per "
        "file; OUTDIR gets particles/ (a Parquet dataset, one file per image), images/, "
        "summary.csv (per sample folder), images.csv and failures.csv.",
    )
    d.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="start a local Dask cluster of N worker processes",
    )
    d.add_argument(
        "--threads-per-worker",
        type=int,
        metavar="N",
        help="task threads per local worker (default: 1); each task's engine gets "
        "cores / (all task threads) threads",
    )
    d.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use a running Dask cluster, e.g. tcp://10.0.0.5:8786 (inputs and OUTDIR must be "
        "on a file system its workers share)",
    )
    d.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help="re-runs of a failed task before it is recorded in failures.csv (default: 2)",
    )


def _add_analyze(sub: argparse._SubParsersAction) -> Runner:  # type: ignore[type-arg]
    p = sub.add_parser(
        "analyze",
        help="measure every particle in micrographs: tables, pictures and a report",
        description=(
            "Segment, separate and measure the particles of every input micrograph. Writes, for "
            "each image, the particle table, a summary, pictures and a manifest, and for the whole "
            "run the pooled table and an index.html report."
        ),
        epilog=_ANALYZE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_analyze_arguments(p)
    return _run_analyze


def _analyze_settings(args: argparse.Namespace) -> object:
    from ._settings import Settings

    names = {
        "separation": "separation",
        "convexity_threshold": "convexity_threshold",
        "min_convexity": "min_convexity",
        "min_diameter_nm": "min_diameter_nm",
        "min_contrast_z": "min_contrast_z",
        "circularity": "circularity",
        "backend": "backend",
        "model": "model",
        "threads": "threads",
        "segment_scale": "segment_scale",
        "check_scale": "check_scale",
        "auto_scale": "auto_scale",
        "flip_views": "flip_views",
        "min_measured_fraction": "min_measured_fraction",
        "ignore_data_bar": "ignore_data_bar",
        "ignore_scale_bar": "ignore_scale_bar",
        "scale_bar_nm": "scale_bar_nm",
    }
    changes = {
        field: getattr(args, arg)
        for arg, field in names.items()
        if getattr(args, arg, None) is not None
    }
    if getattr(args, "ignore_region", None):
        changes["ignore_regions"] = tuple(args.ignore_region)
    return Settings(**changes)


def _region(text: str) -> tuple[int, int, int, int]:
    """``--ignore-region X,Y,W,H`` as four integers (pixels)."""
    parts = [t.strip() for t in text.split(",")]
    try:
        x, y, w, h = (int(t) for t in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected X,Y,W,H in whole pixels (e.g. 0,-64,0,0), got {text!r}"
        ) from None
    if w < 0 or h < 0:
        raise argparse.ArgumentTypeError(f"W and H must be >= 0 (0: to the edge), got {text!r}")
    return (x, y, w, h)


def _run_analyze(args: argparse.Namespace) -> int:
    import time

    from ._batch import expand_inputs, run_batch
    from .export import _check_formats

    err = sys.stderr
    try:
        settings = _analyze_settings(args)
        formats = _check_formats(args.format)
        if args.pixel_size is not None and not args.pixel_size > 0:
            raise ValueError(f"--pixel-size: expected nm per pixel > 0, got {args.pixel_size}")
    except ValueError as exc:
        print(f"antema analyze: error: {exc}", file=err)
        return 2
    if args.workers is not None or args.scheduler is not None:
        # before expand_inputs: an archive is listed lazily, never all at once
        return _run_analyze_distributed(args, settings, formats)
    files, missing = expand_inputs(args.inputs)
    if not files:
        for item, reason in missing:
            print(f"antema analyze: error: {item}: {reason}", file=err)
        print("antema analyze: error: nothing to analyse", file=err)
        return 2
    tty = err.isatty()

    def progress(
        i: int,
        n: int,
        path: object,
        status: str,
        found: int | None,
        seconds: float,
        messages: tuple[str, ...] = (),
    ) -> None:
        if args.quiet:
            return
        name = getattr(path, "name", str(path))
        if status == "running":
            line = f"[{i}/{n}] {name}: analysing…"
        elif status == "failed":
            line = f"[{i}/{n}] {name}: FAILED: {messages[0] if messages else ''}"
        elif status == "skipped":
            line = f"[{i}/{n}] {name}: already done ({found} particles)"
        else:
            line = f"[{i}/{n}] {name}: {found} particles ({seconds:.1f} s)"
            line += "".join(f"\n    warning: {m}" for m in messages)
        if tty:
            end = "" if status == "running" else "\n"
            print(f"\r\033[K{line}", end=end, file=err, flush=True)
        elif status != "running":
            print(line, file=err, flush=True)

    t0 = time.perf_counter()
    try:
        report = run_batch(
            files,
            args.outdir,
            settings,  # type: ignore[arg-type]
            sample=args.sample,
            pixel_size_nm=args.pixel_size,
            formats=formats,
            images=not args.no_images,
            resume=args.resume,
            missing=missing,
            progress=progress,
        )
    except KeyboardInterrupt:
        print("\nantema analyze: interrupted; finished images are kept (use --resume)", file=err)
        return 130
    except Exception as exc:  # the engine itself cannot run (e.g. no model): every image would fail
        print(f"antema analyze: error: {type(exc).__name__}: {exc}", file=err)
        return 1
    if not args.quiet:
        _print_analyze_table(report, time.perf_counter() - t0)
    for item, reason in report.failures:
        print(f"antema analyze: failed: {item}: {reason}", file=err)
    if report.failures:
        print(
            f"antema analyze: {len(report.failures)} input(s) failed; see "
            f"{args.outdir}/failures.csv",
            file=err,
        )
    return 0 if report.ok else 1


def _run_analyze_distributed(args: argparse.Namespace, settings: object, formats: object) -> int:
    """``antema analyze --workers N`` / ``--scheduler ADDRESS``: the archive on Dask."""
    err = sys.stderr
    if args.workers is not None and args.scheduler is not None:
        print("antema analyze: error: give --workers or --scheduler, not both", file=err)
        return 2
    if args.threads_per_worker is not None and args.scheduler is not None:
        print("antema analyze: error: --threads-per-worker is for --workers", file=err)
        return 2
    try:
        from .distributed import analyze_archive

        report = analyze_archive(
            args.inputs,
            args.outdir,
            settings=settings,  # type: ignore[arg-type]
            pixel_size_nm=args.pixel_size,
            n_workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            scheduler=args.scheduler,
            retries=args.retries,
            resume=args.resume,
            images=not args.no_images,
            formats=formats,  # type: ignore[arg-type]
            sample=args.sample,
            progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f"antema analyze: error: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print("\nantema analyze: interrupted; finished images are kept (use --resume)", file=err)
        return 130
    except Exception as exc:  # the cluster or the engine cannot run at all
        print(f"antema analyze: error: {type(exc).__name__}: {exc}", file=err)
        return 1
    if not args.quiet:
        print(
            f"{report.processed} image(s) analysed, {report.skipped} skipped, "
            f"{report.failed} failed in {report.seconds:.1f} s "
            f"({report.images_per_second:.2f} images/s); {report.particles} particles; "
            f"dataset: {report.particles_path}"
        )
    return 0 if report.failed == 0 else 1


def _print_analyze_table(report: object, seconds: float) -> None:
    import math

    images = getattr(report, "images", [])
    rows = [("image", "particles", "mean d (nm)", "SD d (nm)", "status")]
    for r in images:
        summ = {s.get("quantity"): s for s in r.manifest.get("summary", [])}
        d = summ.get("equivalent_diameter_nm", {})

        def f(v: object) -> str:
            return f"{v:.3g}" if isinstance(v, float) and math.isfinite(v) else "–"

        rows.append((r.name, str(r.n_particles), f(d.get("mean")), f(d.get("sd")), r.status))
    for item, _ in getattr(report, "failures", []):
        rows.append((str(item), "–", "–", "–", "failed"))
    pooled = getattr(report, "pooled_summary", None)
    if pooled is not None and len(images) > 1:
        d = pooled.set_index("quantity").loc["equivalent_diameter_nm"]
        rows.append(
            (
                "all images",
                str(int(d["count"])),
                f"{d['mean']:.3g}" if d["count"] else "–",
                f"{d['sd']:.3g}" if d["count"] > 1 else "–",
                "",
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for j, row in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w)
                for k, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if j == 0:
            print("  ".join("-" * w for w in widths))
    outdir = getattr(report, "outdir", "")
    print(f"{len(images)} image(s) in {seconds:.1f} s; report: {outdir}/index.html")


_SUBCOMMANDS["analyze"] = _add_analyze


# -- antema engine build (segmentation: TensorRT engines ahead of time) ------------------------


def _add_engine(sub: argparse._SubParsersAction) -> Runner:  # type: ignore[type-arg]
    p = sub.add_parser(
        "engine",
        help="build TensorRT engines of the segmentation model ahead of time",
        description=(
            "Build the TensorRT engine of a segmentation model for the frame sizes in use and "
            "cache it on disk ($ANTEMA_ENGINE_CACHE or ~/.cache/antema_fast/engines). Needs an "
            "NVIDIA GPU and the [gpu] extra (tensorrt, pycuda)."
        ),
    )
    actions = p.add_subparsers(dest="engine_action", metavar="ACTION")
    b = actions.add_parser("build", help="build (or find in the cache) one engine")
    b.add_argument("--model", default=None, help="shipped model name or ONNX path (default model)")
    b.add_argument(
        "--sizes",
        default=None,
        help="comma-separated frame sizes HEIGHTxWIDTH the engine must cover "
        "(default: 256x256,1024x1024,2048x2048, what the segmenter uses)",
    )
    b.add_argument("--batch", type=int, default=None, help="largest batch (default: 4)")
    b.add_argument("--tile-size", type=int, default=None, help="tile size in px (default: 2048)")
    b.add_argument("--cache-dir", default=None, help="engine cache folder")
    return _run_engine


def _run_engine(args: argparse.Namespace) -> int:
    if args.engine_action != "build":
        print(
            "usage: antema engine build [--model NAME] [--sizes HxW,...] [--batch N]",
            file=sys.stderr,
        )
        return 2
    from .segment._tensorrt import build_engine_for, import_tensorrt, parse_sizes

    try:
        sizes = parse_sizes(args.sizes) if args.sizes else None
    except ValueError as exc:
        print(f"antema engine build: {exc}", file=sys.stderr)
        return 2
    try:
        import_tensorrt()
    except ImportError as exc:
        print(f"antema engine build: {exc}", file=sys.stderr)
        return 1
    try:
        path, built, profile = build_engine_for(
            args.model, sizes, args.batch, args.tile_size, args.cache_dir
        )
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"antema engine build: {exc}", file=sys.stderr)
        return 1
    print(f"{'built' if built else 'cached'}: {path} (profile {profile.describe()})")
    return 0


_SUBCOMMANDS["engine"] = _add_engine


# ---- synth / train / evaluate (issue 5) ------------------------------------------------------


def _add_synth(sub: argparse._SubParsersAction) -> Runner:  # type: ignore[type-arg]
    p = sub.add_parser(
        "synth",
        help="write synthetic micrographs with exact ground truth",
        description=(
            "Write N synthetic micrographs (uint16 TIFF with the pixel size), their instance "
            "label maps (overlap-resolved, TIFF), semantic masks (PNG) and a CSV of the true "
            "per-particle diameters."
        ),
    )
    p.add_argument("out", help="output folder")
    p.add_argument("-n", "--count", type=int, default=10, help="number of images (default 10)")
    p.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    p.add_argument(
        "--regime",
        default="mixed",
        choices=["mixed", "tem", "hrtem", "haadf", "ultrasmall", "lowdose"],
    )
    p.add_argument("--seed", type=int, default=0)
    return _run_synth


def _run_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from .synth import write_dataset

    rows = write_dataset(Path(args.out), args.count, tuple(args.size), args.regime, args.seed)
    n = int(np.sum([r["n_particles"] for r in rows]))
    print(f"wrote {len(rows)} images with {n} particles to {args.out}")
    return 0


_SUBCOMMANDS["synth"] = _add_synth


def _add_train(sub: argparse._SubParsersAction) -> Runner:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        help="train the segmentation model (needs the [train] extra)",
        description=(
            "Train a segmentation network on synthetic micrographs generated on the fly, mixed "
            "with real image + mask folders; checkpoints and resumes from OUT_DIR/checkpoint.pt; "
            "exports ONNX (+ FP16) with the preprocessing in its metadata."
        ),
    )
    p.add_argument("--out-dir", required=True, help="checkpoints, logs and ONNX files go here")
    p.add_argument("--model", default="unet", choices=["unet", "deeplabv3plus"])
    p.add_argument("--base", type=int, default=16, help="U-Net base width (default 16)")
    p.add_argument(
        "--refine-blocks",
        type=int,
        default=0,
        help="U-Net: residual blocks at full resolution (start as the identity, so they can be "
        "added to an --init-from checkpoint; default 0)",
    )
    p.add_argument(
        "--context-blocks",
        type=int,
        default=0,
        help="U-Net: residual blocks after each coarse decoder level (1/4 to 1/16 resolution; "
        "start as the identity like --refine-blocks; default 0)",
    )
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument(
        "--real",
        action="append",
        default=[],
        metavar="FOLDER",
        help="folder of image + mask pairs (repeatable); 'msaem' is split 15/5",
    )
    p.add_argument("--real-fraction", type=float, default=0.3)
    p.add_argument(
        "--regime-weights",
        type=_float_list,
        default=None,
        metavar="W,W,W,W,W",
        help="probabilities of the synthetic regimes tem,hrtem,haadf,ultrasmall,lowdose "
        "(default: the 'mixed' regime's 0.3,0.2,0.2,0.15,0.15)",
    )
    p.add_argument(
        "--no-synthetic-photometric",
        dest="synthetic_photometric",
        action="store_false",
        help="no brightness/contrast/gamma changes after preprocessing on synthetic tiles (real "
        "tiles keep them): synthetic inputs exactly as inference preprocesses an image",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--validate-every", type=int, default=100)
    p.add_argument("--export-every", type=int, default=500)
    p.add_argument("--name", default="antema-unet", help="model name in the ONNX metadata")
    p.add_argument(
        "--time-budget-min",
        type=float,
        default=None,
        help="stop after this many wall-clock minutes (cosine decay follows it)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="start from these model weights, a checkpoint.pt or an ONNX file of this package "
        "such as the shipped model (fine-tuning phase; fresh optimiser and schedule)",
    )
    p.add_argument(
        "--loss",
        default="bce-dice",
        choices=["bce-dice", "bce-lovasz"],
        help="cross-entropy + soft Dice (default) or + the Lovász hinge (a surrogate of the IoU)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="forward pass of training in float32 (default) or under bfloat16 autocast (about "
        "2x faster on CPUs with AVX-512 BF16 or AMX; weights, loss and export stay float32)",
    )
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep the default contiguous memory layout instead of channels-last (same numbers "
        "up to rounding; channels-last is faster with oneDNN on CPUs)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="validate and export an exponential moving average of the weights with this decay "
        "(e.g. 0.999, about the last 1,000 steps; default 0 = off)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        metavar="DEV",
        help="cpu (default), cuda, cuda:N, or auto (a CUDA GPU when torch sees one)",
    )
    p.add_argument(
        "--data-workers",
        type=int,
        default=0,
        metavar="N",
        help="processes drawing batches ahead of the training step (same batches; worth it "
        "beside a GPU; default 0 = in the training process)",
    )
    p.add_argument(
        "--gap-weight",
        type=float,
        default=0.0,
        metavar="W0",
        help="weigh the cross-entropy of background pixels between two particles by "
        "1 + W0*exp(-(d1+d2)^2/(2 sigma^2)) (U-Net's weight map for touching objects; "
        "default 0 = off)",
    )
    p.add_argument(
        "--gap-sigma",
        type=float,
        default=3.0,
        metavar="PX",
        help="width of --gap-weight's map in pixels (default 3)",
    )
    p.add_argument(
        "--sparse-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="draw this fraction of the synthetic tiles as sparse fields: a few particles or "
        "none on wide support, whose texture the preprocessing stretches to full contrast "
        "(default 0)",
    )
    p.add_argument(
        "--stop-at",
        type=int,
        default=None,
        metavar="STEP",
        help="stop at this step with a checkpoint and no export, the schedule still spanning "
        "--steps / --time-budget-min (reproduces a phase that was cut short; rerun without it "
        "to resume)",
    )
    return _run_train


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _run_train(args: argparse.Namespace) -> int:
    from .train.loop import TrainConfig, Trainer

    cfg = TrainConfig(
        out_dir=args.out_dir,
        model=args.model,
        base=args.base,
        refine_blocks=args.refine_blocks,
        context_blocks=args.context_blocks,
        steps=args.steps,
        batch=args.batch,
        tile=args.tile,
        lr=args.lr,
        warmup=args.warmup,
        real=list(args.real),
        real_fraction=args.real_fraction,
        regime_weights=args.regime_weights,
        synthetic_photometric=args.synthetic_photometric,
        seed=args.seed,
        threads=args.threads,
        checkpoint_every=args.checkpoint_every,
        validate_every=args.validate_every,
        export_every=args.export_every,
        name=args.name,
        time_budget_min=args.time_budget_min,
        init_from=args.init_from,
        loss=args.loss,
        precision=args.precision,
        channels_last=args.channels_last,
        ema=args.ema,
        device=args.device,
        data_workers=args.data_workers,
        gap_weight=args.gap_weight,
        gap_sigma_px=args.gap_sigma,
        sparse_fraction=args.sparse_fraction,
    )
    if args.stop_at is not None and args.stop_at < 1:
        raise SystemExit(f"antema train: --stop-at must be ≥ 1, got {args.stop_at}")
    try:
        trainer = Trainer(cfg)
    except ValueError as exc:  # a setting this machine or model cannot take
        print(f"antema train: error: {exc}", file=sys.stderr)
        return 2
    summary = trainer.run(until_step=args.stop_at)
    ckpt = Path(args.out_dir) / "checkpoint.pt"
    where = (
        f"model {summary['onnx']}"
        if summary["onnx"]
        else f"stopped at step {summary['steps']}; checkpoint {ckpt}"
    )
    print(f"done: {summary['steps']} steps in {summary['train_seconds'] / 60:.1f} min; {where}")
    return 0


_SUBCOMMANDS["train"] = _add_train


def _add_evaluate(sub: argparse._SubParsersAction) -> Runner:  # type: ignore[type-arg]
    p = sub.add_parser(
        "evaluate",
        help="evaluate an ONNX segmentation model (synthetic test set, real pairs, timing)",
    )
    p.add_argument("model", nargs="?", default=None, help="ONNX file (default: the shipped model)")
    p.add_argument("--synthetic", type=int, default=20, help="test images per regime")
    p.add_argument(
        "--synthetic-size",
        type=int,
        default=256,
        metavar="PX",
        help="side of the synthetic test images (default 256, the test set of the model card; "
        "larger fields lose fewer particles to the border in --pipeline)",
    )
    p.add_argument("--real", default=None, metavar="FOLDER", help="folder of image + mask pairs")
    p.add_argument(
        "--real-names",
        nargs="*",
        default=None,
        help="only these file names (e.g. the msaem held-out images)",
    )
    p.add_argument(
        "--msaem-validation",
        action="store_true",
        help="with --real pointing at msaem: only its 5 held-out images",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timing-size", type=int, default=1024)
    p.add_argument(
        "--ceiling",
        action="store_true",
        help="also estimate per regime the IoU an ideal observer could reach on the synthetic "
        "images (Cramér–Rao; slow: minutes for 20 images per regime)",
    )
    p.add_argument(
        "--flip-views",
        type=int,
        choices=(1, 2, 4),
        default=1,
        metavar="N",
        help="average the model over N mirrored views, as antema analyze --flip-views",
    )
    p.add_argument(
        "--worst-fields",
        type=int,
        default=10,
        metavar="N",
        help="list the N synthetic fields with the most wrong pixels (synthetic.all.worst_fields; "
        "redraw one with antema_fast.train.data.synthetic_field; default 10)",
    )
    p.add_argument(
        "--pipeline",
        action="store_true",
        help="also take each synthetic field through despeckling, border removal, separation "
        "and measurement (as antema analyze, default settings) and report per regime the "
        "count and the mean and SD of the equivalent diameter against the true particles "
        "inside the field (synthetic.<regime>.pipeline), and the same from the true mask "
        "(pipeline_oracle); with --real, the same for the real pairs at a nominal 1 nm/px",
    )
    p.add_argument(
        "--min-contrast-z",
        type=float,
        default=0.0,
        metavar="Z",
        help="--pipeline: analyse with this Settings.min_contrast_z (default 0: off)",
    )
    p.add_argument("--json", default=None, help="also write the report here")
    return _run_evaluate


def _run_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .export import atomic_write_text
    from .train.data import MSAEM_VALIDATION
    from .train.evaluate import evaluate_model, to_json

    model = args.model or str(Path(__file__).parent / "models" / "antema-unet.onnx")
    names = args.real_names
    if args.msaem_validation:
        names = [f"image_{i}.png" for i in MSAEM_VALIDATION]
    report = evaluate_model(
        model,
        synthetic_per_regime=args.synthetic,
        synthetic_tile=args.synthetic_size,
        real_folder=args.real,
        real_names=names,
        threads=args.threads,
        timing_size=args.timing_size,
        ceiling=args.ceiling,
        flip_views=args.flip_views,
        worst_fields=args.worst_fields,
        pipeline=args.pipeline,
        min_contrast_z=args.min_contrast_z,
    )
    text = to_json(report)
    if args.json:
        atomic_write_text(args.json, text)
    print(text)
    return 0


_SUBCOMMANDS["evaluate"] = _add_evaluate


def _add_compare(sub: argparse._SubParsersAction) -> Runner:  # type: ignore[type-arg]
    p = sub.add_parser(
        "compare",
        help="compare segmentation models on the same fresh synthetic fields (pooled IoU, "
        "differences from the first with a paired bootstrap 95 %% interval)",
    )
    p.add_argument("models", nargs="+", help="ONNX files; the first is the reference")
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[4242, 9090], help="fresh sets (default 4242 9090)"
    )
    p.add_argument("--per-regime", type=int, default=60, help="fields per regime and seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the report here")
    return _run_compare


def _run_compare(args: argparse.Namespace) -> int:
    from .export import atomic_write_text
    from .train.evaluate import compare_models, to_json

    report = compare_models(
        args.models,
        seeds=args.seeds,
        synthetic_per_regime=args.per_regime,
        threads=args.threads,
    )
    if args.json:
        atomic_write_text(args.json, to_json(report))
    fields = sum(report["fields"].values())
    print(f"{fields} fields (seeds {', '.join(report['fields'])}), each model at its threshold")
    for path, thr, iou in zip(report["models"], report["thresholds"], report["iou"], strict=True):
        seeds = "  ".join(f"{s}: {v:.4f}" for s, v in iou["seeds"].items())
        print(f"{path} (threshold {thr:g}): pooled IoU {iou['all']:.4f}  ({seeds})")
    for d in report["difference"]:
        lo, hi = d["ci95"]
        ci = f"95 % CI {lo:+.4f} to {hi:+.4f}"
        print(f"{d['model']} - {report['models'][0]}: {d['all']:+.4f} ({ci})")
    return 0


_SUBCOMMANDS["compare"] = _add_compare


def main(argv: Sequence[str] | None = None) -> int:
    parser, runners = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not args.command:
        parser.print_help()
        return 2
    return runners[args.command](args)


# --------------------------------------------------------------------------------------------
# antema stream


def _add_stream(sub: argparse._SubParsersAction) -> Runner:  # type: ignore[type-arg]
    p = sub.add_parser(
        "stream",
        help="analyse an in situ movie frame by frame: time series, tracks, events",
        description=(
            "Analyse a movie (a stack or series file, an MP4/AVI video, a folder of numbered "
            "images, or with --live a folder an acquisition is still writing) with reading, "
            "segmentation and measurement running concurrently. Tables are written while the "
            "movie runs (CSV flushed every frame, Parquet closed at the end or on Ctrl-C); "
            "pictures at the end."
        ),
    )
    p.add_argument("source", metavar="SOURCE", help="movie file, video, or folder of frames")
    p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--track", action="store_true", help="link particles: tracks and events")
    p.add_argument("--live", action="store_true", help="SOURCE is a folder still being written")
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every N-th frame")
    p.add_argument("--pixel-size", type=float, metavar="NM", dest="pixel_size", help="nm per pixel")
    p.add_argument(
        "--frame-interval",
        type=float,
        metavar="S",
        help="seconds between frames, where the source does not say it",
    )
    p.add_argument(
        "--policy",
        choices=("all", "latest"),
        default="all",
        help="--live: analyse every frame and fall behind, or skip to the newest (default: all)",
    )
    p.add_argument(
        "--quiet-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="--live: stop after S seconds without a new frame (default: 10)",
    )
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N analysed frames")
    p.add_argument(
        "--max-displacement",
        type=float,
        metavar="NM",
        help="--track: largest move between frames (default: each track's own diameter)",
    )
    p.add_argument(
        "--memory",
        type=int,
        default=3,
        metavar="N",
        help="--track: frames a particle may be missed and keep its track (default: 3)",
    )
    p.add_argument("--movie", action="store_true", help="also write overlay.mp4")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    p.add_argument(
        "--format", default="csv,parquet", metavar="LIST", help="csv, parquet (default: both)"
    )
    g = p.add_argument_group("analysis settings (defaults: ANTEMA's)")
    g.add_argument("--separation", choices=("uecs", "watershed", "none"))
    g.add_argument("--min-diameter-nm", type=float, metavar="NM")
    g.add_argument("--min-contrast-z", type=float, metavar="Z", help="as for antema analyze")
    g.add_argument("--backend", choices=("auto", "onnxruntime", "tensorrt", "threshold"))
    g.add_argument("--model", metavar="NAME_OR_PATH")
    g.add_argument("--threads", type=int, metavar="N")
    g.add_argument("--segment-scale", type=float, metavar="X", help="as for antema analyze")
    g.add_argument(
        "--flip-views", type=int, choices=(1, 2, 4), metavar="N", help="as for antema analyze"
    )
    g.add_argument(
        "--ignore-region",
        type=_region,
        action="append",
        metavar="X,Y,W,H",
        help="as for antema analyze (repeat for several)",
    )
    g.add_argument(
        "--ignore-data-bar", action="store_true", default=None, help="as for antema analyze"
    )
    g.add_argument(
        "--ignore-scale-bar", action="store_true", default=None, help="as for antema analyze"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return _run_stream


def _run_stream(args: argparse.Namespace) -> int:
    from .stream import Tracker, run

    err = sys.stderr
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    try:
        settings = _analyze_settings(args)
        track: bool | Tracker = False
        if args.track:
            track = Tracker(max_displacement_nm=args.max_displacement, memory=args.memory)
    except ValueError as exc:
        print(f"antema stream: {exc}", file=err)
        return 2

    def progress(fr: object) -> None:
        if not args.quiet:
            s = fr.series  # type: ignore[attr-defined]
            print(
                f"frame {s['frame']:>6}  particles {s['count']:>5}  "
                f"mean d {s['mean_diameter_nm']:8.2f} nm  skipped {fr.skipped}",  # type: ignore[attr-defined]
                file=err,
                flush=True,
            )

    try:
        info = run(
            args.source,
            args.outdir,
            formats=formats,
            plots=not args.no_plots,
            movie=args.movie,
            progress=progress,
            max_frames=args.max_frames,
            settings=settings,
            track=track,
            every=args.every,
            live=args.live,
            pixel_size_nm=args.pixel_size,
            frame_interval_s=args.frame_interval,
            policy=args.policy,
            quiet_timeout_s=args.quiet_timeout,
        )
    except KeyboardInterrupt:
        print(
            f"antema stream: interrupted; outputs for the frames done are in {args.outdir}",
            file=err,
        )
        return 130
    except (ValueError, TypeError, FileNotFoundError, OSError) as exc:
        print(f"antema stream: {exc}", file=err)
        return 2 if isinstance(exc, (ValueError, TypeError)) else 1
    if not args.quiet:
        print(
            f"{info['frames_analysed']} frames analysed, {info['frames_skipped']} skipped, "
            f"{info['particles']} particles, {info['fps']} frames/s -> {args.outdir}",
            file=err,
        )
    return 0


_SUBCOMMANDS["stream"] = _add_stream


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
