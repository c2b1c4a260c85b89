"""Paired statistics of a comparison: per-case DSC differences, bootstrap intervals and Wilcoxon p, against
numbers the test states and scipy's own test."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from nnunetv2_smaformer.comparison.paired import bootstrap_ci, paired_comparison, wilcoxon_p
from nnunetv2_smaformer.evaluation.evaluate import EvaluationResult


def result(dice_per_case: dict) -> EvaluationResult:
    """An evaluation with per-case DSC ``{case: [organ1, organ2]}`` (HD95 0)."""
    per_case = {case: {label: (d, 0.0) for label, d in zip((1, 2), values)} for case, values in dice_per_case.items()}
    return EvaluationResult(per_case=per_case, labels=[1, 2], label_names={1: "liver", 2: "spleen"}, hd95_unit="voxel")


REFERENCE = {"c1": [0.90, 0.80], "c2": [0.70, 0.60], "c3": [0.85, 0.50], "c4": [0.60, 0.90], "c5": [0.75, 0.70]}
METHOD = {"c1": [0.95, 0.71], "c2": [0.80, 0.65], "c3": [0.86, 0.52], "c4": [0.68, 0.80], "c5": [0.79, 0.71]}


def test_rows_per_organ_and_mean_with_the_differences_stated_here():
    rows = paired_comparison({"ref": result(REFERENCE), "new": result(METHOD)})
    assert [(r["method"], r["reference"], r["label"]) for r in rows] == [
        ("new", "ref", "mean"), ("new", "ref", "1"), ("new", "ref", "2")]
    liver = [0.05, 0.10, 0.01, 0.08, 0.04]  # METHOD - REFERENCE, organ 1, case by case
    spleen = [-0.09, 0.05, 0.02, -0.10, 0.01]
    mean = [(a + b) / 2 for a, b in zip(liver, spleen)]  # a case's mean over its organs
    for row, differences in zip(rows, (mean, liver, spleen)):
        assert row["n"] == 5
        assert row["mean_difference"] == pytest.approx(sum(differences) / 5)
        assert row["wilcoxon_p"] == pytest.approx(wilcoxon(differences).pvalue)
        low, high = row["ci95"]
        assert low <= row["mean_difference"] <= high
        assert min(differences) <= low and high <= max(differences)
    # Five positive differences out of five: the exact two-sided signed-rank p is 2 / 2**5.
    assert rows[1]["wilcoxon_p"] == pytest.approx(2 / 32)


def test_no_difference_is_p_one():
    rows = paired_comparison({"a": result(REFERENCE), "b": result(REFERENCE)})
    assert all(r["mean_difference"] == 0 and r["ci95"] == [0.0, 0.0] and r["wilcoxon_p"] == 1.0 for r in rows)
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0


def test_bootstrap_interval_matches_the_normal_approximation_for_many_cases():
    rng = np.random.default_rng(3)
    differences = rng.normal(0.02, 0.05, size=400)
    low, high = bootstrap_ci(differences)
    half = 1.96 * differences.std(ddof=1) / math.sqrt(len(differences))
    assert low == pytest.approx(differences.mean() - half, abs=0.2 * half)
    assert high == pytest.approx(differences.mean() + half, abs=0.2 * half)
    assert bootstrap_ci(differences) == [low, high]  # seeded: the same interval every time


def test_every_method_against_the_first():
    rows = paired_comparison({"ref": result(REFERENCE), "b": result(METHOD), "c": result(REFERENCE)})
    assert {(r["method"], r["reference"]) for r in rows} == {("b", "ref"), ("c", "ref")}
