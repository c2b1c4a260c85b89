"""``smaformer compare``: SMAFormerV2 and a stock nnU-Net model trained on Dataset501, side by side.

Both models are trained and predict through nnU-Net's own console scripts; the report is checked
against the checkpoints and evaluation files it was made from.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from nnunet_cli import SMOKE, run
from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.model_folder import find_benchmark_results, inspect_model_folder, read_timing_file

STOCK = "nnUNetTrainer_compareTest"
DATASET = "Dataset501_TinyCT"
ORGANS = ["organ1", "organ2", "organ3"]


@pytest.fixture(scope="module")
def validation_cases(ct) -> list[str]:
    splits = json.loads((Path(ct["nnUNet_preprocessed"]) / DATASET / "splits_final.json").read_text())
    return sorted(splits[0]["val"])


def compare_cmd(ct, *methods, out: Path, extra=()) -> list[str]:
    cmd = ["smaformer", "compare"]
    for model, pred in methods:
        cmd += ["--method", model, pred]
    return [*cmd, "--gt", Path(ct["nnUNet_raw"]) / DATASET / "labelsTr", "-o", out, *extra]


@pytest.fixture(scope="module")
def report(ct, smoke_model, stock_model, predictions, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare_report") / "report"
    result = run(compare_cmd(ct, (smoke_model, predictions[SMOKE]), (stock_model, predictions[STOCK]), out=out,
                             extra=["--images", predictions["images"], "--time-cases", "1",
                                    "--steps", "1", "--warmup", "0"]), ct, timeout=900)
    return out, json.loads((out / "report.json").read_text()), result


def unique_parameter_count(checkpoint: Path) -> int:
    """Elements of a checkpoint's trainable weights, counting tensors shared under several names once.

    nnU-Net's U-Net decoder keeps a reference to the encoder, so its state dict names encoder weights
    twice; batch-norm running statistics are buffers, not parameters.
    """
    weights = torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"]
    return sum({t.data_ptr(): t.numel() for name, t in weights.items()
                if t.is_floating_point() and not name.endswith(("running_mean", "running_var"))}.values())


def test_report_evaluates_both_methods(report, validation_cases):
    out, data, _ = report
    assert set(data["methods"]) == {SMOKE, STOCK}
    assert data["dataset"] == DATASET
    for trainer, evaluation in data["methods"].items():
        assert sorted(evaluation["per_case"]) == validation_cases
        assert evaluation["n_cases"] == len(validation_cases) and evaluation["hd95_unit"] == "voxel"
        assert [evaluation["per_label"][str(i)]["name"] for i in (1, 2, 3)] == ORGANS
        dice = [evaluation["per_label"][str(i)]["dice"] for i in (1, 2, 3)]
        assert all(0.0 <= d <= 1.0 for d in dice)
        assert evaluation["mean"]["dice"] == pytest.approx(sum(dice) / 3)
        # The per-method files are the evaluate command's outputs, and report.json repeats them.
        assert json.loads((out / trainer / "synapse_eval.json").read_text()) == evaluation
        assert (out / trainer / "synapse_eval.csv").is_file() and (out / trainer / "synapse_eval.md").is_file()


def test_report_paired_differences(report, validation_cases):
    out, data, result = report
    rows = data["paired"]
    assert [(r["method"], r["reference"], r["label"]) for r in rows] == [
        (STOCK, SMOKE, label) for label in ("mean", "1", "2", "3")]
    per_case = {t: data["methods"][t]["per_case"] for t in (SMOKE, STOCK)}
    for row in rows:
        labels = ["1", "2", "3"] if row["label"] == "mean" else [row["label"]]
        differences = [sum(per_case[STOCK][c][lab]["dice"] - per_case[SMOKE][c][lab]["dice"] for lab in labels)
                       / len(labels) for c in validation_cases]
        assert row["n"] == len(validation_cases)
        assert row["mean_difference"] == pytest.approx(sum(differences) / len(differences))
        assert row["ci95"][0] <= row["mean_difference"] <= row["ci95"][1] and 0 <= row["wilcoxon_p"] <= 1
    markdown = (out / "report.md").read_text()
    assert "## Paired differences" in markdown and f"n = {len(validation_cases)} cases" in markdown
    assert "Not significant at 0.05" in markdown and "rarely reaches significance" in markdown
    assert f"{STOCK} - {SMOKE}: mean DSC" in result.stdout


def test_report_model_facts(report, smoke_model, stock_model):
    _, data, _ = report
    ours, stock = data["models"][SMOKE], data["models"][STOCK]
    assert ours["architecture"] == "SMAFormerV2" and ours["is_smaformer"]
    assert stock["architecture"] == "PlainConvUNet" and not stock["is_smaformer"]
    assert ours["patch_size"] == [256, 256] and stock["patch_size"] == [64, 64]
    # SMAFormerV2: the authors' implementation's 42.66 M within 1 %; the trained weights, exactly.
    assert ours["parameters"] == pytest.approx(42.66e6, rel=0.01)
    assert ours["parameters"] == unique_parameter_count(smoke_model / "fold_0" / "checkpoint_final.pth")
    assert stock["parameters"] == unique_parameter_count(stock_model / "fold_0" / "checkpoint_final.pth")
    assert 14.0 < ours["gmacs"] < 17.0  # 15.3 GMACs at 256x256 without input padding
    assert 0 < stock["gmacs"] < ours["gmacs"]
    for folder, facts in ((smoke_model, ours), (stock_model, stock)):
        logged = torch.load(folder / "fold_0" / "checkpoint_final.pth", weights_only=False)["logging"]
        expected = logged["epoch_end_timestamps"][0] - logged["epoch_start_timestamps"][0]
        assert facts["epochs"] == 1 and facts["epoch_times_s"] == [pytest.approx(expected)]
        assert facts["epoch_time_median_s"] > 0
        assert facts["benchmark_epochs"] == []  # the benchmark trainers run on CUDA only
        inference = facts["inference"]
        assert inference["source"].startswith("measured") and inference["device"] == "cpu"
        assert len(inference["per_case_s"]) == 1 and inference["seconds_per_case"] > 0


def test_report_network_side_by_side(report, smoke_model, stock_model):
    _, data, _ = report
    network = data["network"]
    assert network["settings"]["img_size"] == 256 and network["settings"]["batch_size"] == 2
    assert network["settings"]["smaformer_trainer"] == SMOKE
    ours, stock = network["networks"]["smaformer_v2"], network["networks"]["nnunet_2d"]
    assert ours["architecture"] == "SMAFormerV2" and stock["architecture"] == "PlainConvUNet"
    # Same builders as the trained models: the same parameter counts.
    assert ours["parameters"] == data["models"][SMOKE]["parameters"]
    assert stock["parameters"] == data["models"][STOCK]["parameters"]
    assert ours["gmacs_per_image"] == pytest.approx(data["models"][SMOKE]["gmacs"])
    # A convolutional network's cost grows with the pixels: 256x256 is 16x the planned 64x64 patch.
    assert stock["gmacs_per_image"] == pytest.approx(16 * data["models"][STOCK]["gmacs"], rel=1e-6)
    for record in (ours, stock):
        assert len(record["train_step_s"]) == 1 and record["train_step_median_s"] > 0
        assert record["inference_images_per_s"] > 0
        assert record["peak_memory_mib"] >= record["baseline_rss_mib"] > 0
        assert "peak RSS" in record["peak_memory_source"]
    # The parameter ratio of the two trained networks, counted from their checkpoints here.
    assert network["ratios_smaformer_over_nnunet"]["parameters"] == pytest.approx(
        unique_parameter_count(smoke_model / "fold_0" / "checkpoint_final.pth")
        / unique_parameter_count(stock_model / "fold_0" / "checkpoint_final.pth"))
    assert {"device", "threads", "torch", "nnunetv2"} <= set(data["environment"])


def test_report_markdown_and_chart(report):
    out, data, result = report
    markdown = (out / "report.md").read_text()
    assert f"| DSC (%) {SMOKE} | DSC (%) {STOCK} |" in markdown
    for label, organ in enumerate(ORGANS, start=1):
        cells = [f"{100 * data['methods'][t]['per_label'][str(label)]['dice']:.2f}" for t in (SMOKE, STOCK)]
        assert f"| {label} | {organ} | {cells[0]} | {cells[1]} |" in markdown
    assert f"| **mean** | **{100 * data['methods'][SMOKE]['mean']['dice']:.2f}** |" in markdown
    assert f"| parameters (M) | {data['models'][SMOKE]['parameters'] / 1e6:.2f} |" in markdown
    assert "| SMAFormerV2 | nnU-Net 2d | SMAFormerV2 / nnU-Net |" in markdown
    assert "Environment: CPU" in markdown and "![DSC per organ](dsc_per_organ.png)" in markdown

    png = (out / "dsc_per_organ.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    image = matplotlib.image.imread(out / "dsc_per_organ.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert SMOKE in result.stdout and "report.md" in result.stdout


def _fake_model_folder(root: Path, source: Path, name: str, dataset_name: str = DATASET,
                       checkpoint: bool = True) -> Path:
    folder = root / dataset_name / name
    folder.mkdir(parents=True)
    plans = json.loads((source / "plans.json").read_text())
    plans["dataset_name"] = dataset_name
    (folder / "plans.json").write_text(json.dumps(plans))
    shutil.copy(source / "dataset.json", folder / "dataset.json")
    if checkpoint:
        (folder / "fold_0").mkdir()
        (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    return folder


def test_model_folder_without_checkpoint_is_refused(ct, smoke_model, stock_model, predictions, tmp_path):
    untrained = _fake_model_folder(tmp_path, stock_model, f"{STOCK}__nnUNetPlans__2d", checkpoint=False)
    result = run(compare_cmd(ct, (smoke_model, predictions[SMOKE]), (untrained, predictions[STOCK]),
                             out=tmp_path / "out"), ct, check=False)
    assert result.returncode == 2
    assert str(untrained) in result.stderr and "fold_0/checkpoint_final.pth" in result.stderr
    assert not (tmp_path / "out").exists()


def test_methods_on_different_datasets_are_refused(ct, smoke_model, stock_model, predictions, tmp_path):
    other = _fake_model_folder(tmp_path, stock_model, f"{STOCK}__nnUNetPlans__2d", dataset_name="Dataset777_Other")
    result = run(compare_cmd(ct, (smoke_model, predictions[SMOKE]), (other, predictions[STOCK]),
                             out=tmp_path / "out"), ct, check=False)
    assert result.returncode == 2
    assert "different datasets" in result.stderr
    assert str(other) in result.stderr and "Dataset777_Other" in result.stderr and str(smoke_model) in result.stderr


def test_one_method_is_refused(ct, smoke_model, predictions, tmp_path):
    result = run(compare_cmd(ct, (smoke_model, predictions[SMOKE]), out=tmp_path / "out"), ct, check=False)
    assert result.returncode == 2 and "at least 2 methods" in result.stderr


def test_predictions_of_different_cases_are_refused(ct, smoke_model, stock_model, predictions, validation_cases,
                                                    tmp_path):
    labels = Path(ct["nnUNet_raw"]) / DATASET / "labelsTr"
    other_case = next(p for p in sorted(labels.iterdir()) if p.name[:-len(".nii.gz")] not in validation_cases)
    (tmp_path / "pred").mkdir()
    shutil.copy(other_case, tmp_path / "pred" / other_case.name)
    result = run(compare_cmd(ct, (smoke_model, predictions[SMOKE]), (stock_model, tmp_path / "pred"),
                             out=tmp_path / "out", extra=["--no-network-benchmark"]), ct, check=False)
    assert result.returncode == 2
    assert "different cases" in result.stderr and other_case.name[:-len(".nii.gz")] in result.stderr
    assert not (tmp_path / "out").exists()


def test_timing_file_convention(tmp_path):
    assert read_timing_file(tmp_path) is None
    (tmp_path / "timing.json").write_text(json.dumps({"seconds_per_case": 3.5, "device": "H100"}))
    timing = read_timing_file(tmp_path)
    assert timing["seconds_per_case"] == 3.5 and timing["device"] == "H100"
    assert timing["source"] == str(tmp_path / "timing.json")
    (tmp_path / "timing.json").write_text(json.dumps({"seconds": 3.5}))
    with pytest.raises(SMAFormerError, match="seconds_per_case"):
        read_timing_file(tmp_path)


def test_benchmark_results_of_the_trainer_family_are_found(tmp_path):
    """nnU-Net's benchmark trainers write benchmark_result.json into their own model folders."""
    dataset = tmp_path / DATASET
    plans = {"dataset_name": DATASET, "plans_name": "nnUNetPlans"}

    def model(trainer: str, benchmark: dict = None) -> Path:
        folder = dataset / f"{trainer}__nnUNetPlans__2d"
        (folder / "fold_0").mkdir(parents=True)
        (folder / "plans.json").write_text(json.dumps(plans))
        (folder / "dataset.json").write_text("{}")
        (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
        if benchmark is not None:
            (folder / "fold_0" / "benchmark_result.json").write_text(json.dumps(benchmark))
        return folder

    entry = {"fastest_epoch": 12.5, "gpu_name": "H100", "num_gpus": 1}
    model("nnUNetTrainerBenchmark_5epochs", {"host__a": entry, "host__b": {**entry, "fastest_epoch": "crashed"}})
    model("nnUNetTrainerSMAFormerV2_Benchmark_5epochs_noDataLoading", {"host__a": {**entry, "fastest_epoch": 30.0}})
    stock = inspect_model_folder(model("nnUNetTrainer"))
    ours = inspect_model_folder(model("nnUNetTrainerSMAFormerV2_noPretrain"))

    found = find_benchmark_results(stock, "nnUNetTrainer", "2d", 0)
    assert [(r["benchmark_trainer"], r["fastest_epoch_s"]) for r in found] == [("nnUNetTrainerBenchmark_5epochs", 12.5)]
    found = find_benchmark_results(ours, "nnUNetTrainerSMAFormerV2_noPretrain", "2d", 0)
    assert [(r["benchmark_trainer"], r["fastest_epoch_s"], r["gpu_name"]) for r in found] == [
        ("nnUNetTrainerSMAFormerV2_Benchmark_5epochs_noDataLoading", 30.0, "H100")]
    assert find_benchmark_results(stock, "nnUNetTrainer", "3d_fullres", 0) == []


def test_fold_checkpoint_unit_and_dataset_json_options(ct, smoke_model, stock_model, predictions, report, tmp_path):
    """--fold, --checkpoint, --hd95-unit mm and --dataset-json, each visible in the report."""
    results = tmp_path / "results" / DATASET
    for model in (smoke_model, stock_model):
        copy = results / model.name
        (copy / "fold_3").mkdir(parents=True)
        for name in ("plans.json", "dataset.json"):
            shutil.copy(model / name, copy / name)
        # The fold-0 weights under another fold and checkpoint name: only those options find them.
        (copy / "fold_3" / "checkpoint_best.pth").symlink_to(model / "fold_0" / "checkpoint_final.pth")
    renamed = tmp_path / "dataset.json"
    dataset_json = json.loads((smoke_model / "dataset.json").read_text())
    dataset_json["labels"] = {"background": 0, "liver": 1, "spleen": 2, "pancreas": 3}
    renamed.write_text(json.dumps(dataset_json))
    out = tmp_path / "report"
    run(compare_cmd(ct, (results / smoke_model.name, predictions[SMOKE]),
                    (results / stock_model.name, predictions[STOCK]),
                    out=out, extra=["--fold", "3", "--checkpoint", "checkpoint_best.pth", "--hd95-unit", "mm",
                                    "--dataset-json", renamed, "--no-network-benchmark"]), ct)
    data = json.loads((out / "report.json").read_text())
    assert data["fold"] == 3 and data["hd95_unit"] == "mm" and data["dataset_json"] == str(renamed)
    for trainer in (SMOKE, STOCK):
        assert data["models"][trainer]["checkpoint"].endswith("fold_3/checkpoint_best.pth")
        evaluation = data["methods"][trainer]
        assert [evaluation["per_label"][str(i)]["name"] for i in (1, 2, 3)] == ["liver", "spleen", "pancreas"]
        assert evaluation["hd95_unit"] == "mm"
        # The same predictions in millimetres: the DSC is unchanged, an HD95 in voxels of 0.8 x 0.8 x 3 mm is not.
        voxels = report[1]["methods"][trainer]
        assert evaluation["mean"]["dice"] == pytest.approx(voxels["mean"]["dice"])
        positive = [(evaluation["per_case"][c][k]["hd95"], voxels["per_case"][c][k]["hd95"])
                    for c in evaluation["per_case"] for k in ("1", "2", "3") if voxels["per_case"][c][k]["hd95"] > 0]
        assert positive and all(mm != pytest.approx(vx) for mm, vx in positive)
    assert data["network"] == {"skipped": "disabled (--no-network-benchmark)"}
    assert "HD95 (mm)" in (out / "report.md").read_text()
