"""Sparse fields: false particles where a micrograph holds few particles or none.

In a field of a few particles on a wide area of support (low-loading catalysts, a sparse
deposit), the 0.5-99.5 percentile scaling of the preprocessing stretches the support's texture
to full contrast, and a model that never saw such fields takes carbon grains and noise for
particles. This bench takes each field through the whole analysis (``antema_fast.analyze``,
its scale check and second pass included) with each model given, and the true mask through
what follows segmentation (:func:`antema_fast.separate.postprocess`) for reference; reported
particles are matched one-to-one (IoU ≥ 0.5) to the true particles that do not touch the border
(:func:`antema_fast.train.evaluate.pipeline_field`).

Fields (seeds fixed): ``--fields`` sparse 768² fields per regime
(``synth.generate(..., sparse=True)``: the regime's scale, shapes and imaging, coverage
log-uniform 0.0005-0.02), and 12 near-empty 768² fields (one 5-nm particle at 0.1 or 0.2 nm/px
in bright-field TEM, HRTEM and HAADF). Printed per regime and pooled: true and reported
particles, false ones, precision, recall, F1, the pooled mean equivalent diameter's bias, and
how many reported particles are under 1 nm.

Run: ``nice -n 10 python bench/bench_sparse.py [--fields 12] [--model FILE ...] [--contrast-z 3]``
(about 4 min per model on 2 cores).
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from collections.abc import Iterator

import numpy as np
from antema_fast import Settings, analyze, synth
from antema_fast.separate import postprocess
from antema_fast.train.evaluate import pipeline_field, pipeline_summary


def sparse_field(regime: str, k: int, size: int = 768) -> synth.SynthImage:
    """Sparse field ``k`` of ``regime``."""
    rng = np.random.default_rng([2323, synth.REGIMES.index(regime), k])
    return synth.generate(rng, (size, size), regime, sparse=True)


def near_empty_fields(size: int = 768) -> Iterator[synth.SynthImage]:
    """Twelve fields holding one 5-nm particle each: support texture and little else."""
    for regime in ("tem", "haadf", "hrtem"):
        for px in (0.1, 0.2):
            for k in range(2):
                pop = synth.Population(
                    median_diameter_nm=5.0, coverage=0.0005, overlap_fraction=0.0, max_particles=1
                )
                rng = np.random.default_rng([404, k, int(px * 100)])
                yield synth.generate(
                    rng, (size, size), regime, pixel_size_nm=px, population=pop, film_hole=False
                )


def _record(source: object, s: synth.SynthImage) -> dict:
    rec = pipeline_field(source, s)
    rec["sub1nm"] = int(np.count_nonzero(np.asarray(rec["d_measured"]) < 1.0))
    return rec


def _line(label: str, recs: list[dict]) -> str:
    m = pipeline_summary(recs)
    false = m["n_measured"] - sum(r["tp"] for r in recs)
    bias = m["mean_diameter_bias"]
    return (
        f"{label:30} {m['n_true']:5d} {m['n_measured']:5d} {false:5d} {m['precision']:6.3f} "
        f"{m['recall']:6.3f} {m['f1']:6.3f} {bias:+7.1%} {sum(r['sub1nm'] for r in recs):5d}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=12, help="sparse fields per regime")
    ap.add_argument(
        "--model", action="append", default=None, help="model name or ONNX file (repeatable)"
    )
    ap.add_argument(
        "--contrast-z", type=float, default=0.0, help="Settings.min_contrast_z (default 0, off)"
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    models = args.model or ["antema-unet"]
    settings = {
        name: Settings(model=name, threads=args.threads, min_contrast_z=args.contrast_z)
        for name in models
    }
    # drawn one at a time: each field is analysed by every model, then dropped
    fields = itertools.chain(
        ((r, sparse_field(r, k)) for r in synth.REGIMES for k in range(args.fields)),
        (("near-empty", s) for s in near_empty_fields()),
    )
    groups = [*synth.REGIMES, "near-empty"]
    recs: dict[tuple[str, str], list[dict]] = {}
    for regime, s in fields:
        recs.setdefault(("truth", regime), []).append(
            _record(postprocess(s.semantic, s.pixel_size_nm, Settings()), s)
        )
        for name, st in settings.items():
            res = analyze(s.image, pixel_size_nm=s.pixel_size_nm, settings=st)
            recs.setdefault((name, regime), []).append(_record(res, s))
    print(f"{args.fields} sparse fields per regime and 12 near-empty fields, 768²")
    print(
        f"{'mask / fields':30} {'true':>5} {'found':>5} {'false':>5} {'prec':>6} {'recall':>6} "
        f"{'F1':>6} {'mean':>7} {'<1nm':>5}"
    )
    for name in ["truth", *models]:
        for g in groups:
            print(_line(f"{name} {g}", recs[name, g]))
        sparse = [r for g in synth.REGIMES for r in recs[name, g]]
        print(_line(f"{name} sparse all", sparse))


if __name__ == "__main__":
    main()
