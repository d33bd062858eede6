"""Reprocess an archive of micrographs on a Dask cluster.

:func:`analyze_archive` runs the same :func:`antema_fast.pipeline.analyze` step as ``antema
analyze`` over thousands of files: one Dask task per file, on an embedded
:class:`distributed.LocalCluster` (the default) or on any cluster that already runs (``dask
scheduler`` / ``dask worker``, dask-jobqueue, Kubernetes), given by its scheduler address or a
:class:`distributed.Client`. Each worker loads the segmentation model once.

Dask is an optional extra, ``pip install "antema_fast[distributed]"``; it is imported only when a
run starts, and its absence raises an ImportError that names the extra.

Output folder. Every file is written under a hidden temporary name in its folder, then renamed,
and names derive from the input path, so a re-run task overwrites instead of duplicating::

    OUTDIR/
      particles/<sample>/<image-key>.parquet   one file per image: the particle table with the
                                               columns ``sample`` and ``source`` in front, and the
                                               image's record (counts, provenance) in its metadata
      images/<sample>/<image-key>/             what ``antema analyze`` writes per image
      summary.csv                              one row per sample and quantity
      images.csv                               one row per image: particles, exclusions, seconds
      failures.csv                             one row per input that failed after its retries

``pandas.read_parquet(OUTDIR / "particles")`` and ``dask.dataframe.read_parquet(OUTDIR /
"particles")`` read every particle; readers skip the hidden temporary files of a run in progress.
"""

from __future__ import annotations

from ._archive import ArchiveReport, analyze_archive
from ._layout import MICROGRAPH_EXTENSIONS, ArchiveItem, iter_archive, outputs_complete

__all__ = [
    "MICROGRAPH_EXTENSIONS",
    "ArchiveItem",
    "ArchiveReport",
    "analyze_archive",
    "iter_archive",
    "outputs_complete",
]
