"""Metrics of docs/metrics.md; every expected value below was computed by hand (working shown)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmml_core.metrics import (
    METRIC_KEYS,
    PERCENT_KEYS,
    format_metrics,
    regression_metrics,
    to_table_units,
    weighted_f1,
)


def test_exact_key_sets() -> None:
    mosi = regression_metrics([0.5, -1.0], [1.0, -2.0], "mosi")
    assert list(mosi) == [
        "Has0_Acc2",
        "Has0_F1",
        "Non0_Acc2",
        "Non0_F1",
        "Acc5",
        "Acc7",
        "MAE",
        "Corr",
    ]
    assert list(regression_metrics([0.5, -1.0], [1.0, -2.0], "mosei")) == list(mosi)
    sims = regression_metrics([0.5, -1.0], [1.0, -0.2], "sims")
    assert list(sims) == ["Acc2", "Acc3", "Acc5", "F1", "MAE", "Corr"]
    assert tuple(sims) == METRIC_KEYS["sims"] and tuple(mosi) == METRIC_KEYS["mosi"]
    assert "MAE" not in PERCENT_KEYS and "Corr" not in PERCENT_KEYS
    assert {"Acc2", "F1", "Has0_F1", "Acc7"} <= PERCENT_KEYS


def test_mosi_half_to_even_rounding_and_clipping() -> None:
    pred = [2.5, -1.5, 0.5, -0.5, 3.7, -3.6, 2.4]
    label = [2.0, -2.0, 0.0, 0.0, 3.0, -3.0, 3.0]
    m = regression_metrics(pred, label, "mosi")
    # round(clip(p, -3, 3)) half to even: 2, -2, 0, -0, 3, -3, 2 vs labels 2, -2, 0, 0, 3, -3, 3:
    # six of seven agree (half-away-from-zero would give 3, -2, 1, -1 and only 3/7).
    assert m["Acc7"] == pytest.approx(6 / 7)
    # clip to [-2, 2] first: 2.4 -> 2 and label 3 -> 2 now agree: 7/7.
    assert m["Acc5"] == 1.0
    # Has0: p >= 0 -> T F T F T F T; y >= 0 -> T F T T T F T: index 3 (-0.5 vs 0) differs.
    assert m["Has0_Acc2"] == pytest.approx(6 / 7)
    # F1(T) = 2*4/(5+4) = 8/9, F1(F) = 2*2/(2+3) = 4/5, weighted (5*8/9 + 2*4/5)/7 = 272/315.
    assert m["Has0_F1"] == pytest.approx(272 / 315)
    # Non0 drops indices 2 and 3 (labels 0); the rest all agree in sign.
    assert m["Non0_Acc2"] == 1.0 and m["Non0_F1"] == 1.0
    # MAE on unclipped values: (0.5 + 0.5 + 0.5 + 0.5 + 0.7 + 0.6 + 0.6) / 7 = 3.9 / 7.
    assert m["MAE"] == pytest.approx(3.9 / 7, rel=1e-6)


def test_mosi_mae_is_unclipped() -> None:
    m = regression_metrics([4.0, -3.0], [3.0, -3.0], "mosi")
    assert m["MAE"] == pytest.approx(0.5)  # |4 - 3| / 2, not |clip(4) - 3| / 2 = 0
    assert m["Acc7"] == 1.0  # but Acc7 clips: round(clip(4)) = 3


def test_mosi_zero_label_and_zero_prediction() -> None:
    pred = [-0.2, 0.3, -1.0, 0.0]
    label = [0.0, 0.0, -1.0, 1.0]
    m = regression_metrics(pred, label, "mosi")
    # Has0: p >= 0 -> F T F T, y >= 0 -> T T F T: 3/4.
    assert m["Has0_Acc2"] == pytest.approx(3 / 4)
    # F1(T) = 2*2/(3+2) = 4/5, F1(F) = 2*1/(1+2) = 2/3, weighted (3*4/5 + 1*2/3)/4 = 23/30.
    assert m["Has0_F1"] == pytest.approx(23 / 30)
    # Non0 keeps indices 2, 3; p > 0 -> F F (a zero prediction is negative here), y > 0 -> F T.
    assert m["Non0_Acc2"] == pytest.approx(1 / 2)
    # F1(F) = 2*1/(1+2) = 2/3 with support 1, F1(T) = 0 with support 1: (2/3)/2 = 1/3.
    assert m["Non0_F1"] == pytest.approx(1 / 3)


def test_mosi_all_labels_zero_gives_nan_non0() -> None:
    m = regression_metrics([0.3, -0.3], [0.0, 0.0], "mosi")
    assert math.isnan(m["Non0_Acc2"]) and math.isnan(m["Non0_F1"])
    assert m["Has0_Acc2"] == pytest.approx(1 / 2)


def test_pearson_correlation_hand_value() -> None:
    # centred p = (-1.5, -0.5, 0.5, 1.5), y = (-1.5, 0.5, -0.5, 1.5): 4 / sqrt(5 * 5) = 0.8.
    assert regression_metrics([1, 2, 3, 4], [1, 3, 2, 4], "mosi")["Corr"] == pytest.approx(0.8)
    assert regression_metrics([1, 2, 3], [3, 2, 1], "mosei")["Corr"] == pytest.approx(-1.0)


def test_constant_predictions_give_nan_corr_not_a_crash() -> None:
    m = regression_metrics([0.5, 0.5, 0.5, 0.5], [-1.0, 0.5, 1.0, 2.0], "mosi")
    assert math.isnan(m["Corr"])
    # Has0: all predicted positive; labels F T T T -> 3/4; F1(T) = 2*3/(3+4) = 6/7, F1(F) = 0:
    # weighted 3*(6/7)/4 = 9/14.
    assert m["Has0_Acc2"] == pytest.approx(3 / 4)
    assert m["Has0_F1"] == pytest.approx(9 / 14)
    s = regression_metrics([0.2, 0.2, 0.2], [-0.5, 0.0, 0.5], "sims")
    assert math.isnan(s["Corr"])
    assert "Corr nan" in format_metrics(s)


def test_sims_float32_class_edges_and_zero_negative() -> None:
    pred = [-0.7, 0.1, -0.1, 0.7, 0.0]
    label = [-0.9, 0.05, -0.5, 0.5, -0.5]
    m = regression_metrics(pred, label, "sims")
    # 5 classes (-1.01,-.7] (-.7,-.1] (-.1,.1] (.1,.7] (.7,1.01], compared in float32:
    # pred -> 0 2 1 3 2, label -> 0 2 1 3 1: 4/5. With float64 edges float32(-0.7) and
    # float32(0.1) would move up a class (pred 1 3 1 3 2) and only 2/5 would agree.
    assert m["Acc5"] == pytest.approx(4 / 5)
    # 3 classes (-1.01,-.1] (-.1,.1] (.1,1.01]: pred 0 1 0 2 1, label 0 1 0 2 0: 4/5.
    assert m["Acc3"] == pytest.approx(4 / 5)
    # 2 classes, zero negative: pred 0 1 0 1 0, label 0 1 0 1 0: 5/5 (zero-positive gives 4/5).
    assert m["Acc2"] == 1.0 and m["F1"] == 1.0
    # MAE: (0.2 + 0.05 + 0.4 + 0.2 + 0.5) / 5 = 0.27.
    assert m["MAE"] == pytest.approx(0.27, rel=1e-6)


@pytest.mark.parametrize(
    ("pred", "label", "key", "expected"),
    [
        ([-0.7], [-0.8], "Acc5", 1.0),  # float32 -0.7 is in (-1.01, -0.7], like -0.8
        ([-0.7], [-0.6], "Acc5", 0.0),
        ([0.1], [0.0], "Acc3", 1.0),  # float32 0.1 is in (-0.1, 0.1], like 0.0
        ([0.1], [0.2], "Acc3", 0.0),
        ([0.0], [-0.3], "Acc2", 1.0),  # zero is negative for CH-SIMS Acc2
        ([0.7], [0.8], "Acc5", 0.0),  # 0.7 itself is in (0.1, 0.7], upper edge included
    ],
)
def test_sims_single_boundaries(pred, label, key, expected) -> None:
    assert regression_metrics(pred, label, "sims")[key] == expected


def test_sims_clips_before_mae_and_corr() -> None:
    m = regression_metrics([2.0, -3.0, 0.5], [1.0, -1.0, 0.5], "sims")
    assert m["MAE"] == 0.0  # clipped predictions 1, -1, 0.5 equal the labels
    assert m["Corr"] == pytest.approx(1.0)
    assert m["Acc5"] == 1.0


def test_inputs_tensor_and_2d_are_flattened() -> None:
    m = regression_metrics(torch.tensor([[0.5], [-1.0]]), np.array([1.0, -2.0]), "mosi")
    assert m["Has0_Acc2"] == 1.0 and m["MAE"] == pytest.approx(0.75)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="unknown metric scheme"):
        regression_metrics([0.0], [0.0], "iemocap")
    with pytest.raises(ValueError, match="2 values but label has 3"):
        regression_metrics([0.0, 1.0], [0.0, 1.0, 2.0], "mosi")
    with pytest.raises(ValueError, match="non-finite"):
        regression_metrics([0.0, float("nan")], [0.0, 1.0], "sims")
    with pytest.raises(ValueError, match="zero samples"):
        regression_metrics([], [], "sims")


def test_weighted_f1_three_classes() -> None:
    # true 0 0 1 2, pred 0 1 1 1: F1(0) = 2*1/(2+1) = 2/3, F1(1) = 2*1/(1+3) = 1/2, F1(2) = 0;
    # weighted (2*2/3 + 1*1/2 + 0)/4 = (4/3 + 1/2)/4 = 11/24.
    assert weighted_f1([0, 1, 1, 1], [0, 0, 1, 2]) == pytest.approx(11 / 24)


def test_table_units_and_format() -> None:
    metrics = {"Acc2": 0.8025, "MAE": 0.4123, "Corr": float("nan")}
    assert to_table_units(metrics)["Acc2"] == pytest.approx(80.25)
    assert to_table_units(metrics)["MAE"] == 0.4123
    assert format_metrics(metrics) == "Acc2 80.25  MAE 0.412  Corr nan"
