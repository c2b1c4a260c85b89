"""Cross-validation for a comparison: each method's validation predictions of several folds pooled into one set.

nnU-Net writes the validation predictions of fold ``k`` (its held-out cases, exported at the original geometry) to
``<model folder>/fold_k/validation/``. Pooled over the folds of a 5-fold split every training case is predicted once,
by the model that did not train on it: the field's cross-validation figure. The methods must cover the same folds
with the same cases, or their figures would describe different data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nnunetv2_smaformer.errors import EvaluationError
from nnunetv2_smaformer.evaluation.evaluate import EvaluationResult
from nnunetv2_smaformer.model_folder import ModelFolder

VALIDATION = "validation"


def validation_cases(folder: ModelFolder, key: str, fold: int, file_ending: str) -> dict[str, Path]:
    """Case -> prediction file of ``fold_<fold>/validation`` of one method.

    Raises:
        EvaluationError: naming the method and the fold, when the fold has no validation predictions.
    """
    validation = folder.path / f"fold_{fold}" / VALIDATION
    files = sorted(validation.glob(f"*{file_ending}")) if validation.is_dir() else []
    if not files:
        raise EvaluationError(
            f"method {key}: fold {fold} has no validation predictions ({validation} holds no *{file_ending}); train "
            f"that fold to the end, or run nnUNetv2_train ... {fold} --val, or leave it out of --folds")
    return {path.name[: -len(file_ending)]: path for path in files}


def pool_validation(folders: Sequence[ModelFolder], keys: Sequence[str], folds: Sequence[int], file_ending: str,
                    pooled_root: Path) -> tuple[list[Path], dict[str, int]]:
    """Link every method's validation predictions of ``folds`` into ``pooled_root/<key>/`` and return those folders
    and the fold of each case.

    Raises:
        EvaluationError: a method without a fold's validation, a case in two folds, or methods whose folds hold
            different cases (naming the method, the fold and the cases).
    """
    per_method = {key: {fold: validation_cases(folder, key, fold, file_ending) for fold in folds}
                  for folder, key in zip(folders, keys)}
    reference_key = keys[0]
    reference = per_method[reference_key]
    for key in keys[1:]:
        for fold in folds:
            ours, theirs = set(per_method[key][fold]), set(reference[fold])
            if ours != theirs:
                missing, extra = sorted(theirs - ours), sorted(ours - theirs)
                raise EvaluationError(
                    f"method {key}: fold {fold} holds other validation cases than {reference_key}'s "
                    f"(missing: {', '.join(missing) or 'none'}; not in {reference_key}: {', '.join(extra) or 'none'}); "
                    "train every method on the same splits_final.json")
    case_folds: dict[str, int] = {}
    for fold in folds:
        for case in reference[fold]:
            if case in case_folds:
                raise EvaluationError(f"case {case} is in the validation of fold {case_folds[case]} and fold {fold}: "
                                      "folds of one cross-validation never share a case")
            case_folds[case] = fold
    pooled: list[Path] = []
    for key in keys:
        target = pooled_root / key
        target.mkdir(parents=True)
        for fold in folds:
            for path in per_method[key][fold].values():
                (target / path.name).symlink_to(path)
        pooled.append(target)
    return pooled, case_folds


def fold_result(result: EvaluationResult, cases: Sequence[str]) -> EvaluationResult:
    """The evaluation restricted to ``cases``: per label the mean over those cases, then over labels."""
    return EvaluationResult({case: result.per_case[case] for case in cases}, result.labels, result.label_names,
                            result.hd95_unit)


def per_fold(evaluations: Mapping[str, EvaluationResult], case_folds: Mapping[str, int]) -> dict[str, dict]:
    """``report.json["cross_validation"]["per_fold"]``: per method and fold, the cases and the mean DSC and HD95 over
    the fold's cases (per label, then over labels)."""
    folds = sorted(set(case_folds.values()))
    table: dict[str, dict] = {}
    for key, result in evaluations.items():
        table[key] = {}
        for fold in folds:
            subset = fold_result(result, sorted(c for c, f in case_folds.items() if f == fold))
            table[key][str(fold)] = {"n_cases": len(subset.per_case),
                                     "mean": {"dice": subset.mean[0], "hd95": subset.mean[1]}}
    return table
