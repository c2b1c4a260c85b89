"""Model selection and ensembling with nnU-Net's own tools: SMAFormerV2 next to stock nnU-Net, on the
fine-tuning fixture's two-channel (T1, T2) dataset with 9 labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_cli import run

SMAFORMER = "nnUNetTrainerSMAFormerV2_smokeImageNet"  # the fine-tuned model of the `finetuned` fixture
STOCK = "nnUNetTrainer_compareTest"  # stock nnU-Net, smoke-sized


def test_find_best_configuration_then_ensemble_predictions(finetuned, tmp_path):
    env = finetuned["env"]
    run(["nnUNetv2_train", "512", "2d", "0", "-tr", STOCK, "-device", "cpu", "--npz"], env)

    result = run(["nnUNetv2_find_best_configuration", "512", "-c", "2d", "-tr", SMAFORMER, STOCK, "-f", "0",
                  "-np", "1"], env)
    results = Path(env["nnUNet_results"]) / "Dataset512_Nine"
    info = json.loads((results / "inference_information.json").read_text())
    ensemble = f"ensemble___{SMAFORMER}__nnUNetPlans__2d___{STOCK}__nnUNetPlans__2d___0"
    assert set(info["all_results"]) == {f"{SMAFORMER}__nnUNetPlans__2d", f"{STOCK}__nnUNetPlans__2d", ensemble}
    assert all(0.0 <= dice <= 1.0 for dice in info["all_results"].values())
    best = info["best_model_or_ensemble"]
    assert best["result_on_crossval_pre_pp"] == max(info["all_results"].values())
    assert {m["trainer"] for m in best["selected_model_or_models"]} <= {SMAFORMER, STOCK}
    assert "***All results:***" in result.stdout and "*Best*:" in result.stdout
    assert "nnUNetv2_predict" in (results / "inference_instructions.txt").read_text()

    images = Path(env["nnUNet_raw"]) / "Dataset512_Nine" / "imagesTr"
    source = images / "case_004_0000.nii.gz"
    (tmp_path / "in").mkdir()
    for channel in ("0000", "0001"):  # T1 and T2
        (tmp_path / "in" / f"case_004_{channel}.nii.gz").symlink_to(images / f"case_004_{channel}.nii.gz")
    members = []
    for trainer in (SMAFORMER, STOCK):
        out = tmp_path / trainer
        run(["nnUNetv2_predict", "-i", tmp_path / "in", "-o", out, "-d", "512", "-c", "2d", "-f", "0",
             "-tr", trainer, "-device", "cpu", "--save_probabilities"], env)
        members.append(out)
    run(["nnUNetv2_ensemble", "-i", *members, "-o", tmp_path / "ensemble", "-np", "1"], env)

    image = sitk.ReadImage(str(source))
    member = sitk.ReadImage(str(members[0] / "case_004.nii.gz"))
    merged = sitk.ReadImage(str(tmp_path / "ensemble" / "case_004.nii.gz"))
    for written in (member, merged):
        assert written.GetSize() == image.GetSize() == (96, 64, 6)
        assert np.allclose(written.GetSpacing(), image.GetSpacing())
        assert np.allclose(written.GetOrigin(), image.GetOrigin())
        assert set(np.unique(sitk.GetArrayFromImage(written))) <= set(range(10))
    # The ensemble is the arg-max of the members' mean class probabilities.
    probabilities = [np.load(m / "case_004.npz")["probabilities"] for m in members]
    assert probabilities[0].shape == probabilities[1].shape == (10, *sitk.GetArrayFromImage(image).shape)
    expected = np.mean(probabilities, axis=0).argmax(0)
    assert np.array_equal(sitk.GetArrayFromImage(merged), expected)
