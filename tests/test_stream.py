"""Streams: per-frame results equal analyze(), tracking on a movie, live folders, interruptions."""

from __future__ import annotations

import math
import threading
import time
import warnings
from pathlib import Path

import antema_fast as af
import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from antema_fast import Settings
from antema_fast.cli import main as cli_main
from antema_fast.stream import StreamWriter, natural_key, run, stream
from antema_fast.stream._synthetic import synthetic_movie

SETTINGS = Settings(backend="threshold")
STREAM_COLUMNS = ["frame", "time_s", "track_id"]


@pytest.fixture(scope="module")
def movie():
    return synthetic_movie(24, (256, 256), n_merges=2, seed=11, drift_nm=0.5)


@pytest.fixture(scope="module")
def tiff(movie, tmp_path_factory) -> Path:
    return movie.save_tiff(tmp_path_factory.mktemp("movie") / "movie.tif")


@pytest.fixture(scope="module")
def segmenter():
    return af.Segmenter(SETTINGS)


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("antema-stream")]


def _same_table(stream_table: pd.DataFrame, analyze_table: pd.DataFrame) -> None:
    got = stream_table.drop(columns=[c for c in STREAM_COLUMNS if c in stream_table])
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), analyze_table.reset_index(drop=True), check_exact=True
    )


def _identity(movie, frame: int, particle) -> int:
    """The true identity under most of a detected particle's pixels."""
    h, w = particle.bitmap.shape
    ids = movie.identities[frame][
        particle.row0 : particle.row0 + h, particle.col0 : particle.col0 + w
    ]
    vals = ids[particle.bitmap & (ids > 0)]
    return int(np.bincount(vals).argmax()) if vals.size else 0


# ---------------------------------------------------------------------------------------------


def test_tiff_stack_frames_equal_analyze(movie, tiff, segmenter) -> None:
    results = list(stream(tiff, settings=SETTINGS, segmenter=segmenter))
    assert [fr.index for fr in results] == list(range(movie.frames.shape[0]))
    for fr in results[::5]:
        mg = af.read(tiff, frame=fr.index)
        assert mg.pixel_size_nm == pytest.approx(movie.pixel_size_nm)
        ref = af.analyze(mg, settings=SETTINGS, segmenter=segmenter)
        _same_table(fr.table, ref.table)
        assert fr.series["count"] == len(ref.table)
        d = ref.table["equivalent_diameter_nm"]
        assert fr.series["mean_diameter_nm"] == pytest.approx(d.mean())
        assert fr.series["median_diameter_nm"] == pytest.approx(d.median())
        assert fr.series["sd_diameter_nm"] == pytest.approx(d.std(ddof=1))
        assert fr.series["coverage"] == pytest.approx(ref.mask.mean())
    # the frame interval stored in the file gives the times
    assert results[3].time_s == pytest.approx(3 * movie.frame_interval_s)
    # the segmentation found the particles the movie has (none cut by the border at frame 0)
    assert results[0].series["count"] == len(movie.truth[0])


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_frames_equal_analyze_of_decoded_frames(movie, tmp_path, segmenter, suffix) -> None:
    path = movie.save_video(tmp_path / f"movie{suffix}", fps=4.0)
    cap = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    cap.release()
    results = list(stream(path, settings=SETTINGS, segmenter=segmenter, pixel_size_nm=0.5, every=4))
    assert [fr.index for fr in results] == list(range(0, len(decoded), 4))
    assert len(decoded) == movie.frames.shape[0]
    for fr in results:
        assert fr.time_s == pytest.approx(fr.index / 4.0)
        ref = af.analyze(
            decoded[fr.index], pixel_size_nm=0.5, settings=SETTINGS, segmenter=segmenter
        )
        _same_table(fr.table, ref.table.assign(image=fr.result.name))
    with pytest.raises(ValueError, match="pixel_size_nm"):
        stream(path, settings=SETTINGS, segmenter=segmenter)


def test_tracking_recovers_identities_and_merges(movie, tiff, segmenter) -> None:
    s = stream(tiff, settings=SETTINGS, segmenter=segmenter, track=True)
    tracks, truth, events = [], [], []
    for fr in s:
        assert fr.table["track_id"].min() >= 1
        tracks += fr.table["track_id"].tolist()
        truth += [_identity(movie, fr.index, p) for p in fr.result.particles]
        events += fr.events
    df = pd.DataFrame({"t": tracks, "g": truth})
    purity = df.groupby("t")["g"].agg(lambda g: g.value_counts().iloc[0]).sum() / len(df)
    assert purity >= 0.95
    major = df.groupby("t")["g"].agg(lambda g: g.value_counts().index[0])
    co = [e for e in s.tracker.events if e["event"] == "coalescence"]
    for frame, (a, b), _after in movie.merges:
        found = [
            e
            for e in co
            if frame - 3 <= e["frame"] <= frame
            and {int(major[int(p)]) for p in e["parents"].split(";")} == {a, b}
        ]
        assert found, (frame, a, b, co)
    assert {e["event"] for e in events} <= {
        "appearance",
        "disappearance",
        "coalescence",
        "splitting",
    }


def test_folder_in_natural_order_every_and_iterable(movie, tmp_path, segmenter) -> None:
    u8 = movie.frames_u8()
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), u8[i])
    names = [
        fr.name
        for fr in stream(
            tmp_path, settings=SETTINGS, segmenter=segmenter, pixel_size_nm=0.5, every=5
        )
    ]
    assert names == ["img0.png", "img5.png", "img10.png"]
    assert sorted(["a10", "a9", "a100"], key=natural_key) == ["a9", "a10", "a100"]
    # an iterable of arrays gives the same as the folder of the same frames
    counts = [
        fr.series["count"]
        for fr in stream(iter(u8[:12:5]), settings=SETTINGS, segmenter=segmenter, pixel_size_nm=0.5)
    ]
    folder = [
        fr.series["count"]
        for fr in stream(
            tmp_path, settings=SETTINGS, segmenter=segmenter, pixel_size_nm=0.5, every=5
        )
    ]
    assert counts == folder


def test_live_folder_each_frame_once_in_order(movie, tmp_path, segmenter) -> None:
    u8 = movie.frames_u8()
    n = 10
    blobs = [cv2.imencode(".png", u8[i])[1].tobytes() for i in range(n)]
    live = tmp_path / "live"
    live.mkdir()

    def acquire() -> None:
        for i in range(n):
            if i == 4:  # half-written: completed after frames 5 and 6 appear
                (live / "frame4.png").write_bytes(blobs[4][: len(blobs[4]) // 2])
                continue
            (live / f"frame{i}.png").write_bytes(blobs[i])
            if i == 6:
                time.sleep(0.6)
                with (live / "frame4.png").open("ab") as fh:
                    fh.write(blobs[4][len(blobs[4]) // 2 :])
            time.sleep(0.1)

    writer = threading.Thread(target=acquire)
    writer.start()
    try:
        results = list(
            stream(
                live,
                settings=SETTINGS,
                segmenter=segmenter,
                pixel_size_nm=0.5,
                live=True,
                poll_s=0.05,
                quiet_timeout_s=3.0,
            )
        )
    finally:
        writer.join()
    assert [fr.name for fr in results] == [f"frame{i}.png" for i in range(n)]
    assert [fr.index for fr in results] == list(range(n))
    assert all(fr.skipped == 0 for fr in results)
    # frame 4 was analysed whole: it equals the analysis of the complete image
    ref = af.analyze(u8[4], pixel_size_nm=0.5, settings=SETTINGS, segmenter=segmenter)
    assert results[4].series["count"] == len(ref.table)
    assert not _stream_threads()


class _Slow:
    """A segmenter that takes its time (or fails on one frame)."""

    def __init__(self, inner, delay: float = 0.0, fail_at: int | None = None) -> None:
        self.inner, self.delay, self.fail_at, self.calls = inner, delay, fail_at, 0

    def segment(self, image, pixel_size_nm=None):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at + 1:
            raise RuntimeError(f"segmentation failed on call {self.calls}")
        time.sleep(self.delay)
        return self.inner.segment(image, pixel_size_nm=pixel_size_nm)


def test_live_policy_latest_counts_every_skipped_frame(movie, tmp_path, segmenter) -> None:
    u8 = movie.frames_u8()

    def acquire() -> None:  # a camera writing a frame every 50 ms
        for i in range(12):
            cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), u8[i])
            time.sleep(0.05)

    camera = threading.Thread(target=acquire)
    camera.start()
    s = stream(
        tmp_path,
        settings=SETTINGS,
        segmenter=_Slow(segmenter, 0.3),
        pixel_size_nm=0.5,
        live=True,
        policy="latest",
        poll_s=0.02,
        quiet_timeout_s=0.8,
    )
    done = [fr.index for fr in s]
    camera.join()
    skipped = sorted(k.index for k in s.skipped_frames)
    assert done == sorted(done) and done[-1] == 11
    assert skipped, "a slow pipeline with policy latest must skip frames"
    assert sorted(done + skipped) == list(range(12))
    # run() lists them in skipped.csv and counts them in the time series
    info = run(
        tmp_path,
        tmp_path / "out",
        settings=SETTINGS,
        segmenter=_Slow(segmenter, 0.3),
        pixel_size_nm=0.5,
        live=True,
        policy="latest",
        poll_s=0.02,
        quiet_timeout_s=0.8,
        plots=False,
    )
    sk = pd.read_csv(tmp_path / "out" / "skipped.csv")
    ts = pd.read_csv(tmp_path / "out" / "timeseries.csv")
    assert info["frames_skipped"] == len(sk) > 0
    assert sorted(sk["frame"].tolist() + ts["frame"].tolist()) == list(range(12))
    assert set(sk["reason"]) == {"policy latest: a newer frame was ready"}
    assert ts["skipped_so_far"].is_monotonic_increasing
    with pytest.raises(ValueError, match="live"):
        stream(tmp_path, settings=SETTINGS, segmenter=segmenter, policy="latest")


def test_live_backlog_is_released_in_one_settling_period(tmp_path) -> None:
    """Files already in the folder (a backlog) settle together, not one per poll."""
    from antema_fast.stream._sources import LiveFolder

    img = np.full((32, 32), 128, np.uint8)
    for i in range(60):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), img)
    watcher = LiveFolder(tmp_path, 1.0, poll_s=0.1, settle_s=0.2, quiet_timeout_s=0.5)
    t0 = time.monotonic()
    names = []
    for ref in watcher:
        names.append(ref.name)
        if len(names) == 60:
            elapsed = time.monotonic() - t0
            watcher.stop()
    assert names == [f"f{i}.png" for i in range(60)]
    assert elapsed < 3.0  # one file per poll would take 60 x 0.2 s


def test_errors_propagate_and_threads_stop(movie, segmenter) -> None:
    frames = list(movie.frames[:8])
    with pytest.raises(RuntimeError, match="call 4"):
        for _ in stream(
            frames, settings=SETTINGS, segmenter=_Slow(segmenter, fail_at=3), pixel_size_nm=0.5
        ):
            pass
    assert not _stream_threads()
    # leaving early stops the threads too
    with stream(frames, settings=SETTINGS, segmenter=segmenter, pixel_size_nm=0.5) as s:
        first = next(s)
    assert first.index == 0
    deadline = time.monotonic() + 5
    while _stream_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _stream_threads()
    # a stream dropped without close() is collected and its threads stop
    import gc

    s = stream(frames * 20, settings=SETTINGS, segmenter=segmenter, pixel_size_nm=0.5)
    assert next(s).index == 0
    del s
    gc.collect()
    deadline = time.monotonic() + 5
    while _stream_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _stream_threads()
    with pytest.raises(ValueError, match="every"):
        stream(frames, settings=SETTINGS, segmenter=segmenter, every=0)


def test_interrupted_run_leaves_complete_readable_outputs(movie, tiff, tmp_path, segmenter) -> None:
    out = tmp_path / "out"

    def interrupt(fr) -> None:
        if fr.index == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(
            tiff,
            out,
            settings=SETTINGS,
            segmenter=segmenter,
            track=True,
            progress=interrupt,
            row_group_frames=4,
        )
    csv = pd.read_csv(out / "particles.csv")
    par = pq.read_table(out / "particles.parquet").to_pandas()
    assert sorted(csv["frame"].unique()) == list(range(7))
    assert len(par) == len(csv)
    np.testing.assert_allclose(par["equivalent_diameter_nm"], csv["equivalent_diameter_nm"])
    ts = pd.read_csv(out / "timeseries.csv")
    assert ts["frame"].tolist() == list(range(7))
    assert pq.read_table(out / "timeseries.parquet").num_rows == 7
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["interrupted"] is True and manifest["frames_analysed"] == 7
    assert not list(out.glob("*.partial"))
    tracks = pd.read_csv(out / "tracks.csv")
    assert set(tracks["track_id"]) == set(csv["track_id"])


def test_crash_mid_write_keeps_the_csv_record(movie, tmp_path, segmenter) -> None:
    """A writer that is never closed (process killed) still has every flushed frame in CSV."""
    w = StreamWriter(tmp_path / "w", row_group_frames=100)
    for fr in stream(
        list(movie.frames[:5]), settings=SETTINGS, segmenter=segmenter, pixel_size_nm=0.5
    ):
        w.write(fr)
    csv = pd.read_csv(tmp_path / "w" / "particles.csv")
    assert sorted(csv["frame"].unique()) == list(range(5))
    assert len(pd.read_csv(tmp_path / "w" / "timeseries.csv")) == 5
    assert not (tmp_path / "w" / "particles.parquet").exists()
    w.close()
    assert pq.read_table(tmp_path / "w" / "particles.parquet").num_rows == len(csv)


def test_cli_on_a_synthetic_stack_with_tracking(tiff, tmp_path) -> None:
    out = tmp_path / "cli"
    rc = cli_main(
        [
            "stream",
            str(tiff),
            "-o",
            str(out),
            "--track",
            "--backend",
            "threshold",
            "--movie",
            "--quiet",
            "--max-displacement",
            "4",
        ]
    )
    assert rc == 0
    for name in (
        "particles.csv",
        "particles.parquet",
        "timeseries.parquet",
        "tracks.csv",
        "events.csv",
        "growth_curves.parquet",
        "timeseries.png",
        "size_vs_time.png",
        "tracks.png",
        "overlay.mp4",
        "manifest.json",
    ):
        assert (out / name).is_file(), name
    ev = pd.read_csv(out / "events.csv")
    assert (ev["event"] == "coalescence").sum() >= 2
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 24
    cap.release()
    assert cli_main(["stream", str(tiff), "-o", str(out), "--every", "0", "--quiet"]) == 2


def test_real_liquid_cell_movie_end_to_end(shared_data, tmp_path) -> None:
    folder = shared_data / "streams" / "samem_lptem"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    out = tmp_path / "lptem"
    info = run(
        folder,
        out,
        settings=SETTINGS,
        pixel_size_nm=1.0,
        frame_interval_s=0.1,
        track=True,
        plots=True,
    )
    assert info["frames_analysed"] == 30 and info["frames_skipped"] == 0
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert ts["frame"].tolist() == list(range(30))
    assert ts["time_s"].iloc[-1] == pytest.approx(2.9)
    assert (ts["count"] > 0).all() and np.isfinite(ts["mean_diameter_nm"]).all()
    assert (out / "size_vs_time.png").is_file()
    tracks = pd.read_parquet(out / "tracks.parquet")
    assert tracks["n_frames"].max() > 1
    assert math.isclose(ts["coverage"].between(0, 1).mean(), 1.0)
    # each frame's quality checks, as analyze() computes them for the same image
    with warnings.catch_warnings():  # the thresholded noisy frame warns; not tested here
        warnings.simplefilter("ignore")
        frame0 = sorted(folder.glob("*.jpeg"))[0]
        first = af.analyze(frame0, pixel_size_nm=1.0, settings=SETTINGS)
    q = first.provenance["quality"]
    assert ts["measured_fraction"].iloc[0] == pytest.approx(q["measured_fraction"])
    assert ts["under_resolved"].iloc[0] == q["under_resolved"]
    assert ts["measured_fraction"].between(0, 1).all() and (ts["under_resolved"] >= 0).all()


def test_ctrl_c_on_a_live_cli_run_flushes_everything(movie, tmp_path) -> None:
    """SIGINT to ``antema stream --live``: exit 130, every file complete for the frames done."""
    import json
    import signal
    import subprocess
    import sys

    live = tmp_path / "live"
    live.mkdir()
    out = tmp_path / "out"
    u8 = movie.frames_u8()
    for i in range(3):
        cv2.imwrite(str(live / f"f{i}.png"), u8[i])
    log = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "antema_fast.cli",
            "stream",
            str(live),
            "-o",
            str(out),
            "--live",
            "--pixel-size",
            "0.5",
            "--backend",
            "threshold",
            "--track",
            "--quiet",
            "--quiet-timeout",
            "60",
        ],
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ts = out / "timeseries.csv"
            if ts.exists() and len(ts.read_text().splitlines()) == 4:
                break
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.1)
        else:
            pytest.fail("the live run did not analyse the first 3 frames within 60 s")
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert rc == 130, (tmp_path / "stderr.txt").read_text()
    assert pq.read_table(out / "timeseries.parquet").num_rows == 3
    csv = pd.read_csv(out / "particles.csv")
    assert pq.read_table(out / "particles.parquet").num_rows == len(csv)
    assert json.loads((out / "manifest.json").read_text())["interrupted"] is True
    assert (out / "tracks.csv").is_file() and not list(out.glob("*.partial"))


def test_public_names() -> None:
    import antema_fast.stream as mod

    assert callable(af.stream) and callable(mod)
    assert af.FrameResult is mod.FrameResult
    frames = np.full((2, 64, 64), 200, np.uint8)
    frames[:, 20:40, 20:40] = 30
    got = [fr.series["count"] for fr in mod(frames, settings=SETTINGS, pixel_size_nm=1.0)]
    assert got == [1, 1]


@pytest.mark.parametrize(
    ("name", "frames"),
    [("ncempy/dmTest_3D_int16_64,65,66.dm4", 66), ("ncempy/temp.mrc", 3)],
)
def test_real_microscope_stacks(shared_data, name, frames) -> None:
    """DM4 and MRC stacks stream frame by frame with the pixel size of the file."""
    path = shared_data / "formats" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the readers' notes about these test files
        first = af.read(path, frame=frames - 1)
        results = list(stream(path, settings=SETTINGS, every=1))
    assert [fr.index for fr in results] == list(range(frames))
    last = results[-1].result.micrograph
    assert last.pixel_size_nm == pytest.approx(first.pixel_size_nm)
    np.testing.assert_array_equal(last.data, first.data)


def test_a_movie_without_particles_still_gives_every_table(tmp_path) -> None:
    frames = np.full((4, 64, 64), 100, np.uint8)
    info = run(list(frames), tmp_path, settings=SETTINGS, pixel_size_nm=1.0, track=True)
    assert info["frames_analysed"] == 4 and info["particles"] == 0
    csv = pd.read_csv(tmp_path / "particles.csv")
    par = pd.read_parquet(tmp_path / "particles.parquet")
    assert len(csv) == len(par) == 0
    assert {"frame", "time_s", "track_id", "equivalent_diameter_nm"} <= set(csv.columns)
    assert list(par.columns) == list(csv.columns)
    ts = pd.read_parquet(tmp_path / "timeseries.parquet")
    assert ts["count"].tolist() == [0, 0, 0, 0] and ts["mean_diameter_nm"].isna().all()
    assert len(pd.read_csv(tmp_path / "tracks.csv")) == 0


def test_stream_frames_with_wide_particles_are_merged_as_analyze_does() -> None:
    """The scale check and its merge (``auto_scale``) run on every frame, so a frame of a
    stream still gives exactly what ``analyze`` gives for the same image."""
    pytest.importorskip("onnxruntime")
    from antema_fast.synth import Population, generate

    pop = Population(median_diameter_nm=6.0, sigma_log=0.1, coverage=0.3, overlap_fraction=0.0)
    big = generate(
        np.random.default_rng([2026, 6, 0]), (768, 768), "tem", pixel_size_nm=0.02, population=pop
    )
    settings = Settings(threads=2)
    seg = af.Segmenter(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (fr,) = list(
            stream(iter([big.image]), settings=settings, segmenter=seg, pixel_size_nm=0.02)
        )
        ref = af.analyze(big.image, pixel_size_nm=0.02, settings=settings, segmenter=seg)
    assert fr.segmentation.extra["scale_check"]["merged_scale"]["regions"] >= 1
    assert "scale_merge" in fr.timings
    assert np.array_equal(fr.segmentation.mask, ref.mask)
    _same_table(fr.table.drop(columns="image"), ref.table.drop(columns="image"))
    # warn-only settings: the frame stays as segmented at full scale, and no warning per frame
    plain = Settings(threads=2, auto_scale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (fr0,) = list(stream(iter([big.image]), settings=plain, pixel_size_nm=0.02))
    assert "scale_check" not in fr0.segmentation.extra
    assert fr0.segmentation.mask.sum() < 0.2 * fr.segmentation.mask.sum()
