"""nnUNetTrainerSMAFormerV2 through the stock nnUNetv2_* console scripts (CPU, tiny synthetic data)."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from ext_trainers.nnUNetTrainerSMAFormerV2_testing import PROBE
from nnunet_cli import BIN, SMOKE, model_folder, nnunet_env, predict, run
from nnunetv2_smaformer.pretrained import OFFICIAL_URL

RESUME = "nnUNetTrainerSMAFormerV2_resumeTest"


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


def test_predict_keeps_geometry(smoke_prediction):
    case = smoke_prediction["case"]
    prediction, image = read(smoke_prediction["out"] / f"{case}.nii.gz"), read(smoke_prediction["source"])
    assert prediction.GetSize() == image.GetSize()
    assert np.allclose(prediction.GetSpacing(), image.GetSpacing())
    assert np.allclose(prediction.GetOrigin(), image.GetOrigin())
    assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2, 3}


def test_validation_only_reruns_validation(ct, smoke_model, tmp_path):
    # --val rewrites the fold's validation folder, which other tests read: on a copy of the model folder.
    env = {**ct, "nnUNet_results": str(tmp_path / "results")}
    copy = model_folder(env, "Dataset501_TinyCT", SMOKE)
    shutil.copytree(smoke_model, copy)
    fold = copy / "fold_0"
    summary = fold / "validation" / "summary.json"
    before, before_mtime = json.loads(summary.read_text()), summary.stat().st_mtime_ns
    checkpoint = (fold / "checkpoint_final.pth").read_bytes()
    run(["nnUNetv2_train", "501", "2d", "0", "-tr", SMOKE, "-device", "cpu", "--val"], env)
    after = json.loads(summary.read_text())
    assert summary.stat().st_mtime_ns > before_mtime
    # Validated again on the fold's validation cases with the trained weights, which stay untouched:
    # the same cases, the same metrics, the same checkpoint.
    splits = Path(ct["nnUNet_preprocessed"]) / "Dataset501_TinyCT" / "splits_final.json"
    val_cases = json.loads(splits.read_text())[0]["val"]
    assert sorted(Path(c["prediction_file"]).name for c in after["metric_per_case"]) == sorted(
        f"{case}.nii.gz" for case in val_cases)
    assert all((fold / "validation" / f"{case}.nii.gz").is_file() for case in val_cases)
    assert after["foreground_mean"]["Dice"] == pytest.approx(before["foreground_mean"]["Dice"], abs=1e-6)
    assert (fold / "checkpoint_final.pth").read_bytes() == checkpoint


def test_export_install_predict_roundtrip(ct, smoke_model, smoke_prediction, tmp_path):
    archive = tmp_path / "model.zip"
    run(["nnUNetv2_export_model_to_zip", "-d", "501", "-o", archive, "-c", "2d", "-tr", SMOKE, "-f", "0"], ct)
    other = nnunet_env(tmp_path / "elsewhere")
    run(["nnUNetv2_install_pretrained_model_from_zip", archive], other)
    assert (model_folder(other, "Dataset501_TinyCT", SMOKE) / "fold_0" / "checkpoint_final.pth").is_file()

    predict(other, smoke_prediction["inputs"], tmp_path / "installed", 501, SMOKE)
    case = smoke_prediction["case"]
    original = sitk.GetArrayFromImage(read(smoke_prediction["out"] / f"{case}.nii.gz"))
    installed = sitk.GetArrayFromImage(read(tmp_path / "installed" / f"{case}.nii.gz"))
    assert np.array_equal(original, installed)


def _wait_for(predicate, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"training ended early ({process.returncode}): {process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the training to reach a checkpoint"
        time.sleep(0.5)


def expected_lr(epoch: int, epochs: int = 4, warmup: int = 1, peak: float = 3e-4, floor: float = 1e-6) -> float:
    """The trainer's schedule, written out: linear warm-up from peak / (warmup + 1), then cosine to ``floor``."""
    if epoch < warmup:
        return peak * (epoch + 1) / (warmup + 1)
    progress = (epoch - warmup) / (epochs - warmup)
    return floor + (peak - floor) * (1 + math.cos(math.pi * progress)) / 2


def no_weight_decay_expected(network: torch.nn.Module) -> set:
    """Norm layers' weights and biases, every bias, Swin's relative-position tables: named by module type here."""
    norms = (torch.nn.LayerNorm, torch.nn.BatchNorm2d, torch.nn.GroupNorm)
    names = {f"{m}.{p}" if m else p for m, module in network.named_modules() if isinstance(module, norms)
             for p, _ in module.named_parameters(recurse=False)}
    names |= {n for n, _ in network.named_parameters()
              if n.endswith(".bias") or n.endswith("relative_position_bias_table")}
    return names


def _probe(log: str, what: str) -> list:
    return [line.split(PROBE + what, 1)[1].strip() for line in log.splitlines() if PROBE + what in line]


@pytest.fixture(scope="module")
def resumed(ct, official_checkpoint):
    """``nnUNetv2_train`` of the probe trainer (4 epochs, one of warm-up), killed once epoch 1 has begun, then resumed
    with ``--c``: the fold folder and both training logs."""
    fold_dir = model_folder(ct, "Dataset501_TinyCT", RESUME) / "fold_0"
    env = {**ct, "SMAFORMER_SWIN_WEIGHTS": str(official_checkpoint)}
    process = subprocess.Popen(
        [str(BIN / "nnUNetv2_train"), "501", "2d", "0", "-tr", RESUME, "-device", "cpu"],
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
    interrupted = {"final_exists": (fold_dir / "checkpoint_final.pth").exists(),
                   "latest_epoch": torch.load(fold_dir / "checkpoint_latest.pth", weights_only=False)["current_epoch"]}
    time.sleep(1.1)  # nnU-Net names logs by the second
    run(["nnUNetv2_train", "501", "2d", "0", "-tr", RESUME, "-device", "cpu", "--c"], ct)  # no weights file needed
    resumed_log = next(p for p in fold_dir.glob("training_log_*.txt") if p != first_log)
    return {"fold": fold_dir, "first": first_log.read_text(), "resumed": resumed_log.read_text(), **interrupted}


def test_resume_after_interruption(resumed):
    assert "ImageNet initialisation of the encoder" in resumed["first"] and "coverage 100.00 %" in resumed["first"]
    assert not resumed["final_exists"] and resumed["latest_epoch"] == 1
    final = torch.load(resumed["fold"] / "checkpoint_final.pth", weights_only=False)
    assert final["current_epoch"] == 4
    epochs = [int(e) for e in re.findall(r"^\S+ \S+ Epoch (\d+)\s*$", resumed["resumed"], re.M)]
    assert epochs == [1, 2, 3]
    assert "ImageNet initialisation" not in resumed["resumed"]


def test_learning_rate_per_epoch_is_warmup_then_cosine_also_after_resuming(resumed):
    lrs = torch.load(resumed["fold"] / "checkpoint_final.pth", weights_only=False)["logging"]["lrs"]
    assert lrs == pytest.approx([expected_lr(e) for e in range(4)], rel=1e-9, abs=0)
    # The resumed run printed epochs 1-3 at the schedule's rates (nnU-Net rounds them to 5 decimals).
    printed = [float(v) for v in re.findall(r"Current learning rate: (\S+)", resumed["resumed"])]
    assert printed == pytest.approx([round(expected_lr(e), 5) for e in (1, 2, 3)], abs=1e-12)


def test_gradients_are_clipped_to_one(resumed):
    def norms(log: str):
        pairs = [re.match(r"raw (\S+) seen (\S+)", line).groups() for line in _probe(log, "grad-norm")]
        return [float(r) for r, _ in pairs], [float(s) for _, s in pairs]

    raw, seen = (a + b for a, b in zip(norms(resumed["first"]), norms(resumed["resumed"])))
    assert len(norms(resumed["resumed"])[1]) == 3 * 3 - 1  # epochs 1-3, the NaN step not taken
    assert max(raw) > 1.0, "the probe's premise: raw gradient norms above the threshold"
    assert max(seen) <= 1.0 + 1e-4, f"the optimiser saw gradient norms {max(seen)}"
    assert all(s == pytest.approx(min(r, 1.0), rel=1e-4) for r, s in zip(raw, seen))


def test_a_nan_batch_is_skipped_and_training_goes_on(resumed):
    """The probe's 2nd training step in each process is NaN (bf16): skipped, counted per epoch, the epoch's loss
    from the other steps; nnUNetv2_train finishes with finite weights."""
    assert "Precision: bf16, because set by the trainer" in resumed["first"]
    assert "Non-finite training steps skipped: 1 of 3 (bf16)" in resumed["first"]  # epoch 0
    assert resumed["resumed"].count("Non-finite training steps skipped: 1 of 3 (bf16)") == 1  # epoch 1
    assert resumed["resumed"].count("Non-finite training steps skipped: 0 of 3 (bf16)") == 2  # epochs 2, 3
    final = torch.load(resumed["fold"] / "checkpoint_final.pth", weights_only=False)
    assert len(final["logging"]["train_losses"]) == 4 and np.all(np.isfinite(final["logging"]["train_losses"]))
    assert all(torch.isfinite(v).all() for v in final["network_weights"].values() if v.is_floating_point())


def test_weight_decay_spares_exactly_norms_biases_and_position_tables(resumed):
    from nnunetv2_smaformer import SMAFormerV2

    decay, plain = (json.loads(_probe(resumed["first"], "groups")[0]))
    assert decay["weight_decay"] == pytest.approx(1e-2) and plain["weight_decay"] == 0.0
    network = SMAFormerV2(1, 4, img_size=64)
    expected = no_weight_decay_expected(network)
    assert any("relative_position_bias_table" in name for name in expected)
    assert set(plain["names"]) == expected
    assert set(decay["names"]) == {n for n, _ in network.named_parameters()} - expected


def test_a_corrupt_weights_file_stops_nnunet_train(ct, tmp_path):
    corrupt = tmp_path / "swin_tiny_patch4_window7_224.pth"
    corrupt.write_bytes(b"PK\x03\x04 not a checkpoint")
    result = run(["nnUNetv2_train", "501", "2d", "1", "-tr", "nnUNetTrainerSMAFormerV2", "-device", "cpu"],
                 {**ct, "SMAFORMER_SWIN_WEIGHTS": str(corrupt)}, check=False)
    assert result.returncode != 0
    assert "PretrainedWeightsError" in result.stderr and str(corrupt) in result.stderr
    assert "Epoch 0" not in result.stdout  # stopped before training began


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


def test_no_sma_ablation_trains_a_smoke_epoch(ct):
    trainer = "nnUNetTrainerSMAFormerV2_noSMA_smokeTest"
    run(["nnUNetv2_train", "501", "2d", "1", "-tr", trainer, "-device", "cpu"], ct)
    fold = model_folder(ct, "Dataset501_TinyCT", trainer) / "fold_1"
    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    ablated = [k for k in weights if k.startswith("encoder.sma.") or re.match(r"decoder\.stages\.\d\.blocks", k)]
    assert not ablated
    assert any(key.startswith("encoder.swin.") for key in weights) and "decoder.stages.0.fuse.0.weight" in weights
    assert json.loads((fold / "validation" / "summary.json").read_text())["foreground_mean"]["Dice"] >= 0
