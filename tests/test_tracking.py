"""The particle linker: identities through drift, growth and coalescence, compared with trackpy."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from antema_fast.stream import Tracker
from antema_fast.stream._synthetic import synthetic_movie


@dataclass(frozen=True)
class _P:
    row0: int
    col0: int
    bitmap: np.ndarray


def _detections(identities: np.ndarray, s: float) -> tuple[pd.DataFrame, list[_P], np.ndarray]:
    """Exact per-particle masks of one frame of ground-truth identities, in a particle table."""
    rows, parts, ids = [], [], []
    for ident in np.unique(identities):
        if ident == 0:
            continue
        rr, cc = np.nonzero(identities == ident)
        if rr.size < 5:
            continue
        r0, c0 = rr.min(), cc.min()
        bm = np.zeros((rr.max() - r0 + 1, cc.max() - c0 + 1), bool)
        bm[rr - r0, cc - c0] = True
        parts.append(_P(int(r0), int(c0), bm))
        rows.append(
            {
                "centroid_x_nm": cc.mean() * s,
                "centroid_y_nm": rr.mean() * s,
                "equivalent_diameter_nm": 2 * math.sqrt(rr.size / math.pi) * s,
            }
        )
        ids.append(int(ident))
    return pd.DataFrame(rows), parts, np.array(ids)


def purity(tracks: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of detections whose track's majority true identity is their own identity."""
    df = pd.DataFrame({"t": tracks, "g": truth})
    return float(df.groupby("t")["g"].agg(lambda g: g.value_counts().iloc[0]).sum() / len(df))


@pytest.fixture(scope="module")
def movie():
    return synthetic_movie(36, (256, 256), n_merges=2, seed=5, drift_nm=0.6)


def _run(movie, frames=None, tracker=None):
    frames = range(movie.frames.shape[0]) if frames is None else frames
    tracker = tracker or Tracker(max_displacement_nm=4.0, memory=2)
    all_tracks, all_truth, feats = [], [], []
    for t in frames:
        table, parts, ids = _detections(movie.identities[t], movie.pixel_size_nm)
        tids, _ = tracker.update(t, t * movie.frame_interval_s, table, parts)
        all_tracks.append(tids)
        all_truth.append(ids)
        feats.append(table.assign(frame=t, truth=ids))
    tracker.finish()
    return tracker, np.concatenate(all_tracks), np.concatenate(all_truth), pd.concat(feats)


def test_tracks_recover_identities_and_beat_or_match_trackpy(movie) -> None:
    tracker, tracks, truth, feats = _run(movie)
    mine = purity(tracks, truth)
    assert mine >= 0.95

    trackpy = pytest.importorskip("trackpy")
    f = feats.rename(columns={"centroid_x_nm": "x", "centroid_y_nm": "y"})[["x", "y", "frame"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trackpy.quiet()
        linked = trackpy.link(f.reset_index(drop=True), search_range=4.0, memory=2)
    theirs = purity(linked["particle"].to_numpy(), feats["truth"].to_numpy())
    assert mine >= theirs - 0.01, (mine, theirs)
    # a merged particle continues the larger parent's track: fewer tracks than identities+merges
    assert tracker.tracks_table()["track_id"].nunique() <= len(np.unique(truth)) + 1


def test_every_true_merge_is_a_coalescence_event(movie) -> None:
    tracker, tracks, truth, _ = _run(movie)
    ev = tracker.events_table()
    co = ev[ev["event"] == "coalescence"]
    assert len(co) == len(movie.merges)
    # map each track to its majority identity and compare the parents
    major = (
        pd.DataFrame({"t": tracks, "g": truth})
        .groupby("t")["g"]
        .agg(lambda g: g.value_counts().index[0])
    )
    for frame, (a, b), after in movie.merges:
        hit = co[co["frame"] == frame]
        assert len(hit) == 1, (frame, co)
        parents = {int(major[int(p)]) for p in hit.iloc[0]["parents"].split(";")}
        assert parents == {a, b}
        assert int(major[int(hit.iloc[0]["track_id"])]) == after
    fates = tracker.tracks_table().set_index("track_id")["fate"]
    assert sum(str(f).startswith("merged_into:") for f in fates) == len(movie.merges)


def test_reversed_movie_gives_splitting_events(movie) -> None:
    n = movie.frames.shape[0]
    tracker = Tracker(max_displacement_nm=4.0, memory=2)
    for k, t in enumerate(range(n - 1, -1, -1)):
        table, parts, _ = _detections(movie.identities[t], movie.pixel_size_nm)
        tracker.update(k, None, table, parts)
    tracker.finish()
    ev = tracker.events_table()
    sp = ev[ev["event"] == "splitting"]
    assert sorted(n - 1 - (f - 1) for f in sp["frame"]) == sorted(m[0] for m in movie.merges)
    for _, row in sp.iterrows():
        assert len(row["children"].split(";")) == 2


def test_appearance_disappearance_and_memory() -> None:
    def tab(xs):
        return pd.DataFrame(
            {
                "centroid_x_nm": xs,
                "centroid_y_nm": [0.0] * len(xs),
                "equivalent_diameter_nm": [5.0] * len(xs),
            }
        )

    tr = Tracker(max_displacement_nm=3.0, memory=1)
    assert tr.update(0, 0.0, tab([0.0, 50.0]), None)[0].tolist() == [1, 2]
    # particle 2 missed for one frame: kept in memory
    assert tr.update(1, 1.0, tab([1.0]), None)[0].tolist() == [1]
    ids, ev = tr.update(2, 2.0, tab([2.0, 51.0, 100.0]), None)
    assert ids.tolist() == [1, 2, 3]
    assert [(e["event"], e["track_id"]) for e in ev] == [("appearance", 3)]
    tr.update(3, 3.0, tab([3.0]), None)
    ids, ev = tr.update(4, 4.0, tab([4.0]), None)
    assert {(e["event"], e["track_id"], e["frame"]) for e in ev} == {
        ("disappearance", 2, 3),
        ("disappearance", 3, 3),
    }
    tr.finish()
    tt = tr.tracks_table().set_index("track_id")
    assert tt.loc[1, "n_frames"] == 5 and tt.loc[1, "fate"] == "end"
    assert tt.loc[1, "growth_nm_per_s"] == pytest.approx(0.0)
    assert tt.loc[2, "fate"] == "disappeared" and tt.loc[3, "origin"] == "appeared"


def test_size_aware_cost_prefers_the_same_size() -> None:
    tr = Tracker(max_displacement_nm=10.0, memory=0, predict=False)
    t0 = pd.DataFrame(
        {
            "centroid_x_nm": [0.0, 8.0],
            "centroid_y_nm": [0.0, 0.0],
            "equivalent_diameter_nm": [4.0, 12.0],
        }
    )
    tr.update(0, None, t0, None)
    # the small one moved right, the big one left: nearest neighbour alone would swap them
    t1 = pd.DataFrame(
        {
            "centroid_x_nm": [5.0, 3.0],
            "centroid_y_nm": [0.0, 0.0],
            "equivalent_diameter_nm": [4.0, 12.0],
        }
    )
    assert tr.update(1, None, t1, None)[0].tolist() == [1, 2]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="max_displacement_nm"):
        Tracker(max_displacement_nm=-1.0)
    with pytest.raises(ValueError, match="memory"):
        Tracker(memory=-1)
    tr = Tracker(max_displacement_nm=1.0)
    empty = pd.DataFrame({"centroid_x_nm": [], "centroid_y_nm": [], "equivalent_diameter_nm": []})
    tr.update(3, None, empty, [])
    with pytest.raises(ValueError, match="frame"):
        tr.update(3, None, empty, [])


def test_dense_drifting_field_beats_trackpy_default_linking() -> None:
    """Dense particles under a common drift (stage drift, flow in a liquid cell).

    Prediction at constant velocity keeps the identities; trackpy's default linking (no
    prediction) with the same search range swaps neighbours.
    """
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2) * 10.0
    pos = grid + rng.uniform(-2, 2, grid.shape)
    vel = np.array([3.0, 1.0]) + rng.normal(0, 0.8, grid.shape)
    diam = rng.uniform(3, 7, len(grid))
    rows = []
    for t in range(30):
        p = pos + vel * t + rng.normal(0, 0.4, grid.shape)
        for k in np.flatnonzero(rng.random(len(grid)) > 0.03):  # 3 % missed detections
            rows.append((t, k + 1, p[k, 0], p[k, 1], diam[k] * (1 + 0.01 * t)))
    df = pd.DataFrame(rows, columns=["frame", "truth", "x", "y", "d"])
    tracker = Tracker(max_displacement_nm=6.0, memory=2)
    ids = []
    for t, g in df.groupby("frame"):
        tab = g.rename(
            columns={"x": "centroid_x_nm", "y": "centroid_y_nm", "d": "equivalent_diameter_nm"}
        )
        ids.append(tracker.update(int(t), None, tab, None)[0])
    mine = purity(np.concatenate(ids), df["truth"].to_numpy())
    trackpy = pytest.importorskip("trackpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trackpy.quiet()
        linked = trackpy.link(df[["x", "y", "frame"]], search_range=6.0, memory=2)
    theirs = purity(linked["particle"].to_numpy(), df["truth"].to_numpy())
    assert mine >= 0.95
    assert mine >= theirs + 0.05, (mine, theirs)
