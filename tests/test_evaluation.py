"""Synapse evaluation: metric rule and values against medpy (oracle), folder evaluation, CLI."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_cli import run
from nnunetv2_smaformer.errors import EvaluationError
from nnunetv2_smaformer.evaluation import evaluate as ev
from nnunetv2_smaformer.evaluation.metrics import case_metrics, dice, hd95, metric_percase

TOL = 1e-6


@pytest.fixture
def binary():
    """medpy's metrics, the oracle of the value tests. medpy comes with the test extra (``pip install -e '.[test]'``,
    which ``make test`` runs): without it these tests are skipped, with the reason shown, and the others run."""
    return pytest.importorskip("medpy.metric.binary",
                               reason="medpy, the oracle of the metric values, is not installed "
                                      "(pip install -e '.[test]')")


# ----------------------------------------------------------------------------- helpers


def medpy_percase(binary, pred: np.ndarray, gt: np.ndarray, spacing=None) -> tuple[float, float]:
    """TransUNet's calculate_metric_percase with medpy on full volumes (the oracle)."""
    pred, gt = pred > 0, gt > 0
    if pred.sum() > 0 and gt.sum() > 0:
        return binary.dc(pred, gt), binary.hd95(pred, gt, voxelspacing=spacing)
    if pred.sum() > 0:
        return 1.0, 0.0
    return 0.0, 0.0


def random_blobs(rng: np.random.Generator, shape: Sequence[int], n_seeds: int) -> np.ndarray:
    """Boolean mask of a few dilated random seeds (irregular, may touch the border)."""
    mask = np.zeros(shape, dtype=bool)
    for _ in range(n_seeds):
        mask[tuple(int(rng.integers(0, s)) for s in shape)] = True
    return ndimage.binary_dilation(mask, iterations=int(rng.integers(1, 4)))


def random_label_map(rng: np.random.Generator, shape: Sequence[int], labels: Sequence[int]) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint8)
    for label in labels:
        if rng.random() < 0.85:  # sometimes absent, to hit the (1, 0) / (0, 0) rules
            out[random_blobs(rng, shape, int(rng.integers(1, 4)))] = label
    return out


def write_nifti(path: Path, array: np.ndarray, spacing_xyz=(1.0, 1.0, 1.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    sitk.WriteImage(image, str(path))
    return path


def assert_close(actual: tuple[float, float], expected: tuple[float, float]) -> None:
    assert actual[0] == pytest.approx(expected[0], abs=TOL)
    assert actual[1] == pytest.approx(expected[1], abs=TOL)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run(["smaformer", *args], timeout=120, check=False)


# ----------------------------------------------------------------------------- metric values


@pytest.mark.parametrize("seed", range(6))
def test_case_metrics_match_medpy_on_random_blobs(seed: int, binary) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(6, 20)), int(rng.integers(12, 40)), int(rng.integers(12, 40)))
    labels = [1, 2, 3, 4]
    gt = random_label_map(rng, shape, labels)
    pred = random_label_map(rng, shape, labels)
    spacing = tuple(rng.uniform(0.4, 4.0, size=3))
    for sp in (None, spacing):
        got = case_metrics(pred, gt, labels, sp)
        assert list(got) == labels
        for label in labels:
            assert_close(got[label], medpy_percase(binary, pred == label, gt == label, sp))


def test_percase_rule_cases() -> None:
    empty = np.zeros((4, 5, 6), dtype=bool)
    some = empty.copy()
    some[1:3, 2:4, 1:5] = True
    assert metric_percase(some, empty) == (1.0, 0.0)  # prediction only
    assert metric_percase(empty, some) == (0.0, 0.0)  # missed organ
    assert metric_percase(empty, empty) == (0.0, 0.0)  # absent in both
    assert metric_percase(some, some) == (1.0, 0.0)  # perfect
    labels = np.zeros((4, 5, 6), dtype=np.uint8)
    labels[some] = 2
    # Label 5 absent in both, label 2 predicted but not in the reference.
    assert case_metrics(labels, np.zeros_like(labels), [2, 5]) == {2: (1.0, 0.0), 5: (0.0, 0.0)}
    assert case_metrics(np.zeros_like(labels), labels, [2]) == {2: (0.0, 0.0)}


def test_masks_touching_the_image_border_match_medpy(binary) -> None:
    # Erosion treats outside-the-image as background: border voxels count as surface.
    shape = (7, 16, 18)
    gt = np.zeros(shape, dtype=bool)
    gt[0:4, 0:9, 5:18] = True  # touches three faces
    pred = np.zeros(shape, dtype=bool)
    pred[2:7, 3:16, 0:12] = True  # touches the other faces
    full = np.ones(shape, dtype=bool)
    for p, g in ((pred, gt), (full, gt), (gt, full), (full, full)):
        for sp in (None, (3.0, 0.7, 0.9)):
            assert_close(metric_percase(p, g, sp), medpy_percase(binary, p, g, sp))


def test_single_voxel_masks_match_medpy(binary) -> None:
    shape = (5, 9, 11)
    a = np.zeros(shape, dtype=bool)
    b = np.zeros(shape, dtype=bool)
    a[0, 0, 0] = True
    b[4, 6, 10] = True
    for p, g in ((a, b), (b, a), (a, a)):
        for sp in (None, (2.5, 0.8, 0.6)):
            assert_close(metric_percase(p, g, sp), medpy_percase(binary, p, g, sp))
    assert hd95(a, b) == pytest.approx(np.sqrt(4**2 + 6**2 + 10**2))


def test_2d_masks_and_dice_formula(binary) -> None:
    rng = np.random.default_rng(7)
    p = random_blobs(rng, (30, 25), 3)
    g = random_blobs(rng, (30, 25), 3)
    assert dice(p, g) == binary.dc(p, g)
    assert hd95(p, g) == pytest.approx(binary.hd95(p, g), abs=TOL)
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0  # medpy's convention


def test_case_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        case_metrics(np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 5), np.uint8), [1])
    with pytest.raises(ValueError, match="non-integer"):
        case_metrics(np.full((2, 2, 2), 0.5), np.zeros((2, 2, 2)), [1])
    with pytest.raises(ValueError, match="positive"):
        case_metrics(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 2), np.uint8), [0, 1])


# ----------------------------------------------------------------------------- folders


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Three cases with anisotropic spacing; gt holds one extra case without a prediction."""
    rng = np.random.default_rng(123)
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    cases = {}
    for name in ("case2", "case10", "case1"):
        gt = random_label_map(rng, (9, 24, 20), range(1, 9))
        pred = random_label_map(rng, (9, 24, 20), range(1, 9))
        pred[gt == 1] = 1  # make sure some labels overlap
        write_nifti(gt_dir / f"{name}.nii.gz", gt, (0.7, 0.9, 3.0))
        write_nifti(pred_dir / f"{name}.nii.gz", pred, (0.7, 0.9, 3.0))
        cases[name] = (pred, gt)
    write_nifti(gt_dir / "case99.nii.gz", np.zeros((9, 24, 20), np.uint8), (0.7, 0.9, 3.0))
    (pred_dir / "plans.json").write_text("{}")  # nnUNetv2_predict leaves such files around
    return pred_dir, gt_dir, cases


def test_evaluate_folders_voxel_and_mm_match_medpy(folders, binary) -> None:
    pred_dir, gt_dir, cases = folders
    spacing_zyx = (3.0, 0.9, 0.7)  # SimpleITK's (x, y, z) reversed
    for unit, sp in (("voxel", None), ("mm", spacing_zyx)):
        result = ev.evaluate_folders(pred_dir, gt_dir, hd95_unit=unit, jobs=2, progress=False)
        assert list(result.per_case) == ["case1", "case2", "case10"]  # natural order, no case99
        assert result.labels == list(range(1, 9))
        for name, (pred, gt) in cases.items():
            for label in range(1, 9):
                assert_close(result.per_case[name][label], medpy_percase(binary, pred == label, gt == label, sp))
    # The mm test must be able to tell a wrong axis order from the right one.
    pred, gt = cases["case1"]
    wrong = [binary.hd95(pred == l, gt == l, voxelspacing=(0.7, 0.9, 3.0))
             for l in range(1, 9) if (pred == l).any() and (gt == l).any()]
    right = [binary.hd95(pred == l, gt == l, voxelspacing=spacing_zyx)
             for l in range(1, 9) if (pred == l).any() and (gt == l).any()]
    assert not np.allclose(wrong, right)


def test_aggregation_is_mean_over_cases_then_labels(folders) -> None:
    pred_dir, gt_dir, _ = folders
    result = ev.evaluate_folders(pred_dir, gt_dir, labels=[1, 3], jobs=1, progress=False)
    values = np.array([[result.per_case[c][l] for l in (1, 3)] for c in result.per_case])  # case, label, metric
    for i, label in enumerate((1, 3)):
        assert result.per_label[label] == pytest.approx(tuple(values[:, i].mean(axis=0)))
    assert result.mean == pytest.approx(tuple(values.mean(axis=0).mean(axis=0)))
    assert result.label_names == {1: "aorta", 3: "left_kidney"}


def test_parallel_equals_serial(folders) -> None:
    pred_dir, gt_dir, _ = folders
    a = ev.evaluate_folders(pred_dir, gt_dir, jobs=1, progress=False)
    b = ev.evaluate_folders(pred_dir, gt_dir, jobs=3, progress=False)
    assert a.per_case == b.per_case


def test_dataset_json_labels_and_names(tmp_path: Path, folders) -> None:
    pred_dir, gt_dir, _ = folders
    dj = tmp_path / "dataset.json"
    dj.write_text(json.dumps({"labels": {"background": 0, "spleen": 1, "liver": 6}, "file_ending": ".nii.gz"}))
    result = ev.evaluate_folders(pred_dir, gt_dir, dataset_json=dj, jobs=1, progress=False)
    assert result.labels == [1, 6]
    assert result.label_names == {1: "spleen", 6: "liver"}
    # --labels overrides the dataset.json's label set but keeps its names.
    result = ev.evaluate_folders(pred_dir, gt_dir, labels=[6], dataset_json=dj, jobs=1, progress=False)
    assert result.labels == [6] and result.name(6) == "liver"
    dj.write_text(json.dumps({"labels": {"background": 0, "organ": [1, 2]}}))
    with pytest.raises(EvaluationError, match="organ"):
        ev.read_dataset_json(dj)


def test_errors_name_the_file(tmp_path: Path, folders) -> None:
    pred_dir, gt_dir, _ = folders
    write_nifti(pred_dir / "orphan.nii.gz", np.zeros((9, 24, 20), np.uint8))
    with pytest.raises(EvaluationError, match="orphan.nii.gz"):
        ev.evaluate_folders(pred_dir, gt_dir, progress=False)
    (pred_dir / "orphan.nii.gz").unlink()
    write_nifti(gt_dir / "case1.nii.gz", np.zeros((9, 24, 21), np.uint8), (0.7, 0.9, 3.0))
    with pytest.raises(EvaluationError, match="shape mismatch for case1.nii.gz"):
        ev.evaluate_folders(pred_dir, gt_dir, progress=False)
    write_nifti(gt_dir / "case1.nii.gz", np.zeros((9, 24, 20), np.uint8), (0.7, 0.9, 2.0))
    with pytest.raises(EvaluationError, match="spacing mismatch for case1.nii.gz"):
        ev.evaluate_folders(pred_dir, gt_dir, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvaluationError, match="no prediction files"):
        ev.evaluate_folders(empty, gt_dir, progress=False)
    with pytest.raises(EvaluationError, match="does not exist"):
        ev.evaluate_folders(tmp_path / "nope", gt_dir, progress=False)


# ----------------------------------------------------------------------------- CLI


def test_cli_writes_json_csv_markdown(tmp_path: Path, folders, binary) -> None:
    pred_dir, gt_dir, cases = folders
    dj = tmp_path / "dataset.json"
    dj.write_text(json.dumps({"labels": {"background": 0, "spleen": 1, "kidney": 2, "liver": 3}}))
    out = tmp_path / "res" / "eval.json"
    proc = run_cli("evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(out),
                   "--dataset-json", str(dj), "--hd95-unit", "mm", "-j", "2")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data["per_case"]) == {"case1", "case2", "case10"}
    assert set(data["per_label"]) == {"1", "2", "3"}
    assert data["per_label"]["3"]["name"] == "liver"
    assert data["hd95_unit"] == "mm"
    pred, gt = cases["case10"]
    expected = medpy_percase(binary, pred == 2, gt == 2, (3.0, 0.9, 0.7))
    assert_close((data["per_case"]["case10"]["2"]["dice"], data["per_case"]["case10"]["2"]["hd95"]), expected)
    means = [data["per_label"][k]["dice"] for k in ("1", "2", "3")]
    assert data["mean"]["dice"] == pytest.approx(np.mean(means))

    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == 3 * 3 + 3 + 1
    assert rows[-1]["case"] == "mean" and rows[-1]["label"] == "all"
    by_key = {(r["case"], r["label"]): r for r in rows}
    assert float(by_key[("case10", "2")]["dice"]) == pytest.approx(expected[0], abs=TOL)
    assert float(by_key[("mean", "3")]["hd95"]) == pytest.approx(data["per_label"]["3"]["hd95"])
    assert float(rows[-1]["hd95"]) == pytest.approx(data["mean"]["hd95"])
    md = out.with_suffix(".md").read_text()
    assert "| 3 | liver |" in md and "HD95 (mm)" in md
    assert f"{100 * data['mean']['dice']:.2f}" in md
    assert "liver" in proc.stdout  # the summary table is the command's result


def test_cli_default_output_uses_pred_dataset_json(folders) -> None:
    pred_dir, gt_dir, _ = folders
    (pred_dir / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1, "b": 2}}))
    proc = run_cli("evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--labels", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((pred_dir / "synapse_eval.json").read_text())
    assert set(data["per_label"]) == {"2"} and data["per_label"]["2"]["name"] == "b"
    assert data["hd95_unit"] == "voxel"
    assert (pred_dir / "synapse_eval.csv").is_file() and (pred_dir / "synapse_eval.md").is_file()


@pytest.mark.parametrize("problem", ["missing_gt", "shape", "empty"])
def test_cli_errors(tmp_path: Path, folders, problem: str) -> None:
    pred_dir, gt_dir, _ = folders
    if problem == "missing_gt":
        (gt_dir / "case2.nii.gz").unlink()
        expected = "case2.nii.gz"
    elif problem == "shape":
        write_nifti(gt_dir / "case10.nii.gz", np.zeros((8, 24, 20), np.uint8), (0.7, 0.9, 3.0))
        expected = "case10.nii.gz"
    else:
        pred_dir = tmp_path / "empty_pred"
        pred_dir.mkdir()
        expected = str(pred_dir)
    proc = run_cli("evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "-o", str(tmp_path / "o.json"))
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_evaluate_command_does_not_import_torch(tmp_path: Path, folders) -> None:
    pred_dir, gt_dir, _ = folders
    code = (
        "import sys\n"
        "from nnunetv2_smaformer.cli.main import main\n"
        f"rc = main(['evaluate', '--pred', {str(pred_dir)!r}, '--gt', {str(gt_dir)!r}, "
        f"'-o', {str(tmp_path / 'x.json')!r}, '-j', '1', '--no-progress'])\n"
        "assert rc == 0, rc\n"
        "heavy = sorted(m for m in ('torch', 'nnunetv2', 'matplotlib', 'medpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
