"""nnU-Net's Residual Encoder presets as a method: a ResEnc-planned stock model in ``smaformer compare`` and a
whole-slice configuration added to ResEnc plans."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_cli import SMOKE, predict, run, run_main
from shared import build_once

STOCK = "nnUNetTrainer_compareTest"
DATASET = "Dataset501_TinyCT"
RESENC_PLANS = "nnUNetResEncUNetMPlans"


@pytest.fixture(scope="module")
def resenc(ct, predictions, tmp_path_factory) -> dict[str, Path]:
    """Dataset501 planned with nnUNetPlannerResEncM (its 2d shares nnUNetPlans_2d's preprocessed data), stock
    nnU-Net's smoke-sized trainer trained on those plans' 2d, and its predictions of the shared validation images."""
    def build(root: Path) -> None:
        run(["nnUNetv2_plan_experiment", "-d", "501", "-pl", "nnUNetPlannerResEncM"], ct)
        run(["nnUNetv2_train", "501", "2d", "0", "-tr", STOCK, "-p", RESENC_PLANS, "-device", "cpu"], ct)
        predict(ct, predictions["images"], root / "pred", 501, STOCK, "-p", RESENC_PLANS)

    root = build_once(tmp_path_factory, "resenc", build)
    return {"model": Path(ct["nnUNet_results"]) / DATASET / f"{STOCK}__{RESENC_PLANS}__2d", "pred": root / "pred"}


def test_a_resenc_model_is_a_compare_method_with_its_compute(ct, smoke_model, stock_model, predictions, resenc,
                                                              tmp_path):
    out = tmp_path / "report"
    result = run_main(["compare", "--method", smoke_model, predictions[SMOKE], "--method", stock_model,
                       predictions[STOCK], "--method", resenc["model"], resenc["pred"],
                       "--gt", Path(ct["nnUNet_raw"]) / DATASET / "labelsTr", "-o", out, "--no-network-benchmark"], ct)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    # Two methods share the trainer, so those two are named by their model folders.
    resenc_key = resenc["model"].name
    assert list(report["models"]) == [SMOKE, stock_model.name, resenc_key]
    facts = report["models"][resenc_key]
    assert facts["architecture"] == "ResidualEncoderUNet" and facts["plans"] == RESENC_PLANS
    assert report["models"][stock_model.name]["architecture"] == "PlainConvUNet"
    plans = json.loads((resenc["model"] / "plans.json").read_text())
    assert facts["patch_size"] == plans["configurations"]["2d"]["patch_size"]
    # Compute next to accuracy: parameters, GMACs per patch and epoch time of each method.
    assert facts["parameters"] > report["models"][stock_model.name]["parameters"] > 0 and facts["gmacs"] > 0
    assert facts["epochs"] == 1 and facts["epoch_time_median_s"] > 0
    assert [row["method"] for row in report["paired"] if row["label"] == "mean"] == [stock_model.name, resenc_key]
    markdown = (out / "report.md").read_text()
    assert f"{RESENC_PLANS} / 2d" in markdown and "ResidualEncoderUNet" in markdown


def test_whole_slice_configuration_on_resenc_plans(ct, resenc):
    result = run_main(["add-configuration", "-d", "501", "-p", RESENC_PLANS, "--size", "64", "-np", "1"], ct)
    assert result.returncode == 0, result.stderr
    plans = json.loads((Path(ct["nnUNet_preprocessed"]) / DATASET / f"{RESENC_PLANS}.json").read_text())
    entry = plans["configurations"]["2d_wholeslice"]
    # The ResEnc planner chose the architecture: residual encoder blocks, as in the plans' own 2d.
    assert entry["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
    assert entry["architecture"]["arch_kwargs"]["n_blocks_per_stage"][:2] == [1, 3]
    assert entry["patch_size"] == [64, 64] and entry["data_identifier"] == f"{RESENC_PLANS}_2d_wholeslice"
    assert any((Path(ct["nnUNet_preprocessed"]) / DATASET / entry["data_identifier"]).iterdir())
