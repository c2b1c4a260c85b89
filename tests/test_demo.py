"""The README's main command, end to end at full size: ``smaformer demo`` on a fresh output folder."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from nnunetv2_smaformer.demo.run import PREDICT_TIMING_SCOPE, SMAFORMER_TRAINER, STOCK_TRAINER
from nnunetv2_smaformer.demo.trainers import DEMO_MIN_MEAN_DSC


@pytest.mark.slow
def test_demo_end_to_end(smaformer_bin, tmp_path, record_figure):
    env = {k: v for k, v in os.environ.items()
           if k not in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer")}
    out = tmp_path / "demo"
    result = subprocess.run([smaformer_bin, "demo", "--out", str(out)], env=env, capture_output=True, text=True,
                            timeout=1500)
    assert result.returncode == 0, result.stderr[-5000:]

    report = json.loads((out / "report.json").read_text())
    assert set(report["methods"]) == {SMAFORMER_TRAINER, STOCK_TRAINER}
    setup = report["setup"]
    for trainer, evaluation in report["methods"].items():
        weakest = min(evaluation["per_label"].values(), key=lambda organ: organ["dice"])
        record_figure(f"demo {trainer}: mean DSC {100 * evaluation['mean']['dice']:.1f} %, weakest organ "
                      f"{weakest['name']} {100 * weakest['dice']:.1f} %")
    record_figure(f"demo total: {sum(setup['stage_seconds'].values()):.0f} s "
                  f"({', '.join(f'{k} {v:.0f}' for k, v in setup['stage_seconds'].items())})")
    for evaluation in report["methods"].values():
        assert evaluation["n_cases"] == 12 and len(evaluation["per_label"]) == 8
    # Both methods must really learn on the demo's shared budget, each with its searched setting.
    for trainer in (SMAFORMER_TRAINER, STOCK_TRAINER):
        assert report["methods"][trainer]["mean"]["dice"] >= DEMO_MIN_MEAN_DSC, (trainer, result.stdout)
    for name in ("report.md", "dsc_per_organ.png"):
        assert (out / name).stat().st_size > 0
    assert list((out / "figures" / SMAFORMER_TRAINER).glob("*.png"))
    # nnU-Net folders were created inside --out because none were set.
    assert (out / "nnUNet_raw" / "Dataset999_Synapse" / "imagesTs").is_dir()
    assert "mean DSC" in result.stdout

    # The report says what was measured: stage times as timed, inference time with its scope.
    assert set(setup["stage_seconds"]) == {"phantom+conversion", "plan+preprocess", "evaluation+comparison", "overlays",
                                           *(f"{step} {t}" for t in (SMAFORMER_TRAINER, STOCK_TRAINER)
                                             for step in ("train", "predict"))}
    markdown = (out / "report.md").read_text()
    for trainer in (SMAFORMER_TRAINER, STOCK_TRAINER):
        timing = json.loads((out / "predictions" / trainer / "timing.json").read_text())
        assert timing["seconds_per_case"] == setup["stage_seconds"][f"predict {trainer}"] / 12
        assert timing["includes"] == PREDICT_TIMING_SCOPE
        assert setup["settings"][trainer] in markdown
    assert f"Inference time per case, for every method: {PREDICT_TIMING_SCOPE}." in markdown
    assert "synthetic phantom" in markdown and setup["budget"] in markdown
    assert "excludes model loading" not in markdown


def test_demo_trainers_describe_their_budget_and_settings():
    # The report quotes these lines, so they must follow the classes' real settings.
    from nnunetv2_smaformer.demo.trainers import (nnUNetTrainer_demoCPU, nnUNetTrainerAdam_demoCPU,
                                                  nnUNetTrainerSMAFormerV2_demoCPU)

    for trainer in (nnUNetTrainer_demoCPU, nnUNetTrainerAdam_demoCPU, nnUNetTrainerSMAFormerV2_demoCPU):
        samples = trainer.epochs * trainer.iterations_per_epoch * trainer.max_batch_size
        assert trainer.budget_summary() == nnUNetTrainer_demoCPU.budget_summary()
        assert f"= {samples} training patches" in trainer.budget_summary()
    for trainer in (nnUNetTrainer_demoCPU, nnUNetTrainerAdam_demoCPU):
        assert f"peak lr {trainer.peak_lr:g}" in trainer.settings_summary()
    assert f"peak lr {nnUNetTrainerSMAFormerV2_demoCPU.initial_lr_adamw:g}" in \
        nnUNetTrainerSMAFormerV2_demoCPU.settings_summary()
    # One warm-up epoch (without it, repeated runs at this lr sometimes missed an organ).
    assert nnUNetTrainerSMAFormerV2_demoCPU.warmup_epochs_of(nnUNetTrainerSMAFormerV2_demoCPU.epochs) == 1
    assert "1 warm-up epoch(s)" in nnUNetTrainerSMAFormerV2_demoCPU.settings_summary()


def test_inference_time_scope_follows_how_it_was_obtained():
    from nnunetv2_smaformer.comparison.report import inference_timing_scope

    assert "model loading and process start-up excluded" in inference_timing_scope(
        {"seconds_per_case": 1.0, "per_case_s": [1.0], "device": "cpu"})
    assert inference_timing_scope({"seconds_per_case": 1.0, "includes": PREDICT_TIMING_SCOPE}) == PREDICT_TIMING_SCOPE
    assert "scope not stated" in inference_timing_scope({"seconds_per_case": 1.0, "source": "timing.json"})
    assert inference_timing_scope({"seconds_per_case": None}) == "not measured"
