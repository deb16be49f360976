"""trainer.retrieval_metrics on tiny hand-made cases whose answers are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.retrieval_metrics import average_precision_at_r, per_query_metrics, retrieval_metrics


def _unit(degrees: list[float]) -> np.ndarray:
    rad = np.deg2rad(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)  # N 2, unit length


# Five items on the unit circle; cosine similarity falls with the angle between them.
#   item  angle  dataset label modality   key
#   0     0      d1      a     x          d1/a
#   1     12     d1      a     x          d1/a
#   2     20     d1      b     x          d1/b   (R = 0: no other d1/b)
#   3     90     d1      a     y          d1/a
#   4     80     d2      a     y          d2/a   (R = 0: "a" of another dataset is a different label)
ANGLES = [0.0, 12.0, 20.0, 90.0, 80.0]
DATASETS = ["d1", "d1", "d1", "d1", "d2"]
LABELS = ["a", "a", "b", "a", "a"]
MODALITIES = ["x", "x", "x", "y", "y"]
# Rankings (angle differences): q0: 1(12) 2(20) 4(80) 3(90)   q1: 2(8) 0(12) 4(68) 3(78)
#                               q2: 1(8) 0(20) 4(60) 3(70)    q3: 4(10) 2(70) 1(78) 0(90)   q4: 3 2 1 0
# Relevance (R = 2 for q0, q1, q3): q0 [1 0 0 1]  q1 [0 1 0 1]  q3 [0 0 1 1]
# P@1: q0 1, q1 0, q3 0            -> overall 1/3, modality x (q0, q1) 1/2, y (q3) 0
# P@5: 2 relevant in the top 5 (k = 5 even with 4 items) -> 0.4 for each
# mAP@R (top R = 2): q0 (1*1)/2 = 0.5, q1 (1*1/2)/2 = 0.25, q3 0 -> overall 0.25, x 0.375, y 0
# same_modality@5 (top 4): q0 x x y y 1/2, q1 1/2, q2 1/2, q3 y x x x 1/4, q4 1/4 -> overall 2/5
# Other-modality gallery top-1: q0, q1, q2 -> item 4 (y); q3, q4 -> item 2 (x)
# modality_gap: q0 cos12 - cos80, q1 cos8 - cos68, q2 cos8 - cos60 (x); q3 cos10 - cos70, q4 cos10 - cos60 (y)


def test_hand_made_case() -> None:
    result = retrieval_metrics(_unit(ANGLES), LABELS, MODALITIES, DATASETS)
    overall = result["overall"]
    assert overall["n_queries"] == 5 and overall["n_scored"] == 3
    assert overall["P@1"] == pytest.approx(1 / 3)
    assert overall["P@5"] == pytest.approx(0.4) and overall["P@10"] == pytest.approx(0.2)
    assert overall["mAP@R"] == pytest.approx(0.25)
    assert overall["same_modality@1"] == pytest.approx(1.0)
    assert overall["same_modality@5"] == pytest.approx(0.4)

    x, y = result["per_modality"]["x"], result["per_modality"]["y"]
    assert (x["P@1"], x["mAP@R"], x["n_queries"], x["n_scored"]) == pytest.approx((0.5, 0.375, 3, 2))
    assert (y["P@1"], y["mAP@R"], y["n_queries"], y["n_scored"]) == pytest.approx((0.0, 0.0, 2, 1))
    assert y["same_modality@5"] == pytest.approx(0.25)

    d1, d2 = result["per_dataset"]["d1"], result["per_dataset"]["d2"]
    assert d1["P@1"] == pytest.approx(1 / 3) and d1["n_scored"] == 3
    assert d2["n_scored"] == 0 and math.isnan(d2["P@1"]) and d2["same_modality@1"] == 1.0

    assert result["modality_confusion"] == {"x": {"x": 1.0, "y": 0.0}, "y": {"x": 0.0, "y": 1.0}}
    other = result["other_modality"]
    assert other["confusion"] == {"x": {"x": 0.0, "y": 1.0}, "y": {"x": 1.0, "y": 0.0}}
    c = lambda deg: math.cos(math.radians(deg))  # noqa: E731
    gap_x = ((c(12) - c(80)) + (c(8) - c(68)) + (c(8) - c(60))) / 3
    gap_y = ((c(10) - c(70)) + (c(10) - c(60))) / 2
    assert other["modality_gap"]["x"] == pytest.approx(gap_x, abs=1e-5)
    assert other["modality_gap"]["y"] == pytest.approx(gap_y, abs=1e-5)


def test_per_query_values_and_ranks() -> None:
    per_query = per_query_metrics(_unit(ANGLES), [f"{d}/{lab}" for d, lab in zip(DATASETS, LABELS)], MODALITIES)
    assert per_query["R"].tolist() == [2, 2, 0, 2, 0]
    assert per_query["P@1"][[0, 1, 3]].tolist() == [1.0, 0.0, 0.0] and np.isnan(per_query["P@1"][[2, 4]]).all()
    assert per_query["mAP@R"][[0, 1, 3]] == pytest.approx([0.5, 0.25, 0.0])
    assert per_query["other_top1_modality"].tolist() == [1, 1, 1, 0, 0]  # index into ["x", "y"]


def test_average_precision_at_r_by_hand() -> None:
    # R = 3, top 3 relevance [1 0 1]: (1 * 1/1 + 1 * 2/3) / 3 = 5/9; later hits do not count.
    assert average_precision_at_r(np.array([1, 0, 1, 1, 0], dtype=bool), 3) == pytest.approx(5 / 9)
    assert average_precision_at_r(np.array([1, 1, 0], dtype=bool), 2) == 1.0
    assert math.isnan(average_precision_at_r(np.array([0, 0], dtype=bool), 0))


def test_perfect_embedder_scores_one() -> None:
    keys = ["d/a", "d/b", "d/a", "e/a", "d/b", "e/a", "d/a"]
    one_hot = np.eye(3, dtype=np.float32)[[0, 1, 0, 2, 1, 2, 0]]  # same label -> same vector
    result = retrieval_metrics(one_hot, [k.split("/")[1] for k in keys], ["m"] * 7, [k.split("/")[0] for k in keys])
    assert result["overall"]["P@1"] == 1.0 and result["overall"]["mAP@R"] == 1.0
    # P@5 = R/5 here (R = 2 for d/a, 1 for the others): (3 * 2/5 + 4 * 1/5) / 7 = 2/7
    assert result["overall"]["P@5"] == pytest.approx(2 / 7)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two"):
        retrieval_metrics(_unit([0.0]), ["a"], ["x"], ["d"])
    with pytest.raises(ValueError, match="differ in length"):
        per_query_metrics(_unit([0.0, 1.0]), ["a"], ["x", "x"])
