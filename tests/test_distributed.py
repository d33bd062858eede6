"""Archive reprocessing on Dask: equality with sequential analysis, fault tolerance, resume.

The cluster tests share one LocalCluster of two worker processes (started once per module);
the ``--scheduler`` test starts its own scheduler and worker as subprocesses on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from antema_fast import Settings
from antema_fast.distributed import (
    ArchiveItem,
    analyze_archive,
    iter_archive,
    outputs_complete,
)

distributed = pytest.importorskip("distributed")
tifffile = pytest.importorskip("tifffile")

PIXEL_NM = 0.8
SIZE = 256
SETTINGS = Settings(backend="threshold", bootstrap_samples=200)
# thresholded synthetic fields leave much of their area unmeasured and keep specks: analyze()
# warns about both (the checks are still recorded and compared), which is not what these
# tests are about
pytestmark = pytest.mark.filterwarnings("ignore:.*measured particles:UserWarning")
# Dask's read_parquet still calls a pandas method pandas has deprecated; not our code.
DASK_PANDAS = "ignore:The inplace keyword:DeprecationWarning"


def _micrograph(seed: int) -> np.ndarray:
    from antema_fast.synth import generate

    return generate(seed=seed, shape=(SIZE, SIZE), regime="tem", pixel_size_nm=PIXEL_NM).image


def _make_archive(root: Path, per_sample: dict[str, int], seed0: int = 0) -> list[Path]:
    paths = []
    seed = seed0
    for sample, n in per_sample.items():
        (root / sample).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            p = root / sample / f"img{i:02d}.tif"
            tifffile.imwrite(p, _micrograph(seed).astype(np.float32))
            paths.append(p)
            seed += 1
    return paths


def _sequential(paths: list[Path]) -> pd.DataFrame:
    """What analyze() gives file by file, in the dataset's column layout."""
    from antema_fast import analyze

    tables = []
    for p in paths:
        t = analyze(p, pixel_size_nm=PIXEL_NM, settings=SETTINGS).table.copy()
        t.insert(0, "source", str(p.absolute()))
        t.insert(0, "sample", f"{p.parent.parent.name}/{p.parent.name}")
        tables.append(t)
    return _ordered(pd.concat(tables, ignore_index=True))


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order; text columns as object (Parquet brings back another str dtype)."""
    df = df.sort_values(["source", "particle_id"], kind="stable").reset_index(drop=True)
    text = [c for c in df.columns if pd.api.types.is_string_dtype(df[c])]
    return df.astype({c: object for c in text})


def _parquet_files(out: Path) -> list[Path]:
    """The dataset's files (hidden temporary files left out, as Parquet readers do)."""
    return sorted(p for p in (out / "particles").rglob("*.parquet") if not p.name.startswith("."))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("dask") / "archive"
    return root, _make_archive(root, {"s1": 10, "s2": 10})


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        c.wait_for_workers(2, timeout=60)
        yield c


# --------------------------------------------------------------------------------------------
# Listing (no cluster)


def test_iter_archive_lists_folders_files_and_globs(tmp_path: Path) -> None:
    root = tmp_path / "arch"
    for rel in ("a/x.tif", "a/b/y.dm4", "a/.hidden/z.tif", "a/notes.txt", "c/w.TIF"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    items = list(iter_archive(root))
    assert [(i.sample, Path(i.path).name) for i in items] == [
        ("arch/a", "x.tif"),
        ("arch/a/b", "y.dm4"),
        ("arch/c", "w.TIF"),
    ]
    # an explicitly named file is taken whatever its ending; a glob filters by ending
    named = list(iter_archive([root / "a" / "notes.txt", str(root / "a" / "*")]))
    assert [Path(i.path).name for i in named] == ["notes.txt", "x.tif"]
    assert named[0].sample == "a"
    # keys: deterministic, and distinct for equal names in different folders
    again = ArchiveItem.from_path(root / "a" / "x.tif", "whatever")
    assert again.key == items[0].key
    (root / "c" / "x.tif").write_bytes(b"")
    assert ArchiveItem.from_path(root / "c" / "x.tif", "c").key != items[0].key
    assert not items[0].particles_path(tmp_path).name.startswith((".", "_"))


def test_iter_archive_is_lazy_and_checks_named_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing there"):
        iter_archive([tmp_path / "missing.tif"])  # raised before iterating
    with pytest.raises(FileNotFoundError, match="match at least one"):
        iter_archive([str(tmp_path / "*.dm4")])
    pulled = []

    def gen() -> Iterator[str]:
        for i in range(3):
            p = tmp_path / f"f{i}.tif"
            p.write_bytes(b"")
            pulled.append(i)
            yield str(p)

    it = iter_archive(gen())
    assert pulled == []
    next(it)
    assert pulled == [0]


def test_import_does_not_import_dask() -> None:
    code = "import sys, antema_fast.distributed; print('distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"antema_fast\[distributed\]"):
        analyze_archive(tmp_path, tmp_path / "out")


def test_rejects_conflicting_cluster_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_workers"):
        analyze_archive(tmp_path, tmp_path / "o", scheduler="tcp://127.0.0.1:1", n_workers=2)
    with pytest.raises(ValueError, match="retries"):
        analyze_archive(tmp_path, tmp_path / "o", retries=-1)
    with pytest.raises(ValueError, match="formats"):  # pictures go in the per-image folder
        analyze_archive(tmp_path, tmp_path / "o", images=True, formats=())
    with pytest.raises(ValueError, match="formats"):
        analyze_archive(tmp_path, tmp_path / "o", formats=("csv", "docx"))


# --------------------------------------------------------------------------------------------
# On a LocalCluster of two worker processes


@pytest.mark.filterwarnings(DASK_PANDAS)
def test_dataset_equals_sequential_analysis(
    archive: tuple[Path, list[Path]], client: distributed.Client, tmp_path: Path
) -> None:
    from antema_fast.pipeline import summarize

    root, paths = archive
    out = tmp_path / "out"
    report = analyze_archive(
        root,
        out,
        client=client,
        settings=SETTINGS,
        pixel_size_nm=PIXEL_NM,
        images=False,
        formats=(),
        progress=False,
    )
    assert (report.listed, report.processed, report.failed, report.skipped) == (20, 20, 0, 0)
    assert len(_parquet_files(out)) == 20

    expected = _sequential(paths)
    assert len(expected) > 20 * 3, "the synthetic micrographs should hold several particles each"
    got = _ordered(pd.read_parquet(out / "particles"))
    pd.testing.assert_frame_equal(got, expected)
    assert report.particles == len(expected)

    import dask.dataframe as dd

    got_dask = _ordered(dd.read_parquet(out / "particles").compute())
    pd.testing.assert_frame_equal(got_dask, expected)

    # the combined summary per sample is the summary of the pooled sequential tables
    summary = pd.read_csv(out / "summary.csv")
    for sample, rows in expected.groupby("sample"):
        want = summarize(rows.drop(columns=["sample", "source"]), SETTINGS)
        have = summary[summary["sample"] == sample].reset_index(drop=True)
        assert (have["images"] == 10).all()
        pd.testing.assert_frame_equal(
            have[want.columns].reset_index(drop=True), want, check_dtype=False
        )
    index = pd.read_csv(out / "images.csv")
    assert sorted(index["source"]) == sorted(str(p.absolute()) for p in paths)
    per_image = expected.groupby("source").size()
    assert dict(zip(index["source"], index["particles"], strict=True)) == {
        s: int(per_image.get(s, 0)) for s in index["source"]
    }
    # the quality checks of each image, as analyze() records them
    from antema_fast import analyze

    first = paths[0]
    q = analyze(first, pixel_size_nm=PIXEL_NM, settings=SETTINGS).provenance["quality"]
    row = index.set_index("source").loc[str(first.absolute())]
    assert row["measured_fraction"] == pytest.approx(q["measured_fraction"])
    assert row["under_resolved"] == q["under_resolved"]
    failures = pd.read_csv(out / "failures.csv")
    assert failures.empty and list(failures.columns)[:2] == ["source", "sample"]

    # one model per worker process, with the engine threads of its share of the cores
    from antema_fast.distributed import _worker

    # (a lambda travels by value: the workers need not import this test module)
    loaded = client.run(lambda: [(s, v.settings.threads) for s, v in _worker._SEGMENTERS.items()])
    cores = len(os.sched_getaffinity(0))
    assert list(loaded.values()) == [[(SETTINGS, max(1, cores // 2))]] * 2


def test_engine_threads_follow_the_cores() -> None:
    from antema_fast.distributed._worker import available_cores, engine_settings, host_of

    cores = available_cores()
    assert engine_settings(SETTINGS, 1).threads == cores
    assert engine_settings(SETTINGS, 2 * cores).threads == 1
    assert engine_settings(SETTINGS.replace(threads=3), 1).threads == 3  # explicit wins
    assert host_of("tcp://10.0.0.5:4321") == "10.0.0.5"
    assert host_of("tcp://[::1]:4321") == "[::1]"


@pytest.mark.filterwarnings(DASK_PANDAS)
@pytest.mark.filterwarnings(DASK_PANDAS)
def test_shipped_model_on_workers_equals_sequential(
    archive: tuple[Path, list[Path]], client: distributed.Client, tmp_path: Path
) -> None:
    from antema_fast import analyze
    from antema_fast.segment import Segmenter

    settings = Settings(backend="auto", bootstrap_samples=200)
    try:
        segmenter = Segmenter(settings)
    except FileNotFoundError as exc:
        pytest.skip(f"shipped model absent: {exc}")
    _, paths = archive
    inputs = paths[:3]
    out = tmp_path / "out"
    report = analyze_archive(
        inputs,
        out,
        client=client,
        settings=settings,
        pixel_size_nm=PIXEL_NM,
        images=False,
        formats=(),
        progress=False,
    )
    assert (report.processed, report.failed) == (3, 0)
    tables = []
    for p in inputs:
        t = analyze(p, pixel_size_nm=PIXEL_NM, settings=settings, segmenter=segmenter).table
        t.insert(0, "source", str(p.absolute()))
        t.insert(0, "sample", p.parent.name)
        tables.append(t)
    expected = _ordered(pd.concat(tables, ignore_index=True))
    pd.testing.assert_frame_equal(_ordered(pd.read_parquet(out / "particles")), expected)
    # each file's record names the model that ran on the worker, and its engine threads
    import json

    import pyarrow.parquet as pq

    meta = pq.ParquetFile(_parquet_files(out)[0]).schema_arrow.metadata[b"antema_fast"]
    provenance = json.loads(meta)["provenance"]
    assert provenance["model_sha256"] == segmenter.model_sha256
    assert provenance["segmenter"]["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)


def test_corrupt_file_is_recorded_and_the_rest_done(
    archive: tuple[Path, list[Path]], client: distributed.Client, tmp_path: Path
) -> None:
    _, paths = archive
    bad = tmp_path / "bad" / "broken.tif"
    bad.parent.mkdir()
    bad.write_bytes(b"II*\x00 this is not a TIFF at all")
    # and an image without a single particle: its Parquet file has no rows, first in the dataset
    empty = tmp_path / "bad" / "empty.tif"
    blank = np.full((SIZE, SIZE), 200.0, np.float32)
    blank[:40, :40] = 10.0  # one area, touching the border: dropped
    tifffile.imwrite(empty, blank)
    inputs = [*paths[:3], bad, empty, *paths[3:5]]
    out = tmp_path / "out"
    report = analyze_archive(
        inputs,
        out,
        client=client,
        settings=SETTINGS,
        pixel_size_nm=PIXEL_NM,
        images=False,
        formats=(),
        retries=1,
        progress=False,
    )
    assert (report.processed, report.failed) == (6, 1)
    failures = pd.read_csv(out / "failures.csv")
    assert failures["source"].tolist() == [str(bad)]
    assert failures["message"].str.contains("broken.tif").all()
    assert len(_parquet_files(out)) == 6
    assert pd.read_parquet(_parquet_files(out)[0]).empty
    got = pd.read_parquet(out / "particles")
    assert set(got["source"]) == {str(p.absolute()) for p in paths[:5]}
    import dask.dataframe as dd

    assert len(dd.read_parquet(out / "particles").compute()) == len(got)
    index = pd.read_csv(out / "images.csv").set_index("source")
    assert index.loc[str(empty), "particles"] == 0
    assert index.loc[str(empty), "excluded_border"] == 1


def test_resume_processes_only_what_is_missing(
    archive: tuple[Path, list[Path]], client: distributed.Client, tmp_path: Path
) -> None:
    _, paths = archive
    inputs = paths[:6]
    out = tmp_path / "out"
    kw = dict(
        client=client,
        settings=SETTINGS,
        pixel_size_nm=PIXEL_NM,
        images=False,
        formats=("csv",),
        progress=False,
    )
    first = analyze_archive(inputs, out, **kw)  # type: ignore[arg-type]
    assert first.processed == 6
    files = _parquet_files(out)
    assert len(files) == 6
    # an interrupted run: the first two images never finished, one left a half-written file
    items = [next(iter_archive([p])) for p in inputs]
    lost = [i.particles_path(out) for i in items[:2]]
    for f in lost:
        f.unlink()
    stale = lost[0].with_name(f".{lost[0].stem}.abc123.tmp.parquet")
    stale.write_bytes(b"PAR1 half")
    kept = {f: f.stat().st_mtime_ns for f in files if f not in lost}

    done_when_pulled: list[int] = []

    def listing() -> Iterator[Path]:
        for p in inputs:  # records how far ahead of the results the listing runs
            done_when_pulled.append(len(_parquet_files(out)))
            yield p

    second = analyze_archive(listing(), out, resume=True, batch_size=1, **kw)  # type: ignore[arg-type]
    assert (second.listed, second.processed, second.skipped, second.failed) == (6, 2, 4, 0)
    assert {f: f.stat().st_mtime_ns for f in kept} == kept  # untouched
    assert _parquet_files(out) == files
    assert not stale.exists()
    # one task in flight at a time: the second input is listed only after the first is done
    assert done_when_pulled == [4, 5, 6, 6, 6, 6]
    assert all(
        outputs_complete(i, out, images=False) for i in iter_archive([str(p) for p in inputs])
    )
    # with images=True those outputs are not complete: a resume would redo them
    assert not outputs_complete(next(iter_archive([str(inputs[0])])), out, images=True)


@pytest.mark.filterwarnings(DASK_PANDAS)
def test_killed_worker_loses_nothing_and_duplicates_nothing(
    archive: tuple[Path, list[Path]], client: distributed.Client, tmp_path: Path
) -> None:
    root, paths = archive
    out = tmp_path / "out"
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["report"] = analyze_archive(
                root,
                out,
                client=client,
                settings=SETTINGS,
                pixel_size_nm=PIXEL_NM,
                images=True,  # pictures make each task long enough to die in
                progress=False,
            )
        except BaseException as exc:  # pragma: no cover - surfaced by the assertion below
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 120
    while not _parquet_files(out) and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.02)
    done_at_kill = len(_parquet_files(out))
    assert t.is_alive(), "the run ended before a worker could be killed"
    os.kill(victim, signal.SIGKILL)
    t.join(timeout=240)
    assert not t.is_alive(), "the run did not finish after a worker was killed"
    assert "error" not in result, result.get("error")
    report = result["report"]
    assert 0 < done_at_kill < 20
    assert (report.processed, report.failed) == (20, 0)  # type: ignore[attr-defined]

    files = _parquet_files(out)
    assert len(files) == 20 and len({f.name for f in files}) == 20
    hidden = [p for p in (out / "particles").rglob(".*")] + [
        p for p in (out / "images").rglob(".*partial*")
    ]
    assert hidden == []
    got = pd.read_parquet(out / "particles")
    expected_counts = _sequential(paths).groupby("source").size()
    assert got.groupby("source").size().sort_index().equals(expected_counts.sort_index())
    assert not got.duplicated(["source", "particle_id"]).any()
    image_dirs = [d for d in (out / "images").glob("*/*") if d.is_dir()]
    assert len(image_dirs) == 20
    assert all((d / "manifest.json").is_file() for d in image_dirs)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


# --------------------------------------------------------------------------------------------
# The command line: an embedded cluster, and a scheduler started outside


def _cli(args: list[str]) -> int:
    from antema_fast.cli import main

    return main(args)


@pytest.fixture
def external_scheduler(tmp_path: Path) -> Iterator[str]:
    """A ``dask scheduler`` and one ``dask worker`` (2 threads) as subprocesses on 127.0.0.1."""
    sched_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--scheduler-file", str(sched_file), *common],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start within 60 s"
            assert procs[0].poll() is None, "dask scheduler exited"
            time.sleep(0.1)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(sched_file),
                 "--nworkers", "1", "--nthreads", "2", "--host", "127.0.0.1", *common],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            )
        )  # fmt: skip
        with distributed.Client(scheduler_file=str(sched_file), timeout=60) as c:
            c.wait_for_workers(1, timeout=60)
            address = c.scheduler.address
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=20)


def test_cli_scheduler_uses_an_existing_cluster(
    archive: tuple[Path, list[Path]], external_scheduler: str, tmp_path: Path
) -> None:
    _, paths = archive
    out = tmp_path / "out"
    assert external_scheduler.startswith("tcp://127.0.0.1:")
    args = ["analyze", *map(str, paths[:4]), "-o", str(out), "--scheduler", external_scheduler]
    args += ["--pixel-size", str(PIXEL_NM), "--backend", "threshold", "--no-images"]
    assert _cli(args) == 0
    assert len(_parquet_files(out)) == 4
    got = pd.read_parquet(out / "particles")
    assert set(got["source"]) <= {str(p.absolute()) for p in paths[:4]}
    assert (out / "summary.csv").is_file() and (out / "failures.csv").is_file()


def test_cli_workers_starts_a_local_cluster(
    archive: tuple[Path, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, paths = archive
    out = tmp_path / "out"
    args = ["analyze", *map(str, paths[:2]), str(tmp_path / "nope.tif"), "-o", str(out)]
    args += ["--workers", "1", "--pixel-size", str(PIXEL_NM), "--backend", "threshold"]
    assert _cli(args) == 2  # a missing input is a usage error, found before any work
    args = ["analyze", *map(str, paths[:2]), "-o", str(out), "--workers", "1"]
    args += ["--pixel-size", str(PIXEL_NM), "--backend", "threshold", "--no-images"]
    assert _cli(args) == 0
    assert len(_parquet_files(out)) == 2
    assert "2/2 files" in capsys.readouterr().err


def test_archive_applies_the_contrast_test_like_analyze(
    client: distributed.Client, tmp_path: Path
) -> None:
    """Settings.min_contrast_z reaches the workers: the dataset equals analyze() frame by frame
    with the same settings, and the noise Otsu takes for particles is gone from it."""
    from antema_fast import analyze
    from test_contrast import DISCS, S, noisy_field

    root = tmp_path / "lowdose" / "run1"
    root.mkdir(parents=True)
    paths = []
    for seed in (6, 7, 8):
        p = root / f"frame{seed}.tif"
        tifffile.imwrite(p, noisy_field(seed=seed, dose=3.0, contrast=0.6)[0])
        paths.append(p)
    settings = Settings(backend="threshold", bootstrap_samples=200, min_contrast_z=3.0)
    out = tmp_path / "out"
    report = analyze_archive(
        tmp_path / "lowdose",
        out,
        client=client,
        settings=settings,
        pixel_size_nm=S,
        images=False,
        formats=(),
        progress=False,
    )
    assert (report.processed, report.failed) == (3, 0)
    got = pd.read_parquet(out / "particles")
    assert len(got) == 3 * len(DISCS)
    removed = 0
    for p in paths:
        res = analyze(p, pixel_size_nm=S, settings=settings)
        removed += res.counts["low_contrast"]
        mine = got[got["source"] == str(p.absolute())]
        np.testing.assert_allclose(
            np.sort(mine["equivalent_diameter_nm"]), np.sort(res.table["equivalent_diameter_nm"])
        )
    assert removed > 0
