"""nnUNetTrainerSMAFormerV2 through the stock nnUNetv2_* console scripts (CPU, tiny synthetic data)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_cli import BIN, SMOKE, model_folder, nnunet_env, run
from nnunetv2_smaformer.pretrained import OFFICIAL_URL

def read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def test_trainer_path_lists_the_trainer_module(ct):
    result = run(["smaformer", "trainer-path"], ct)
    folder = Path(result.stdout.strip())
    assert (folder / "nnUNetTrainerSMAFormerV2.py").is_file()
    assert str(folder) in ct["nnUNet_extTrainer"].split(os.pathsep)


def test_training_writes_a_256_patch_smaformer_model(smoke_model):
    plans = json.loads((smoke_model / "plans.json").read_text())
    assert plans["configurations"]["2d"]["patch_size"] == [256, 256]
    # 5 cases of 8x64x64 voxels: 5 % is far below one 256x256 patch, so nnU-Net's minimum of 2 applies.
    assert plans["configurations"]["2d"]["batch_size"] == 2

    checkpoint = torch.load(smoke_model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == SMOKE
    weights = checkpoint["network_weights"]
    assert weights["input_proj.conv.weight"].shape == (3, 1, 3, 3)
    assert weights["decoder.head.classifier.seg_layers.weight"].shape == (4, 96, 1, 1)
    groups = checkpoint["optimizer_state"]["param_groups"]
    assert "betas" in groups[0] and groups[0]["weight_decay"] == pytest.approx(1e-2)
    assert groups[1]["weight_decay"] == 0.0

    summary = json.loads((smoke_model / "fold_0" / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2", "3"}
    log = next((smoke_model / "fold_0").glob("training_log_*.txt")).read_text()
    assert "'patch_size': [256, 256]" in log and "Current learning rate: 0.0003" in log


def test_predict_keeps_geometry(ct, smoke_model, tmp_path):
    source = Path(ct["nnUNet_raw"]) / "Dataset501_TinyCT" / "imagesTr" / "case_001_0000.nii.gz"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / source.name).symlink_to(source)
    run(["nnUNetv2_predict", "-i", tmp_path / "in", "-o", tmp_path / "out", "-d", "501", "-c", "2d",
         "-f", "0", "-tr", SMOKE, "-device", "cpu"], ct)
    prediction, image = read(tmp_path / "out" / "case_001.nii.gz"), read(source)
    assert prediction.GetSize() == image.GetSize()
    assert np.allclose(prediction.GetSpacing(), image.GetSpacing())
    assert np.allclose(prediction.GetOrigin(), image.GetOrigin())
    assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2, 3}


def test_validation_only_reruns_validation(ct, smoke_model):
    fold = smoke_model / "fold_0"
    summary = fold / "validation" / "summary.json"
    before, before_mtime = json.loads(summary.read_text()), summary.stat().st_mtime_ns
    checkpoint = (fold / "checkpoint_final.pth").read_bytes()
    run(["nnUNetv2_train", "501", "2d", "0", "-tr", SMOKE, "-device", "cpu", "--val"], ct)
    after = json.loads(summary.read_text())
    assert summary.stat().st_mtime_ns > before_mtime
    # Validated again on the fold's validation cases with the trained weights, which stay untouched:
    # the same cases, the same metrics, the same checkpoint.
    val_cases = json.loads((Path(ct["nnUNet_preprocessed"]) / "Dataset501_TinyCT" / "splits_final.json").read_text())[0]["val"]
    assert sorted(Path(c["prediction_file"]).name for c in after["metric_per_case"]) == sorted(
        f"{case}.nii.gz" for case in val_cases)
    assert all((fold / "validation" / f"{case}.nii.gz").is_file() for case in val_cases)
    assert after["foreground_mean"]["Dice"] == pytest.approx(before["foreground_mean"]["Dice"], abs=1e-6)
    assert (fold / "checkpoint_final.pth").read_bytes() == checkpoint


def test_export_install_predict_roundtrip(ct, smoke_model, tmp_path):
    archive = tmp_path / "model.zip"
    run(["nnUNetv2_export_model_to_zip", "-d", "501", "-o", archive, "-c", "2d", "-tr", SMOKE, "-f", "0"], ct)
    other = nnunet_env(tmp_path / "elsewhere")
    run(["nnUNetv2_install_pretrained_model_from_zip", archive], other)
    assert (model_folder(other, "Dataset501_TinyCT", SMOKE) / "fold_0" / "checkpoint_final.pth").is_file()

    images = tmp_path / "in"
    images.mkdir()
    (images / "case_002_0000.nii.gz").symlink_to(
        Path(ct["nnUNet_raw"]) / "Dataset501_TinyCT" / "imagesTr" / "case_002_0000.nii.gz")
    predict = ["nnUNetv2_predict", "-i", images, "-d", "501", "-c", "2d", "-f", "0", "-tr", SMOKE, "-device", "cpu"]
    run([*predict, "-o", tmp_path / "original"], ct)
    run([*predict, "-o", tmp_path / "installed"], other)
    original = sitk.GetArrayFromImage(read(tmp_path / "original" / "case_002.nii.gz"))
    installed = sitk.GetArrayFromImage(read(tmp_path / "installed" / "case_002.nii.gz"))
    assert np.array_equal(original, installed)


def _wait_for(predicate, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"training ended early ({process.returncode}): {process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the training to reach a checkpoint"
        time.sleep(0.5)


def test_resume_after_interruption(ct, official_checkpoint):
    trainer = "nnUNetTrainerSMAFormerV2_resumeTest"
    fold_dir = model_folder(ct, "Dataset501_TinyCT", trainer) / "fold_0"
    env = {**ct, "SMAFORMER_SWIN_WEIGHTS": str(official_checkpoint)}
    process = subprocess.Popen(
        [str(BIN / "nnUNetv2_train"), "501", "2d", "0", "-tr", trainer, "-device", "cpu"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        # Epoch 1 starts only after epoch 0's checkpoint_latest.pth was written.
        _wait_for(lambda: any("Epoch 1" in p.read_text() for p in fold_dir.glob("training_log_*.txt")),
                  process, timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    first_log = next(fold_dir.glob("training_log_*.txt"))
    assert "ImageNet initialisation of the encoder" in first_log.read_text()
    assert "coverage 100.00 %" in first_log.read_text()
    assert not (fold_dir / "checkpoint_final.pth").exists()
    assert torch.load(fold_dir / "checkpoint_latest.pth", weights_only=False)["current_epoch"] == 1

    time.sleep(1.1)  # nnU-Net names logs by the second
    run(["nnUNetv2_train", "501", "2d", "0", "-tr", trainer, "-device", "cpu", "--c"], ct)  # no weights file needed
    final = torch.load(fold_dir / "checkpoint_final.pth", weights_only=False)
    assert final["current_epoch"] == 3
    resumed_log = next(p for p in fold_dir.glob("training_log_*.txt") if p != first_log).read_text()
    epochs = [int(e) for e in re.findall(r"^\S+ \S+ Epoch (\d+)\s*$", resumed_log, re.M)]
    assert epochs == [1, 2]
    assert "ImageNet initialisation" not in resumed_log


@pytest.mark.parametrize("weights", [None, "missing.pth"])
def test_missing_imagenet_weights_explain_what_to_do(ct, weights, tmp_path):
    env = {**ct, "HF_HOME": str(tmp_path / "empty_hf_home")}  # offline (nnunet_env) with no cached timm weights
    if weights:
        env["SMAFORMER_SWIN_WEIGHTS"] = str(tmp_path / weights)
    result = run(["nnUNetv2_train", "501", "2d", "1", "-tr", "nnUNetTrainerSMAFormerV2", "-device", "cpu"],
                 env, check=False)
    assert result.returncode != 0
    message = result.stderr
    assert "SMAFORMER_SWIN_WEIGHTS" in message and OFFICIAL_URL in message
    assert "nnUNetTrainerSMAFormerV2_noPretrain" in message
    assert ("no such file" in message) == bool(weights)
    assert ("HF_HUB_OFFLINE=1" in message) == (not weights)


def test_3d_configuration_is_refused(ct):
    result = run(["nnUNetv2_train", "501", "3d_fullres", "0", "-tr", SMOKE, "-device", "cpu"], ct, check=False)
    assert result.returncode != 0
    assert "is a 2D network" in result.stderr and "'2d'" in result.stderr
    assert not model_folder(ct, "Dataset501_TinyCT", SMOKE, "3d_fullres").exists()
