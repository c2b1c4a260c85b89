"""``smaformer compare --folds``: cross-validation, each method's fold_k/validation predictions pooled.

The two model folders hold the shared smoke models' checkpoints and hand-made validation predictions (the reference
labels, with one organ erased in chosen cases), so that every pooled, per-fold and paired figure is known exactly.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_cli import SMOKE, run_main

STOCK = "nnUNetTrainer_compareTest"
DATASET = "Dataset501_TinyCT"
FOLDS = (0, 1, 2)
#: Per fold, the organ the stock method's prediction erases in that fold's case (None: the reference labels).
ERASED = {0: 1, 1: 2, 2: None}


def _model_copy(model: Path, root: Path, folds) -> Path:
    copy = root / DATASET / model.name
    for name in ("plans.json", "dataset.json"):
        copy.mkdir(parents=True, exist_ok=True)
        shutil.copy(model / name, copy / name)
    for fold in folds:
        (copy / f"fold_{fold}" / "validation").mkdir(parents=True)
        (copy / f"fold_{fold}" / "checkpoint_final.pth").symlink_to(model / "fold_0" / "checkpoint_final.pth")
    return copy


def _write_prediction(label: Path, target: Path, erase: int | None) -> None:
    image = sitk.ReadImage(str(label))
    array = sitk.GetArrayFromImage(image)
    assert set(np.unique(array)) == {0, 1, 2, 3}, "every organ must be in every case for known DSCs"
    if erase is not None:
        array = np.where(array == erase, 0, array).astype(array.dtype)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(target))


@pytest.fixture(scope="module")
def cv(ct, smoke_model, stock_model, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cv_models")
    labels = Path(ct["nnUNet_raw"]) / DATASET / "labelsTr"
    splits = json.loads((Path(ct["nnUNet_preprocessed"]) / DATASET / "splits_final.json").read_text())
    smoke, stock = _model_copy(smoke_model, root / "a", FOLDS), _model_copy(stock_model, root / "b", FOLDS)
    cases = {}
    for fold in FOLDS:
        cases[fold] = sorted(splits[fold]["val"])
        for case in cases[fold]:
            _write_prediction(labels / f"{case}.nii.gz", smoke / f"fold_{fold}" / "validation" / f"{case}.nii.gz", None)
            _write_prediction(labels / f"{case}.nii.gz", stock / f"fold_{fold}" / "validation" / f"{case}.nii.gz",
                              ERASED[fold])
        # nnU-Net's own summary next to the predictions is not a prediction.
        (stock / f"fold_{fold}" / "validation" / "summary.json").write_text("{}")
    return {"smoke": smoke, "stock": stock, "labels": labels, "cases": cases}


def compare_cv(ct, cv, out: Path, folds=FOLDS, methods=None):
    methods = methods or [[cv["smoke"]], [cv["stock"]]]
    args = ["compare", *(a for m in methods for a in ("--method", *m)), "--gt", cv["labels"], "-o", out,
            "--folds", *folds, "--no-network-benchmark"]
    return run_main(args, ct)


def test_pooled_per_fold_and_paired_figures_are_the_hand_computed_ones(ct, cv, tmp_path):
    result = compare_cv(ct, cv, tmp_path / "report")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["folds"] == list(FOLDS) and report["fold"] == FOLDS[0]
    cross_validation = report["cross_validation"]
    assert cross_validation["case_folds"] == {case: fold for fold in FOLDS for case in cv["cases"][fold]}
    n = sum(len(c) for c in cv["cases"].values())
    assert n == 3
    perfect, damaged = report["methods"][SMOKE], report["methods"][STOCK]
    assert perfect["n_cases"] == damaged["n_cases"] == n
    assert perfect["mean"] == {"dice": 1.0, "hd95": 0.0}
    # Organ 1 erased in fold 0's case, organ 2 in fold 1's: each of those organs has DSC 0 in one case of three.
    assert [damaged["per_label"][k]["dice"] for k in ("1", "2", "3")] == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert damaged["mean"]["dice"] == pytest.approx(7 / 9)
    per_fold = cross_validation["per_fold"][STOCK]
    assert {fold: per_fold[str(fold)]["mean"]["dice"] for fold in FOLDS} == pytest.approx({0: 2 / 3, 1: 2 / 3, 2: 1.0})
    assert all(per_fold[str(fold)]["n_cases"] == 1 for fold in FOLDS)
    mean_row = next(r for r in report["paired"] if r["label"] == "mean")
    # Per case, the mean over organs differs by -1/3, -1/3 and 0; Wilcoxon drops the zero, and with two negative
    # differences the exact two-sided p is 2 * (1/2)^2 = 0.5.
    assert mean_row["n"] == 3 and mean_row["mean_difference"] == pytest.approx(-2 / 9)
    assert mean_row["wilcoxon_p"] == pytest.approx(0.5)
    assert -1 / 3 <= mean_row["ci95"][0] <= -2 / 9 <= mean_row["ci95"][1] <= 0
    organ1 = next(r for r in report["paired"] if r["label"] == "1")
    assert organ1["mean_difference"] == pytest.approx(-1 / 3)
    assert report["models"][STOCK]["prediction_folder"].endswith("fold_{0,1,2}/validation")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Cross-validation folds" in markdown and "validation predictions of folds 0, 1, 2 pooled" in markdown
    assert "| **pooled** | 3 | **100.00** | **77.78** |" in markdown


def test_a_method_missing_a_fold_is_named(ct, cv, tmp_path):
    # fold 3 exists for the first method only.
    extra = cv["smoke"] / "fold_3"
    (extra / "validation").mkdir(parents=True)
    (extra / "checkpoint_final.pth").symlink_to(cv["smoke"] / "fold_0" / "checkpoint_final.pth")
    try:
        result = compare_cv(ct, cv, tmp_path / "report", folds=(0, 3))
    finally:
        shutil.rmtree(extra)
    assert result.returncode == 2
    assert f"method {SMOKE}: fold 3 has no validation predictions" in result.stderr
    assert not (tmp_path / "report").exists()


def test_methods_with_other_cases_in_a_fold_are_refused(ct, cv, tmp_path):
    case = cv["cases"][2][0]
    moved = cv["stock"] / "fold_2" / "validation" / f"{case}.nii.gz"
    other = moved.with_name("case_999.nii.gz")
    shutil.move(moved, other)
    try:
        result = compare_cv(ct, cv, tmp_path / "report")
    finally:
        shutil.move(other, moved)
    assert result.returncode == 2
    assert (f"method {STOCK}: fold 2 holds other validation cases than {SMOKE}'s (missing: {case}; not in {SMOKE}: "
            "case_999)") in result.stderr


def test_prediction_folders_with_folds_are_refused(ct, cv, tmp_path):
    result = compare_cv(ct, cv, tmp_path / "report", methods=[[cv["smoke"], tmp_path], [cv["stock"]]])
    assert result.returncode == 2 and "a method is its model folder alone" in result.stderr
    without = run_main(["compare", "--method", cv["smoke"], "--method", cv["stock"], "--gt", cv["labels"],
                        "-o", tmp_path / "r"], ct)
    assert without.returncode == 2 and "every method needs a prediction folder" in without.stderr
