"""The original's whole-slice protocol as an nnU-Net configuration: ``smaformer add-configuration``, training and
prediction on it through nnU-Net's own commands, the whole-slice sampling, the batch cap.

Dataset503_WideCT: 5 CT cases of 6 x 128 x 128 voxels of 0.8 x 0.8 x 3 mm; a 64 x 64 whole-slice configuration
halves the resolution (1.6 mm), as 256 does for Synapse's 512 x 512 slices of 0.76 mm.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_cli import SMOKE, model_folder, nnunet_env, plan_and_preprocess, predict, run, run_main, trainer_in_process
from synthetic import write_dataset

DATASET = "Dataset503_WideCT"
SIZE = 64
NAME = "2d_wholeslice"


def plans_path(env) -> Path:
    return Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans.json"


def tmp_leftovers(env) -> list:
    return sorted(p.name for p in (Path(env["nnUNet_preprocessed"]) / DATASET).iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """Dataset503 planned for 2d, then given its whole-slice configuration; the plans before that."""
    env = nnunet_env(tmp_path_factory.mktemp("nnunet_wide"))
    write_dataset(Path(env["nnUNet_raw"]), 503, "WideCT", num_cases=5, num_labels=3, shape=(6, 128, 128), seed=5)
    plan_and_preprocess(env, 503)
    before = plans_path(env).read_text()
    two_d_folder = Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans_2d"
    two_d_files = {p.name: p.stat().st_mtime_ns for p in two_d_folder.iterdir()}
    result = run(["smaformer", "add-configuration", "-d", "503", "--size", SIZE, "-np", "1"], env)
    return {"env": env, "plans_before": json.loads(before), "two_d_files": two_d_files, "stdout": result.stdout,
            "stderr": result.stderr}


def test_plans_entry_follows_the_median_slice(wide):
    plans = json.loads(plans_path(wide["env"]).read_text())
    entry = plans["configurations"][NAME]
    assert entry["inherits_from"] == "2d"
    # 128 voxels of 0.8 mm become 64: 1.6 mm.
    assert entry["spacing"] == pytest.approx([1.6, 1.6])
    assert entry["patch_size"] == [SIZE, SIZE] and entry["median_image_size_in_voxels"] == [SIZE, SIZE]
    assert entry["data_identifier"] == "nnUNetPlans_2d_wholeslice"
    assert entry["smaformer_whole_slice"] == {"size": SIZE}
    # nnU-Net's planner at 64 x 64: its 5 % cap over 6 slices x 64 x 64 x 5 cases allows round(1.5) = 2 patches.
    assert entry["batch_size"] == 2
    assert entry["architecture"]["network_class_name"].endswith("PlainConvUNet")
    # Everything else untouched.
    before = wide["plans_before"]
    assert {k: v for k, v in plans["configurations"].items() if k != NAME} == before["configurations"]
    assert {k: v for k, v in plans.items() if k != "configurations"} == {k: v for k, v in before.items()
                                                                        if k != "configurations"}
    assert "added" in wide["stdout"] and "Preprocessing cases" in wide["stderr"]  # nnU-Net's progress bar


def test_preprocessed_at_the_new_spacing(wide):
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    env = wide["env"]
    folder = Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans_2d_wholeslice"
    dataset = nnUNetDatasetBlosc2(str(folder))
    assert sorted(dataset.identifiers) == [f"case_{i:03d}" for i in range(5)]
    data, seg, _, properties = dataset.load_case("case_000")
    assert tuple(data.shape) == (1, 6, SIZE, SIZE) and tuple(seg.shape) == (1, 6, SIZE, SIZE)
    assert set(np.unique(np.asarray(seg))) <= {0, 1, 2, 3}
    # The 2d configuration's data were not rewritten, and nothing temporary is left.
    two_d = Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans_2d"
    assert {p.name: p.stat().st_mtime_ns for p in two_d.iterdir()} == wide["two_d_files"]
    assert tmp_leftovers(env) == []


def test_running_again_changes_nothing(wide):
    env = wide["env"]
    plans = plans_path(env).read_bytes()
    folder = Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans_2d_wholeslice"
    files = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    result = run(["smaformer", "add-configuration", "-d", DATASET, "--size", SIZE], env)
    assert "unchanged" in result.stdout
    assert plans_path(env).read_bytes() == plans
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == files


@pytest.mark.parametrize("args, message", [
    (["-d", "999"], "999"),
    (["-d", "503", "-p", "nnUNetResEncUNetMPlans"], "plan the dataset first"),
    (["-d", "503", "--size", "96"], "other settings"),
    (["-d", "503", "--name", "2d__x"], "'__'"),
    (["-d", "503", "--name", "3d_fullres"], "nnU-Net's own"),
])
def test_bad_input_is_named_and_changes_nothing(wide, args, message):
    env = wide["env"]
    plans = plans_path(env).read_bytes()
    result = run_main(["add-configuration", *args], env)  # in this process: these fail before any work
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert plans_path(env).read_bytes() == plans
    assert tmp_leftovers(env) == []


def test_a_size_off_the_network_stride_is_refused(wide):
    result = run(["smaformer", "add-configuration", "-d", "503", "--size", "100"], wide["env"], check=False)
    assert result.returncode == 2 and "multiple of 32" in result.stderr
    assert tmp_leftovers(wide["env"]) == []


def test_plans_without_2d_are_refused(wide):
    env = wide["env"]
    plans = json.loads(plans_path(wide["env"]).read_text())
    plans["plans_name"] = "nnUNetPlans3dOnly"
    plans["configurations"] = {k: v for k, v in plans["configurations"].items() if k.startswith("3d")}
    other = plans_path(env).with_name("nnUNetPlans3dOnly.json")
    other.write_text(json.dumps(plans))
    result = run_main(["add-configuration", "-d", "503", "-p", "nnUNetPlans3dOnly"], env)
    assert result.returncode == 2 and "no '2d' configuration" in result.stderr
    assert json.loads(other.read_text()) == plans


@pytest.fixture(scope="module")
def wholeslice_model(wide) -> Path:
    run(["nnUNetv2_train", "503", NAME, "0", "-tr", SMOKE, "-device", "cpu"], wide["env"])
    return model_folder(wide["env"], DATASET, SMOKE, NAME)


def test_train_on_the_whole_slice_configuration(wholeslice_model):
    plans = json.loads((wholeslice_model / "plans.json").read_text())
    entry = plans["configurations"][NAME]
    # The trainer keeps the configuration's slice-sized patch (not its own 256 x 256).
    assert entry["patch_size"] == [SIZE, SIZE] and entry["batch_size"] == 2
    assert (wholeslice_model / "fold_0" / "checkpoint_final.pth").is_file()
    log = next((wholeslice_model / "fold_0").glob("training_log_*.txt")).read_text()
    assert "'patch_size': [64, 64]" in log


def test_predict_returns_the_original_grid(wide, wholeslice_model, tmp_path):
    env = wide["env"]
    source = Path(env["nnUNet_raw"]) / DATASET / "imagesTr" / "case_001_0000.nii.gz"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / source.name).symlink_to(source)
    # With worker processes, as by nnU-Net's defaults: the configuration has to reach them.
    predict(env, tmp_path / "in", tmp_path / "out", 503, SMOKE, configuration=NAME, workers=True)
    prediction, image = sitk.ReadImage(str(tmp_path / "out" / "case_001.nii.gz")), sitk.ReadImage(str(source))
    assert prediction.GetSize() == image.GetSize() == (128, 128, 6)
    assert np.allclose(prediction.GetSpacing(), image.GetSpacing())
    assert np.allclose(prediction.GetOrigin(), image.GetOrigin())
    assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2, 3}


def test_stock_network_builds_for_it(wide):
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    configuration = PlansManager(str(plans_path(wide["env"]))).get_configuration(NAME)
    network = get_network_from_plans(configuration.network_arch_class_name, configuration.network_arch_init_kwargs,
                                     configuration.network_arch_init_kwargs_req_import, 1, 4, deep_supervision=False)
    with torch.no_grad():
        assert network(torch.zeros(1, 1, SIZE, SIZE)).shape == (1, 4, SIZE, SIZE)


def test_overwrite_replaces_it(wide):
    env = wide["env"]
    run(["smaformer", "add-configuration", "-d", "503", "--name", "2d_ws96", "--size", "96", "-np", "1"], env)
    result = run(["smaformer", "add-configuration", "-d", "503", "--name", "2d_ws96", "--size", "128", "-np", "1",
                  "--overwrite"], env)
    assert "replaced" in result.stdout
    entry = json.loads(plans_path(env).read_text())["configurations"]["2d_ws96"]
    assert entry["spacing"] == pytest.approx([0.8, 0.8]) and entry["patch_size"] == [128, 128]
    assert tmp_leftovers(env) == []


INITIAL = 91  # a training patch with nnU-Net's margin for rotations around a 64 x 64 patch


def _loaders(wide, oversample: float):
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_smaformer.whole_slice.loader import WholeSliceDataLoader

    env = wide["env"]
    dataset = nnUNetDatasetBlosc2(str(Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans_2d_wholeslice"))
    dataset_json = json.loads((Path(env["nnUNet_raw"]) / DATASET / "dataset.json").read_text())
    labels = PlansManager(str(plans_path(env))).get_label_manager(dataset_json)
    return dataset, {cls: cls(dataset, 2, (INITIAL, INITIAL), (SIZE, SIZE), labels,
                              oversample_foreground_percent=oversample)
                     for cls in (nnUNetDataLoader, WholeSliceDataLoader)}


def test_foreground_samples_keep_the_whole_slice_in_view(wide):
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

    from nnunetv2_smaformer.whole_slice.loader import WholeSliceDataLoader

    dataset, loaders = _loaders(wide, oversample=1.0)
    centred = -((INITIAL - SIZE) // 2)
    np.random.seed(0)
    stock_offsets = set()
    for case in dataset.identifiers:
        _, seg, _, properties = dataset.load_case(case)
        seg = np.asarray(seg)
        for _ in range(10):
            lower, upper = loaders[WholeSliceDataLoader].get_bbox(seg.shape[1:], True, properties["class_locations"])
            assert lower[1:] == [centred, centred] and upper[1:] == [centred + INITIAL] * 2
            assert (seg[0, lower[0]] > 0).any(), "a foreground sample comes from a slice with foreground"
            lower, _ = loaders[nnUNetDataLoader].get_bbox(seg.shape[1:], True, properties["class_locations"])
            stock_offsets.add(tuple(lower[1:]))
    # nnU-Net's own loader centres on the foreground voxel instead and moves the slice around.
    assert len(stock_offsets) > 1 and any(offset != (centred, centred) for offset in stock_offsets)


def test_delivered_samples_are_the_whole_slice_padded(wide):
    from nnunetv2_smaformer.whole_slice.loader import WholeSliceDataLoader

    dataset, loaders = _loaders(wide, oversample=1.0)
    slices = {case: np.asarray(dataset.load_case(case)[0])[0] for case in dataset.identifiers}
    np.random.seed(1)
    margin = (INITIAL - SIZE) // 2
    for _ in range(3):
        batch = loaders[WholeSliceDataLoader].generate_train_batch()
        for data, case in zip(batch["data"].numpy(), batch["keys"]):
            assert data.shape == (1, INITIAL, INITIAL)
            inner = data[0, margin:margin + SIZE, margin:margin + SIZE]
            assert any(np.array_equal(inner, s) for s in slices[case]), "the sample is a whole slice of its case"
            outer = data[0].copy()
            outer[margin:margin + SIZE, margin:margin + SIZE] = 0
            assert not outer.any(), "around the slice only nnU-Net's zero padding"


def test_the_trainer_uses_whole_slice_sampling_on_that_configuration_only(wide, monkeypatch):
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as trainer_module

    from nnunetv2_smaformer.whole_slice.loader import WholeSliceDataLoader

    for configuration, loader_class in {NAME: WholeSliceDataLoader, "2d": nnUNetDataLoader}.items():
        trainer = trainer_in_process(wide["env"], monkeypatch, DATASET, SMOKE, configuration)
        trainer.initialize()
        train, val = trainer.get_dataloaders()
        assert type(train.data_loader) is loader_class and type(val.data_loader) is loader_class
    assert trainer_module.nnUNetDataLoader is nnUNetDataLoader  # restored after building


def test_batch_cap_counts_the_configurations_own_voxels():
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_smaformer.training.trainer import approximate_dataset_voxels, capped_batch_size

    # Synapse-like: 18 volumes of 147 slices, 512 x 512 at native spacing, 256 x 256 whole slices.
    architecture = {"network_class_name": "PlainConvUNet", "arch_kwargs": {}, "_kw_requires_import": []}
    plans = {"plans_name": "nnUNetPlans", "original_median_shape_after_transp": [147, 512, 512],
             "configurations": {
                 "3d_fullres": {"median_image_size_in_voxels": [147, 512, 512], "patch_size": [64, 160, 160],
                                "architecture": architecture},
                 "2d": {"median_image_size_in_voxels": [512, 512], "patch_size": [512, 512],
                        "architecture": architecture},
                 NAME: {"inherits_from": "2d", "median_image_size_in_voxels": [256, 256], "patch_size": [256, 256],
                        "smaformer_whole_slice": {"size": 256}}}}
    manager = PlansManager(plans)
    assert approximate_dataset_voxels(manager, "2d", 18) == 147 * 512 * 512 * 18
    assert approximate_dataset_voxels(manager, NAME, 18) == 147 * 256 * 256 * 18  # 4x fewer
    # A small dataset: 4 volumes of 20 slices; 5 % of their whole slices is 4 patches of 256 x 256, not 16.
    plans["configurations"]["3d_fullres"]["median_image_size_in_voxels"] = [20, 512, 512]
    manager = PlansManager(plans)
    assert capped_batch_size(28, approximate_dataset_voxels(manager, NAME, 4), (256, 256)) == 4
    assert capped_batch_size(28, approximate_dataset_voxels(manager, "2d", 4), (256, 256)) == 16
