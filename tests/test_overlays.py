"""Qualitative overlays: slice choice, PNG content, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_cli import run
from nnunetv2_smaformer.errors import EvaluationError
from nnunetv2_smaformer.evaluation.overlays import label_color, select_slices, write_overlays

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_nifti(path: Path, array: np.ndarray, spacing_xyz=(0.8, 0.8, 3.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def volumes(tmp_path: Path) -> tuple[Path, Path, Path]:
    """CT-like image (HU), ground truth with labels 1 and 2, prediction with label 1 only.

    Foreground per slice: z=1 small, z=3 largest, z=4 medium, others none.
    """
    shape = (6, 40, 48)
    rng = np.random.default_rng(0)
    image = rng.normal(40.0, 30.0, size=shape).astype(np.int16)
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    gt[1, 5:8, 5:8] = 1
    gt[3, 10:30, 10:30] = 1
    gt[3, 2:6, 40:46] = 2
    gt[4, 10:20, 10:20] = 2
    pred[3, 12:30, 10:28] = 1
    return (
        write_nifti(tmp_path / "case7_0000.nii.gz", image),
        write_nifti(tmp_path / "gt_case7.nii.gz", gt),
        write_nifti(tmp_path / "case7.nii.gz", pred),
    )


def test_select_slices_picks_most_foreground() -> None:
    gt = np.zeros((6, 4, 4), np.uint8)
    pred = np.zeros_like(gt)
    gt[1, 0, 0] = 1
    gt[3] = 2
    pred[4, :2] = 1
    assert select_slices(gt, pred, 2) == [3, 4]
    assert select_slices(gt, pred, 10) == [1, 3, 4]  # only slices with foreground
    assert select_slices(np.zeros_like(gt), np.zeros_like(gt), 2) == [3]  # middle slice
    with pytest.raises(EvaluationError):
        select_slices(gt, pred, 0)


def _has_color(png: np.ndarray, rgb: tuple[float, float, float]) -> bool:
    target = np.round(np.asarray(rgb) * 255) / 255
    return bool(np.any(np.all(np.abs(png[..., :3] - target) < 2.5 / 255, axis=-1)))


def test_write_overlays_pngs_show_label_colors(tmp_path: Path, volumes) -> None:
    image, gt, pred = volumes
    out = tmp_path / "png"
    paths = write_overlays(image, gt, pred, out, slices=[3, 0], label_names={1: "spleen"}, alpha=1.0)
    assert [p.name for p in paths] == ["case7_slice0000.png", "case7_slice0003.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    empty_slice = mpimg.imread(paths[0])
    busy_slice = mpimg.imread(paths[1])
    assert busy_slice.ndim == 3 and busy_slice.shape[1] > busy_slice.shape[0]  # three panels side by side
    # With opaque overlays the label colours appear exactly where labels exist.
    assert _has_color(busy_slice, label_color(1)) and _has_color(busy_slice, label_color(2))
    assert not _has_color(empty_slice, label_color(1)) and not _has_color(empty_slice, label_color(2))
    assert label_color(1) != label_color(2)


def test_write_overlays_auto_and_errors(tmp_path: Path, volumes) -> None:
    image, gt, pred = volumes
    paths = write_overlays(image, gt, pred, tmp_path / "auto", auto=2)
    assert [p.name for p in paths] == ["case7_slice0003.png", "case7_slice0004.png"]
    with pytest.raises(EvaluationError, match="out of range"):
        write_overlays(image, gt, pred, tmp_path / "bad", slices=[6])
    wrong = write_nifti(tmp_path / "wrong.nii.gz", np.zeros((5, 40, 48), np.uint8))
    with pytest.raises(EvaluationError, match="wrong.nii.gz"):
        write_overlays(image, gt, wrong, tmp_path / "bad")


def test_overlay_cli(tmp_path: Path, volumes) -> None:
    image, gt, pred = volumes
    dj = tmp_path / "dataset.json"
    dj.write_text(json.dumps({"labels": {"background": 0, "spleen": 1, "liver": 2}}))
    out = tmp_path / "cli"
    proc = run(["smaformer", "overlay", "--image", image, "--gt", gt, "--pred", pred,
                "--auto", "1", "-o", out, "--dataset-json", dj], timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["case7_slice0003.png"]
    assert mpimg.imread(pngs[0]).shape[-1] in (3, 4)
    proc = run(["smaformer", "overlay", "--image", image, "--gt", gt, "--pred", pred, "--slices", "99", "-o", out],
               timeout=120, check=False)
    assert proc.returncode == 2 and "99" in proc.stderr


def test_overlay_window_and_alpha_change_the_picture(tmp_path: Path, volumes) -> None:
    image, gt, pred = volumes

    def picture(name: str, *options: str) -> np.ndarray:
        out = tmp_path / name
        proc = run(["smaformer", "overlay", "--image", image, "--gt", gt, "--pred", pred, "--slices", "3", "-o", out,
                    *options], timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        return mpimg.imread(out / "case7_slice0003.png")

    default = picture("default")
    transparent = picture("alpha0", "--alpha", "0")
    wide = picture("wide", "--window", "-1000", "1000")
    assert default.shape == transparent.shape == wide.shape
    assert not np.array_equal(transparent, default), "--alpha 0 must hide the labels"
    assert not np.array_equal(wide, default), "--window must change the image's contrast"
    # Hidden labels: the ground-truth and prediction panels show the image alone, so the picture holds fewer
    # saturated label colours than with the labels drawn.
    def colourful(picture: np.ndarray) -> int:
        rgb = picture[..., :3]
        return int(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.3).sum())
    assert colourful(transparent) < colourful(default)
