"""Paired comparisons of methods evaluated on the same cases: what a DSC difference is worth.

For each method against a reference (the first method compared), per organ and for the mean over organs: the
per-case differences of DSC (method minus reference, in the units of the evaluations' ``dice``: a fraction), their
mean, a 95 % percentile-bootstrap confidence interval of that mean (cases resampled with replacement), and the
two-sided Wilcoxon signed-rank p (scipy). A case's "mean" is the mean over organs of its per-case DSC.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nnunetv2_smaformer.evaluation.evaluate import EvaluationResult

#: Bootstrap resamples of the confidence interval and the generator's seed (the report is reproducible).
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
SIGNIFICANCE_LEVEL = 0.05


def bootstrap_ci(differences: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                 level: float = 0.95) -> list[float]:
    """Percentile-bootstrap interval of the mean of ``differences``: ``[lo, hi]``."""
    values = np.asarray(differences, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences; 1.0 when every difference is zero (no evidence
    of a difference, where scipy has no statistic)."""
    from scipy.stats import wilcoxon

    values = np.asarray(differences, dtype=np.float64)
    if not np.any(values != 0):
        return 1.0
    return float(wilcoxon(values, alternative="two-sided").pvalue)


def case_values(result: EvaluationResult, label: int | None, cases: Sequence[str]) -> np.ndarray:
    """Per-case DSC of one label, or (``label=None``) each case's mean DSC over the result's labels."""
    if label is None:
        return np.array([np.mean([result.per_case[c][lab][0] for lab in result.labels]) for c in cases])
    return np.array([result.per_case[c][label][0] for c in cases])


def paired_comparison(evaluations: Mapping[str, EvaluationResult], reference: str | None = None) -> list[dict]:
    """``report.json["paired"]``: for each method other than ``reference`` (default: the first), per label and for
    ``"mean"``: ``{"method", "reference", "label", "n", "mean_difference", "ci95": [lo, hi], "wilcoxon_p"}``.

    The evaluations must hold the same cases (:func:`~nnunetv2_smaformer.comparison.compare.compare` checks it).
    """
    keys = list(evaluations)
    reference = keys[0] if reference is None else reference
    base = evaluations[reference]
    cases = sorted(base.per_case)
    rows: list[dict] = []
    for key in keys:
        if key == reference:
            continue
        for label in [None, *base.labels]:
            differences = case_values(evaluations[key], label, cases) - case_values(base, label, cases)
            rows.append({
                "method": key,
                "reference": reference,
                "label": "mean" if label is None else str(label),
                "n": len(cases),
                "mean_difference": float(differences.mean()),
                "ci95": bootstrap_ci(differences),
                "wilcoxon_p": wilcoxon_p(differences),
            })
    return rows


def significant(row: Mapping[str, object], level: float = SIGNIFICANCE_LEVEL) -> bool:
    return float(row["wilcoxon_p"]) < level
