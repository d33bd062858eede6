"""Segmentation metrics (SPEC section 5) against hand-counted cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from antema_fast import metrics as M


def test_confusion_and_paper_metrics_by_hand() -> None:
    truth = np.zeros((4, 5), bool)
    truth[0, :4] = True  # 4 particle pixels
    pred = np.zeros((4, 5), bool)
    pred[0, 1:] = True  # TP 3, FP 1 (0,4), FN 1 (0,0)
    c = M.confusion_counts(pred, truth)
    np.testing.assert_array_equal(c, [[15, 1], [1, 3]])
    m = M.metrics_from_confusion(c)
    assert m["global_accuracy"] == pytest.approx(18 / 20)
    assert m["class_accuracy"] == pytest.approx([15 / 16, 3 / 4])
    assert m["iou"] == pytest.approx([15 / 17, 3 / 5])
    assert m["dice"] == pytest.approx([30 / 32, 6 / 8])
    np.testing.assert_allclose(m["confusion"], [[15 / 16, 1 / 16], [1 / 4, 3 / 4]])


def test_empty_classes_score_one() -> None:
    z = np.zeros((3, 3), bool)
    m = M.semantic_metrics(z, z)
    assert m["iou"] == [1.0, 1.0] and m["dice"] == [1.0, 1.0]


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        M.confusion_counts(np.zeros((2, 2)), np.zeros((2, 3)))


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (rr - cy) ** 2 + (cc - cx) ** 2 <= r * r


def test_instance_matching_one_to_one_at_iou_half() -> None:
    shp = (60, 60)
    t1, t2, t3 = _disc(shp, 10, 10, 6), _disc(shp, 40, 40, 8), _disc(shp, 10, 45, 5)
    truth = np.stack([t1, t2, t3])
    p1 = _disc(shp, 10, 11, 6)  # good match of t1
    p2 = _disc(shp, 40, 40, 3)  # IoU 9/64 with t2 → no match
    p3 = _disc(shp, 50, 10, 4)  # false positive
    pred = np.zeros(shp, np.int32)
    pred[p1], pred[p2], pred[p3] = 1, 2, 3
    m = M.instance_metrics(pred, truth, pixel_size_nm=0.5)
    assert (m["tp"], m["fp"], m["fn"]) == (1.0, 2.0, 2.0)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(1 / 3)
    assert m["count_rel_error"] == pytest.approx(0.0)
    dt = np.mean([2 * math.sqrt(x.sum() / math.pi) * 0.5 for x in (t1, t2, t3)])
    dp = np.mean([2 * math.sqrt(x.sum() / math.pi) * 0.5 for x in (p1, p2, p3)])
    assert m["mean_diameter_rel_error"] == pytest.approx(dp / dt - 1)
    matches = M.match_instances(pred, truth)
    assert [(i, j) for i, j, _ in matches] == [(0, 0)]


def test_a_prediction_matches_at_most_one_truth() -> None:
    shp = (30, 30)
    a = _disc(shp, 15, 15, 8)
    truth = np.stack([a, a])  # two identical true instances (complete overlap)
    m = M.instance_metrics(a.astype(np.int32), truth)
    assert (m["tp"], m["fp"], m["fn"]) == (1.0, 0.0, 1.0)


def test_synthetic_instances_are_accepted() -> None:
    from antema_fast.synth import generate

    s = generate(4, (128, 128), "tem")
    m = M.instance_metrics(s.instances, s.instance_stack(), s.pixel_size_nm)
    assert m["f1"] == 1.0 and m["mean_diameter_rel_error"] == pytest.approx(0.0)
    lab = M.connected_components(s.semantic)
    assert int(lab.max()) >= 1


def test_empty_prediction_and_truth() -> None:
    z = np.zeros((8, 8), np.int32)
    m = M.instance_metrics(z, z)
    assert m["precision"] == m["recall"] == m["f1"] == 1.0
    assert math.isnan(m["count_rel_error"])
