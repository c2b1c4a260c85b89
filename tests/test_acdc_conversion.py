"""``smaformer convert-acdc`` on small synthetic trees in the exact SSL4MIS layout: lists, 3-D volumes in data/ and
2-D training slices in data/slices/. What it writes is checked against what the test wrote; each bad input is refused
with exit status 2, a message naming the list, volume or file, and nothing left in nnU-Net's folders."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from _conversion_helpers import leftovers, nnunet_env, read_case, run_main
from nnunet_cli import plan_and_preprocess

TRAIN = ["patient001", "patient002", "patient003", "patient004"]
VAL = ["patient005", "patient006"]
TEST = ["patient007", "patient008"]
SHAPE = (4, 24, 20)  # z, y, x


def _volume(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.random(shape, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    label[:, 4:10, 4:9], label[:, 10:16, 4:9], label[:, 4:12, 10:16] = 1, 2, 3
    return image, label


def _write_h5(path: Path, image: np.ndarray, label: np.ndarray) -> None:
    with h5py.File(path, "w") as file:
        file.create_dataset("image", data=image)
        file.create_dataset("label", data=label)


def write_ssl4mis(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The layout SSL4MIS gives ACDC: training patients as slices, validation and test patients as volumes; returns
    what each volume holds."""
    (root / "data" / "slices").mkdir(parents=True)
    written = {}
    for index, patient in enumerate(TRAIN + VAL + TEST):
        for frame in ("frame01", "frame02"):
            volume_id = f"{patient}_{frame}"
            image, label = written[volume_id] = _volume(10 * index + int(frame[-1]))
            if patient in TRAIN:
                for s in range(image.shape[0]):
                    _write_h5(root / "data" / "slices" / f"{volume_id}_slice_{s + 1}.h5", image[s], label[s])
            else:
                _write_h5(root / "data" / f"{volume_id}.h5", image, label)
    for name, patients in (("train.list", TRAIN), ("val.list", VAL), ("test.list", TEST)):
        (root / name).write_text("".join(f"{p}_{f}\n" for p in patients for f in ("frame01", "frame02")))
    return written


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "ACDC"
    return root, write_ssl4mis(root)


def _convert(root: Path, env: dict, *extra: object):
    return run_main(["convert-acdc", root, "-np", "1", "--no-progress", *extra], env)


def test_volumes_slices_folds_and_geometry(source, tmp_path):
    root, written = source
    env = nnunet_env(tmp_path / "nnunet")
    assert _convert(root, env, "-d", "27").returncode == 0
    dataset = Path(env["nnUNet_raw"]) / "Dataset027_ACDC"
    training = [f"{p}_{f}" for p in TRAIN + VAL for f in ("frame01", "frame02")]
    test = [f"{p}_{f}" for p in TEST for f in ("frame01", "frame02")]
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir()) == sorted(f"{v}_0000.nii.gz" for v in training)
    assert sorted(p.name for p in (dataset / "labelsTs").iterdir()) == sorted(f"{v}.nii.gz" for v in test)
    for volume_id, folder in [("patient001_frame02", "Tr"), ("patient006_frame01", "Tr"), ("patient008_frame01", "Ts")]:
        image, spacing, _, _ = read_case(dataset / f"images{folder}" / f"{volume_id}_0000.nii.gz")
        label, label_spacing, _, _ = read_case(dataset / f"labels{folder}" / f"{volume_id}.nii.gz")
        np.testing.assert_array_equal(image, written[volume_id][0])  # slices restacked in order 1..N
        np.testing.assert_array_equal(label, written[volume_id][1])
        assert spacing == label_spacing == pytest.approx((1.5, 1.5, 10.0))  # x, y, z
    info = json.loads((dataset / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
    assert info["channel_names"] == {"0": "cineMRI"} and info["numTraining"] == 12 and info["numTest"] == 4
    assert "10 x 1.5 x 1.5" in info["spacing"]

    splits = json.loads((Path(env["nnUNet_preprocessed"]) / "Dataset027_ACDC" / "splits_final.json").read_text())
    assert splits == json.loads((dataset / "splits_final.json").read_text()) and len(splits) == 5
    patients = [{v.split("_")[0] for v in fold["val"]} for fold in splits]
    for fold, val_patients in zip(splits, patients):
        assert not val_patients & {v.split("_")[0] for v in fold["train"]}  # a patient on one side only
        assert sorted(fold["train"] + fold["val"]) == sorted(training)
        assert all(f"{p}_frame01" in fold["val"] and f"{p}_frame02" in fold["val"] for p in val_patients)
    assert sorted(v for fold in splits for v in fold["val"]) == sorted(training)  # each validated once

    # The same folds again (deterministic), and the spacing as asked.
    other = nnunet_env(tmp_path / "again")
    assert _convert(root, other, "-d", "28", "--spacing", "5", "1.25", "1.2").returncode == 0
    again = Path(other["nnUNet_preprocessed"]) / "Dataset028_ACDC" / "splits_final.json"
    assert json.loads(again.read_text()) == splits
    _, spacing, _, _ = read_case(Path(other["nnUNet_raw"]) / "Dataset028_ACDC" / "imagesTs" /
                                 "patient007_frame01_0000.nii.gz")
    assert spacing == pytest.approx((1.2, 1.25, 5.0))


def test_nnunet_plans_it_with_z_scoring(source, tmp_path):
    root, _ = source
    env = nnunet_env(tmp_path / "nnunet")
    assert _convert(root, env, "-d", "29", "--name", "ACDCtiny").returncode == 0
    plan_and_preprocess(env, 29)  # --verify_dataset_integrity included
    plans = json.loads((Path(env["nnUNet_preprocessed"]) / "Dataset029_ACDCtiny" / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["2d"]["normalization_schemes"] == ["ZScoreNormalization"]


def _missing_list(root: Path) -> str:
    (root / "val.list").unlink()
    return f"{root / 'val.list'} is missing"


def _patient_in_two_lists(root: Path) -> str:
    (root / "test.list").write_text((root / "test.list").read_text() + "patient002_frame01\n")
    return "patient002 is in both train.list and test.list"


def _slice_gap(root: Path) -> str:
    (root / "data" / "slices" / "patient003_frame02_slice_2.h5").unlink()
    return "patient003_frame02: slices 2 missing"


def _slice_shapes_differ(root: Path) -> str:
    image, label = _volume(0, (1, 24, 18))
    _write_h5(root / "data" / "slices" / "patient004_frame01_slice_3.h5", image[0], label[0])
    return "patient004_frame01_slice_3.h5 is (24, 18)"


def _image_label_mismatch(root: Path) -> str:
    image, _ = _volume(0)
    _write_h5(root / "data" / "patient007_frame02.h5", image, np.zeros((4, 24, 19), np.uint8))
    return f"{root / 'data' / 'patient007_frame02.h5'}: image (4, 24, 20) and label (4, 24, 19)"


def _label_out_of_range(root: Path) -> str:
    image, label = _volume(0)
    label[0, 0, 0] = 4
    _write_h5(root / "data" / "patient005_frame01.h5", image, label)
    path = root / "data" / "patient005_frame01.h5"
    return f"patient005_frame01: label {path} holds value(s) [4] outside the expected 0-3"


def _unreadable_h5(root: Path) -> str:
    (root / "data" / "patient008_frame02.h5").write_bytes(b"not an h5 file")
    return f"cannot read {root / 'data' / 'patient008_frame02.h5'}"


def _no_file_for_a_volume(root: Path) -> str:
    (root / "data" / "patient006_frame01.h5").unlink()
    return "patient006_frame01 (val.list): neither"


@pytest.mark.parametrize("break_it", [_missing_list, _patient_in_two_lists, _slice_gap, _slice_shapes_differ,
                                      _image_label_mismatch, _label_out_of_range, _unreadable_h5,
                                      _no_file_for_a_volume], ids=lambda f: f.__name__.strip("_"))
def test_bad_sources_are_refused_and_nothing_is_written(source, tmp_path, break_it):
    root, _ = source
    message = break_it(root)
    env = nnunet_env(tmp_path / "nnunet")
    result = _convert(root, env, "-d", "27")
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert leftovers(env) == []


def test_an_existing_dataset_id_is_refused(source, tmp_path):
    root, _ = source
    env = nnunet_env(tmp_path / "nnunet")
    other = Path(env["nnUNet_raw"]) / "Dataset027_Other"
    other.mkdir(parents=True)
    result = _convert(root, env, "-d", "27")
    assert result.returncode == 2 and f"dataset id 27 is already used by {other}" in result.stderr
    assert leftovers(env) == [other]
    assert _convert(root, env, "-d", "30").returncode == 0
    refused = _convert(root, env, "-d", "30")  # its own earlier conversion: --overwrite replaces it
    assert refused.returncode == 2 and "Dataset030_ACDC already exists" in refused.stderr
    assert _convert(root, env, "-d", "30", "--overwrite").returncode == 0
