"""Dense fields: what the analysis reports where particles touch and overlap, from the shipped
model's mask and from the true mask, separated by UECS (the default) and by watershed.

Fields: 512² synthetic micrographs (``antema_fast.synth.generate``), ``--fields`` per regime, with
the generator's own pixel size, median diameter and shapes for the regime, a log-normal σ of
0.1-0.3, coverage 0.3-0.45 and 40 % of the particles overlapping another (seeds fixed). Each
mask goes through despeckling, the convexity gate, separation and cleaning
(:func:`antema_fast.separate.postprocess`, SPEC defaults) and is matched one-to-one (IoU ≥ 0.5)
to the true particles that do not touch the border
(:func:`antema_fast.train.evaluate.pipeline_field`). The true mask shows what separation
itself can do; the model's what a user gets. Printed per regime and pooled: true and reported
particles, precision, recall, F1, the pooled mean equivalent diameter's bias and the matched
particles' median error.

Run: ``nice -n 10 python bench/bench_dense.py [--fields 8] [--model FILE --threshold T]``
(about 4 min on 2 cores).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from antema_fast import Settings, synth
from antema_fast.segment._models import resolve_model_path
from antema_fast.separate import postprocess
from antema_fast.train.evaluate import OnnxSegmenter, pipeline_field, pipeline_summary


def dense_field(regime: str, k: int, size: int = 512) -> synth.SynthImage:
    """Field ``k`` of ``regime``: the regime's scale and shapes, coverage 0.3-0.45, overlap 0.4."""
    r_i = synth.REGIMES.index(regime)
    rng = np.random.default_rng([2222, r_i, k])
    px, dmed = synth._draw_scale(regime, rng, (size, size))
    pop = synth.Population(
        median_diameter_nm=dmed,
        sigma_log=float(rng.uniform(0.1, 0.3)),
        coverage=float(rng.uniform(0.3, 0.45)),
        overlap_fraction=0.4,
    )
    return synth.generate(
        rng, (size, size), regime, pixel_size_nm=px, population=pop, film_hole=False
    )


def _line(label: str, m: dict) -> str:
    return (
        f"{label:28} {m['n_true']:5d} {m['n_measured']:5d} {m['precision']:6.3f} "
        f"{m['recall']:6.3f} {m['f1']:6.3f} {m['mean_diameter_bias']:+7.1%} "
        f"{m['matched_diameter_bias_median']:+7.1%}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", type=int, default=8, help="fields per regime")
    ap.add_argument("--model", default="antema-unet", help="model name or ONNX file")
    ap.add_argument("--threshold", type=float, default=None, help="default: the model's own")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    seg = OnnxSegmenter(str(resolve_model_path(args.model)), threads=args.threads)
    thr = seg.threshold if args.threshold is None else args.threshold
    sources = ("model", "truth")
    seps = ("uecs", "watershed")
    recs: dict[tuple[str, str, str], list] = {}
    for regime in synth.REGIMES:
        for k in range(args.fields):
            s = dense_field(regime, k)
            masks = {"model": seg.probability(s.image) >= thr, "truth": s.semantic}
            for src in sources:
                for sep in seps:
                    res = postprocess(masks[src], s.pixel_size_nm, Settings(separation=sep))
                    recs.setdefault((src, sep, regime), []).append(pipeline_field(res, s))
    print(f"model {seg.path} at threshold {thr:.2f}; {args.fields} fields per regime")
    print(
        f"{'mask / separation / regime':28} {'true':>5} {'found':>5} {'prec':>6} {'recall':>6} "
        f"{'F1':>6} {'mean':>7} {'matched':>7}"
    )
    for src in sources:
        for sep in seps:
            for regime in synth.REGIMES:
                print(_line(f"{src} {sep} {regime}", pipeline_summary(recs[src, sep, regime])))
            pooled = [r for regime in synth.REGIMES for r in recs[src, sep, regime]]
            print(_line(f"{src} {sep} all", pipeline_summary(pooled)))


if __name__ == "__main__":
    main()
