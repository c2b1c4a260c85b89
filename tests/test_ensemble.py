"""Model selection and ensembling with nnU-Net's own tools: SMAFormerV2 next to stock nnU-Net, the two models
trained on Dataset501 with their validation probabilities (--npz) that the other test files share."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_cli import SMOKE, run
from nnunetv2_smaformer.model_folder import linked_model_copy

STOCK = "nnUNetTrainer_compareTest"  # stock nnU-Net, smoke-sized (the `stock_model` fixture)


def test_find_best_configuration_then_ensemble_predictions(ct, smoke_model, stock_model, predictions, tmp_path):
    # nnU-Net writes its choice into the dataset's results folder and the cross-validation results into each model
    # folder, which other tests read: into copies of the model folders whose fold folders are linked.
    env = {**ct, "nnUNet_results": str(tmp_path / "results")}
    results = Path(env["nnUNet_results"]) / "Dataset501_TinyCT"
    for model in (smoke_model, stock_model):
        linked_model_copy(model, results / model.name)

    result = run(["nnUNetv2_find_best_configuration", "501", "-c", "2d", "-tr", SMOKE, STOCK, "-f", "0",
                  "-np", "1"], env)
    info = json.loads((results / "inference_information.json").read_text())
    ensemble = f"ensemble___{SMOKE}__nnUNetPlans__2d___{STOCK}__nnUNetPlans__2d___0"
    assert set(info["all_results"]) == {f"{SMOKE}__nnUNetPlans__2d", f"{STOCK}__nnUNetPlans__2d", ensemble}
    assert all(0.0 <= dice <= 1.0 for dice in info["all_results"].values())
    best = info["best_model_or_ensemble"]
    assert best["result_on_crossval_pre_pp"] == max(info["all_results"].values())
    assert {m["trainer"] for m in best["selected_model_or_models"]} <= {SMOKE, STOCK}
    assert "***All results:***" in result.stdout and "*Best*:" in result.stdout
    assert "nnUNetv2_predict" in (results / "inference_instructions.txt").read_text()

    # The members: both models' predictions with class probabilities, shared with the other test files.
    case = predictions["cases"][0]
    source = predictions["images"] / f"{case}_0000.nii.gz"
    members = [predictions[SMOKE], predictions[STOCK]]
    run(["nnUNetv2_ensemble", "-i", *members, "-o", tmp_path / "ensemble", "-np", "1"], env)

    image = sitk.ReadImage(str(source))
    member = sitk.ReadImage(str(members[0] / f"{case}.nii.gz"))
    merged = sitk.ReadImage(str(tmp_path / "ensemble" / f"{case}.nii.gz"))
    for written in (member, merged):
        assert written.GetSize() == image.GetSize() == (64, 64, 8)
        assert np.allclose(written.GetSpacing(), image.GetSpacing())
        assert np.allclose(written.GetOrigin(), image.GetOrigin())
        assert set(np.unique(sitk.GetArrayFromImage(written))) <= set(range(4))
    # The ensemble is the arg-max of the members' mean class probabilities.
    probabilities = [np.load(m / f"{case}.npz")["probabilities"] for m in members]
    assert probabilities[0].shape == probabilities[1].shape == (4, *sitk.GetArrayFromImage(image).shape)
    expected = np.mean(probabilities, axis=0).argmax(0)
    assert np.array_equal(sitk.GetArrayFromImage(merged), expected)
