"""The synthetic Synapse phantom: organs, HU values, determinism and the two source layouts."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import SimpleITK as sitk

from _conversion_helpers import nnunet_env, read_case, run_cli
from nnunetv2_smaformer import synapse
from nnunetv2_smaformer.conversion.phantom import (
    AIR_HU,
    make_phantom,
    make_phantom_case,
    parse_case_selection,
)

# Organ HU the generator paints (before noise), by BTCV label.
ORGAN_HU = {1: 50, 2: 150, 3: 150, 4: 15, 5: 40, 6: 60, 7: 25, 8: 210, 9: 130, 10: 165, 11: 45, 12: 30, 13: 30}


def test_case_shape_dtype_and_determinism() -> None:
    case = make_phantom_case(21, size=24, slices=5, seed=7)
    assert case.hu.shape == case.btcv_label.shape == (5, 24, 24)  # (z, y, x)
    assert case.hu.dtype == np.int16 and case.btcv_label.dtype == np.uint8
    again = make_phantom_case(21, size=24, slices=5, seed=7)
    assert np.array_equal(case.hu, again.hu) and np.array_equal(case.btcv_label, again.btcv_label)
    assert (case.spacing, case.origin, case.direction) == (again.spacing, again.origin, again.direction)
    other_seed = make_phantom_case(21, size=24, slices=5, seed=8)
    other_case = make_phantom_case(22, size=24, slices=5, seed=7)
    assert not np.array_equal(case.hu, other_seed.hu)
    assert not np.array_equal(case.btcv_label, other_case.btcv_label)


@pytest.mark.parametrize("size,slices", [(16, 4), (32, 8), (64, 12)])
def test_all_13_organs_with_ct_like_values(size: int, slices: int) -> None:
    for case_id in synapse.ALL_CASES:
        case = make_phantom_case(case_id, size=size, slices=slices, seed=1)
        assert np.array_equal(np.unique(case.btcv_label), np.arange(14)), case_id
        for label, hu in ORGAN_HU.items():
            values = case.hu[case.btcv_label == label].astype(float)
            # Noise of 12 HU around the organ value: the mean stays close even for a few voxels.
            assert abs(values.mean() - hu) < 30, (case_id, label, values.mean())
        assert case.hu.min() >= -1024 and case.hu.max() <= 3071
        corner = case.hu[:, 0, 0].astype(float)  # outside the body: air
        assert abs(corner.mean() - AIR_HU) < 40
        # Organs mapped away by the benchmark protocol exist, so conversion must drop them.
        mapped = case.benchmark_label()
        assert set(np.unique(mapped)) == set(range(9))
        assert not np.any(mapped[np.isin(case.btcv_label, [5, 9, 10, 12, 13])])


def test_geometry_is_btcv_like() -> None:
    directions = set()
    for case_id in synapse.ALL_CASES:
        case = make_phantom_case(case_id, size=16, slices=4)
        assert 0.59 <= case.spacing[0] == case.spacing[1] <= 0.98
        assert case.spacing[2] in (2.5, 3.0, 5.0)
        directions.add(case.direction)
    assert len(directions) == 2  # flipped and unflipped cases


def test_btcv_layout_all_30_cases(tmp_path: Path) -> None:
    truth = make_phantom(tmp_path, "btcv", size=32, slices=8, seed=2)
    root = tmp_path / "RawData" / "Training"
    assert sorted(p.name for p in (root / "img").iterdir()) == [f"img{i:04d}.nii.gz" for i in synapse.ALL_CASES]
    assert sorted(p.name for p in (root / "label").iterdir()) == [f"label{i:04d}.nii.gz" for i in synapse.ALL_CASES]
    for case in truth:
        image, spacing, origin, direction = read_case(root / "img" / f"img{case.case_id:04d}.nii.gz")
        label, l_spacing, l_origin, l_direction = read_case(root / "label" / f"label{case.case_id:04d}.nii.gz")
        assert np.array_equal(image, case.hu) and np.array_equal(label, case.btcv_label)
        np.testing.assert_allclose(spacing, case.spacing, atol=1e-5)
        np.testing.assert_allclose(origin, case.origin, atol=1e-4)
        np.testing.assert_allclose(direction, case.direction, atol=1e-6)
        assert (l_spacing, l_origin, l_direction) == (spacing, origin, direction)


def test_transunet_layout_all_30_cases(tmp_path: Path) -> None:
    truth = {c.case_id: c for c in make_phantom(tmp_path, "transunet", size=32, slices=8, seed=2)}
    npz = sorted(p.name for p in (tmp_path / "train_npz").iterdir())
    assert npz == [f"case{i:04d}_slice{s:03d}.npz" for i in synapse.TRAIN_CASES for s in range(8)]
    h5 = sorted(p.name for p in (tmp_path / "test_vol_h5").iterdir())
    assert h5 == [f"case{i:04d}.npy.h5" for i in synapse.TEST_CASES]
    lists = tmp_path / "lists" / "lists_Synapse"
    assert (lists / "train.txt").read_text().split() == [n[: -len(".npz")] for n in npz]
    assert (lists / "test_vol.txt").read_text().split() == [f"case{i:04d}" for i in synapse.TEST_CASES]

    for case_id in synapse.TRAIN_CASES[:3]:
        case = truth[case_id]
        for z in range(8):
            with np.load(tmp_path / "train_npz" / f"case{case_id:04d}_slice{z:03d}.npz") as data:
                assert sorted(data.files) == ["image", "label"]
                assert data["image"].shape == (32, 32) and data["image"].dtype == np.float32
                assert 0.0 <= data["image"].min() and data["image"].max() <= 1.0
                np.testing.assert_allclose(400 * data["image"] - 125, np.clip(case.hu[z], -125, 275), atol=1e-3)
                assert np.array_equal(data["label"], case.benchmark_label()[z])
    for case_id in synapse.TEST_CASES[:3]:
        case = truth[case_id]
        with h5py.File(tmp_path / "test_vol_h5" / f"case{case_id:04d}.npy.h5") as handle:
            assert sorted(handle) == ["image", "label"]
            assert handle["image"].shape == (8, 32, 32)  # D x H x W
            np.testing.assert_array_equal(handle["image"][()], case.transunet_image())
            np.testing.assert_array_equal(handle["label"][()], case.benchmark_label())


@pytest.mark.parametrize("lists", ["beside", "none"])
def test_transunet_list_placement(tmp_path: Path, lists: str) -> None:
    make_phantom(tmp_path, "transunet", cases=[1, 5], size=16, slices=3, lists=lists)
    assert not (tmp_path / "lists").exists()
    assert (tmp_path / "train.txt").is_file() == (lists == "beside")
    if lists == "beside":
        assert (tmp_path / "train.txt").read_text().split() == [f"case0005_slice{s:03d}" for s in range(3)]


def test_parse_case_selection() -> None:
    assert parse_case_selection(["1", "0021", "case0005", 3]) == [1, 3, 5, 21]
    assert parse_case_selection(["test"]) == list(synapse.TEST_CASES)
    assert parse_case_selection(["train", "test"]) == list(synapse.ALL_CASES)
    assert parse_case_selection(["all", "2"]) == list(synapse.ALL_CASES)
    for bad in ("x", "case", "-1", "0"):
        with pytest.raises(ValueError):
            parse_case_selection([bad])


def test_make_phantom_cli(tmp_path: Path) -> None:
    env = nnunet_env(tmp_path)
    result = run_cli(["make-phantom", tmp_path / "b", "--layout", "btcv", "--size", "16", "--slices", "3",
                      "--cases", "1", "case0005", "--seed", "4"], env)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "b" / "RawData" / "Training"
    image, *_ = read_case(folder / "img" / "img0005.nii.gz")
    label, *_ = read_case(folder / "label" / "label0005.nii.gz")
    assert image.shape == label.shape == (3, 16, 16)  # --slices, --size
    assert sorted(p.name for p in (folder / "label").iterdir()) == ["label0001.nii.gz", "label0005.nii.gz"]
    # The organs the generator paints, at their HU (12 HU of noise): a phantom, as the command promises.
    for organ, hu in ORGAN_HU.items():
        if (label == organ).any():
            assert abs(image[label == organ].mean() - hu) < 30, organ
    # --seed: the same seed writes the same case, another seed another one.
    for seed, same in (("4", True), ("5", False)):
        assert run_cli(["make-phantom", tmp_path / f"b{seed}", "--layout", "btcv", "--size", "16", "--slices", "3",
                        "--cases", "5", "--seed", seed], env).returncode == 0
        other, *_ = read_case(tmp_path / f"b{seed}" / "RawData" / "Training" / "img" / "img0005.nii.gz")
        assert np.array_equal(other, image) == same

    result = run_cli(["make-phantom", tmp_path / "t", "--layout", "transunet", "--size", "16", "--slices", "3",
                      "--cases", "test", "--lists", "beside"], env)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "t" / "test_vol_h5").iterdir())) == 12
    assert (tmp_path / "t" / "test_vol.txt").is_file() and not (tmp_path / "t" / "train_npz").exists()

    again = run_cli(["make-phantom", tmp_path / "b", "--layout", "btcv", "--size", "16"], env)
    assert again.returncode == 2 and "already holds RawData" in again.stderr
    bad = run_cli(["make-phantom", tmp_path / "c", "--layout", "btcv", "--cases", "seven"], env)
    assert bad.returncode == 2 and "seven" in bad.stderr
    tiny = run_cli(["make-phantom", tmp_path / "c", "--layout", "btcv", "--size", "4"], env)
    assert tiny.returncode == 2 and "--size" in tiny.stderr


def test_phantom_converts_with_default_cli_sizes(tmp_path: Path) -> None:
    """make-phantom's defaults (64 x 64 x 16) feed convert-synapse end to end, as a demo would."""
    env = nnunet_env(tmp_path)
    made = run_cli(["make-phantom", tmp_path / "src", "--layout", "transunet", "--cases", "1", "5"], env)
    assert made.returncode == 0
    result = run_cli(["convert-synapse", tmp_path / "src", "-d", "50", "-np", "1"], env)
    assert result.returncode == 0, result.stderr
    label = sitk.ReadImage(str(tmp_path / "nnUNet_raw" / "Dataset050_Synapse" / "labelsTr" / "case0005.nii.gz"))
    assert label.GetSize() == (64, 64, 16)
    # The converted labels are the source's slices, read back from the TransUNet files themselves.
    slices = [np.load(tmp_path / "src" / "train_npz" / f"case0005_slice{z:03d}.npz")["label"] for z in range(16)]
    assert np.array_equal(sitk.GetArrayFromImage(label), np.stack(slices).astype(np.uint8))
