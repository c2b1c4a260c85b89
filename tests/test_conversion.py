"""Synapse -> nnU-Net conversion, driven through ``smaformer convert-synapse``: the console script for
the full conversions and where the exit code itself is under test, ``cli.main.main`` in this process
for the options and the bad inputs.

Sources are phantoms with the exact BTCV / TransUNet layouts (nnunetv2_smaformer.conversion.phantom);
every converted case is compared voxel for voxel with the phantom's truth.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import SimpleITK as sitk

from _conversion_helpers import REPO, console_script, leftovers, nnunet_env, read_case, run_cli, run_main
from nnunetv2_smaformer import synapse
from nnunetv2_smaformer.conversion import synapse_raw
from nnunetv2_smaformer.conversion.btcv import scan as scan_btcv
from nnunetv2_smaformer.conversion.converter import convert_synapse
from nnunetv2_smaformer.conversion.phantom import PhantomCase, make_phantom
from nnunetv2_smaformer.conversion.sources import detect_layout
from nnunetv2_smaformer.errors import ConversionError
from nnunetv2_smaformer.nnunet_commands import plan_and_preprocess_command

SIZE, SLICES, SEED = 32, 6, 3
# The benchmark's BTCV -> 8-organ mapping, written out here so the tests do not trust the package's own table.
BENCHMARK_MAPPING = {8: 1, 4: 2, 3: 3, 2: 4, 6: 5, 11: 6, 1: 7, 7: 8}


def spec_labels(btcv_label: np.ndarray) -> np.ndarray:
    """Benchmark labels (0-8) of a BTCV label array, by the mapping above."""
    out = np.zeros_like(btcv_label, dtype=np.uint8)
    for src, dst in BENCHMARK_MAPPING.items():
        out[btcv_label == src] = dst
    return out
SMALL_CASES = (1, 2, 5, 6)  # two test and two training cases of the TransUNet split


# --------------------------------------------------------------------------------------------
# Benchmark facts
# --------------------------------------------------------------------------------------------


def test_label_mapping_and_split_follow_the_spec() -> None:
    lut = synapse_raw.btcv_to_benchmark_lut()
    assert {i: int(lut[i]) for i in range(14) if lut[i]} == BENCHMARK_MAPPING
    assert [int(lut[i]) for i in (0, 5, 9, 10, 12, 13)] == [0] * 6
    assert synapse_raw.nnunet_labels() == {
        "background": 0, "aorta": 1, "gallbladder": 2, "left_kidney": 3, "right_kidney": 4,
        "liver": 5, "pancreas": 6, "spleen": 7, "stomach": 8,
    }
    assert synapse.TEST_CASES == (1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38)
    assert len(synapse.TRAIN_CASES) == 18 and not set(synapse.TRAIN_CASES) & set(synapse.TEST_CASES)
    assert synapse.ALL_CASES == tuple(range(1, 11)) + tuple(range(21, 41))
    splits = synapse.make_splits(synapse.ALL_CASES)
    assert len(splits) == 1
    assert splits[0]["val"] == [f"case{i:04d}" for i in synapse.TEST_CASES]
    assert splits[0]["train"] == [f"case{i:04d}" for i in synapse.TRAIN_CASES]
    np.testing.assert_allclose(synapse_raw.transunet_to_hu(np.array([0.0, 0.5, 1.0])), [-125.0, 75.0, 275.0])
    np.testing.assert_allclose(synapse_raw.hu_to_transunet(np.array([-1000, -125, 75, 275, 1000])), [0, 0, 0.5, 1, 1])


# --------------------------------------------------------------------------------------------
# Full 30-case conversions
# --------------------------------------------------------------------------------------------


def _full_conversion(tmp_path_factory: pytest.TempPathFactory, layout: str, dataset_id: int) -> dict[str, object]:
    """All 30 phantom cases in ``layout`` converted by the console script."""
    base = tmp_path_factory.mktemp(f"full_{layout}")
    truth = make_phantom(base / "src", layout, size=SIZE, slices=SLICES, seed=SEED)
    env = nnunet_env(base)
    result = run_cli(["convert-synapse", base / "src", "-d", str(dataset_id), "-np", "2"], env)
    return {"base": base, "truth": truth, "env": env, "result": result, "id": dataset_id}


@pytest.fixture(scope="module")
def full_btcv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return _full_conversion(tmp_path_factory, "btcv", 11)


@pytest.fixture(scope="module")
def full_transunet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return _full_conversion(tmp_path_factory, "transunet", 12)


def _dataset_dir(run: dict[str, object]) -> Path:
    return Path(run["env"]["nnUNet_raw"]) / f"Dataset{run['id']:03d}_Synapse"  # type: ignore[index]


def _check_layout(run: dict[str, object], fmt: str) -> None:
    result = run["result"]
    assert result.returncode == 0, result.stderr  # type: ignore[union-attr]
    out = _dataset_dir(run)
    names = [f"case{i:04d}" for i in synapse.ALL_CASES]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"{n}_0000.nii.gz" for n in names]
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"{n}.nii.gz" for n in names]
    test_names = [f"case{i:04d}" for i in synapse.TEST_CASES]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == [f"{n}_0000.nii.gz" for n in test_names]
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == [f"{n}.nii.gz" for n in test_names]
    for name in test_names:
        for link, target in (
            (out / "imagesTs" / f"{name}_0000.nii.gz", out / "imagesTr" / f"{name}_0000.nii.gz"),
            (out / "labelsTs" / f"{name}.nii.gz", out / "labelsTr" / f"{name}.nii.gz"),
        ):
            assert link.is_symlink() and not os.path.isabs(os.readlink(link))  # relative: folder can move
            assert os.path.samefile(link, target)

    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"}
    assert dataset["labels"] == synapse_raw.nnunet_labels()
    assert dataset["numTraining"] == 30
    assert dataset["file_ending"] == ".nii.gz"
    assert dataset["converted_from"] == fmt

    splits_file = Path(run["env"]["nnUNet_preprocessed"]) / out.name / "splits_final.json"  # type: ignore[index]
    splits = json.loads(splits_file.read_text())
    assert splits == synapse.make_splits(synapse.ALL_CASES)
    assert json.loads((out / "splits_final.json").read_text()) == splits
    assert len(splits[0]["train"]) == 18 and len(splits[0]["val"]) == 12

    stderr = result.stderr  # type: ignore[union-attr]
    assert "Converting Synapse" in stderr and "30/30" in stderr  # tqdm bar on stderr
    assert "converted 30 case(s)" in stderr and f"{30 * SLICES} slices" in stderr
    assert "voxels per label" in stderr and "8 stomach=" in stderr
    assert "WARNING" not in stderr
    assert [p.name for p in Path(run["env"]["nnUNet_raw"]).iterdir()] == [out.name]  # no temp folder left


def test_btcv_full_conversion_layout(full_btcv: dict[str, object]) -> None:
    _check_layout(full_btcv, "btcv")


def test_btcv_full_conversion_voxels_and_geometry(full_btcv: dict[str, object]) -> None:
    out = _dataset_dir(full_btcv)
    for case in full_btcv["truth"]:  # type: ignore[attr-defined]
        image, spacing, origin, direction = read_case(out / "imagesTr" / f"{case.name}_0000.nii.gz")
        label, l_spacing, l_origin, l_direction = read_case(out / "labelsTr" / f"{case.name}.nii.gz")
        assert image.dtype == np.int16 and np.array_equal(image, case.hu), case.name  # HU kept exactly
        assert label.dtype == np.uint8 and np.array_equal(label, spec_labels(case.btcv_label)), case.name
        for got in (spacing, l_spacing):
            np.testing.assert_allclose(got, case.spacing, atol=1e-5)
        for got in (origin, l_origin):
            np.testing.assert_allclose(got, case.origin, atol=1e-4)
        for got in (direction, l_direction):
            np.testing.assert_allclose(got, case.direction, atol=1e-6)
    # The truth really exercises the mapping: all 13 BTCV organs exist and some map to 0.
    all_labels = np.unique(np.concatenate([c.btcv_label.ravel() for c in full_btcv["truth"]]))  # type: ignore[attr-defined]
    assert list(all_labels) == list(range(14))


def test_transunet_full_conversion_layout(full_transunet: dict[str, object]) -> None:
    _check_layout(full_transunet, "transunet")


def test_transunet_full_conversion_voxels_orientation_spacing(full_transunet: dict[str, object]) -> None:
    out = _dataset_dir(full_transunet)
    src = Path(full_transunet["base"]) / "src"  # type: ignore[arg-type]
    for case in full_transunet["truth"]:  # type: ignore[attr-defined]
        image, spacing, origin, direction = read_case(out / "imagesTr" / f"{case.name}_0000.nii.gz")
        label, l_spacing, _, _ = read_case(out / "labelsTr" / f"{case.name}.nii.gz")
        assert image.shape == (SLICES, SIZE, SIZE)
        # HU back from 400 * v - 125: exactly the truth clipped to TransUNet's window, as integers.
        assert image.dtype == np.int16 and np.array_equal(image, np.clip(case.hu, -125, 275)), case.name
        assert np.array_equal(label, spec_labels(case.btcv_label)), case.name
        assert spacing == pytest.approx(synapse.SYNAPSE_SPACING) == l_spacing
        assert origin == (0.0, 0.0, 0.0) and direction == (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
        # Orientation against the source files themselves: array[z] is slice z / volume[z], unflipped.
        if case.case_id in synapse.TEST_CASES:
            with h5py.File(src / "test_vol_h5" / f"{case.name}.npy.h5") as handle:
                volume = handle["image"][()]
            np.testing.assert_allclose(image, 400.0 * volume - 125.0, atol=1e-3)
        else:
            for z in (0, SLICES - 1):
                with np.load(src / "train_npz" / f"{case.name}_slice{z:03d}.npz") as data:
                    np.testing.assert_allclose(image[z], 400.0 * data["image"] - 125.0, atol=1e-3)
                    assert np.array_equal(label[z], data["label"].astype(np.uint8))
    # SimpleITK's (x, y, z) index addresses array[z, y, x].
    case = full_transunet["truth"][0]  # type: ignore[index]
    itk = sitk.ReadImage(str(out / "labelsTr" / f"{case.name}.nii.gz"))
    z, y, x = np.argwhere(case.benchmark_label() == 5)[0]
    assert itk.GetPixel(int(x), int(y), int(z)) == 5


def test_btcv_and_transunet_give_the_same_labels(full_btcv: dict[str, object],
                                                 full_transunet: dict[str, object]) -> None:
    """Same phantom, two layouts: identical label volumes and label statistics."""
    b, t = _dataset_dir(full_btcv), _dataset_dir(full_transunet)
    for case_id in synapse.ALL_CASES:
        name = f"case{case_id:04d}.nii.gz"
        assert np.array_equal(read_case(b / "labelsTr" / name)[0], read_case(t / "labelsTr" / name)[0])
    stats = [
        next(line for line in run["result"].stderr.splitlines() if "voxels per label" in line)  # type: ignore[index]
        for run in (full_btcv, full_transunet)
    ]
    assert stats[0].split("voxels per label")[1] == stats[1].split("voxels per label")[1]


@pytest.mark.parametrize("which", ["btcv", "transunet"])
def test_nnunet_plan_and_preprocess_verifies_the_output(
    which: str, full_btcv: dict[str, object], full_transunet: dict[str, object]
) -> None:
    run = full_btcv if which == "btcv" else full_transunet
    assert run["result"].returncode == 0  # type: ignore[union-attr]
    env = run["env"]
    script, *args = plan_and_preprocess_command([run["id"]], num_processes=1)  # type: ignore[arg-type]
    result = subprocess.run(
        [console_script(script), *args, "--no_pbar"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "verify_dataset_integrity Done" in output
    assert "Error" not in output and "mismatch" not in output
    pre = Path(env["nnUNet_preprocessed"]) / _dataset_dir(run).name  # type: ignore[index]
    assert (pre / "nnUNetPlans.json").is_file() and (pre / "nnUNetPlans_2d").is_dir()
    # nnU-Net kept our split (the planner only copies a raw splits file when none exists).
    assert json.loads((pre / "splits_final.json").read_text()) == synapse.make_splits(synapse.ALL_CASES)


# --------------------------------------------------------------------------------------------
# Options, policies and the thin scripts
# --------------------------------------------------------------------------------------------


def _small(tmp_path: Path, layout: str, cases=SMALL_CASES, **kwargs) -> list[PhantomCase]:
    return make_phantom(tmp_path / "src", layout, cases=cases, size=16, slices=4, seed=SEED, **kwargs)


def test_missing_cases_warn_and_split_what_exists(tmp_path: Path) -> None:
    _small(tmp_path, "btcv")
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "21", "-np", "1"], env)
    assert result.returncode == 0, result.stderr
    assert "16 Synapse training case(s) missing" in result.stderr and "case0007" in result.stderr
    assert "10 Synapse test case(s) missing" in result.stderr and "case0003" in result.stderr
    assert "incomplete Synapse: 26 of 30 cases missing" in result.stderr
    splits = json.loads((Path(env["nnUNet_preprocessed"]) / "Dataset021_Synapse" / "splits_final.json").read_text())
    assert splits == [{"train": ["case0005", "case0006"], "val": ["case0001", "case0002"]}]
    dataset = json.loads((Path(env["nnUNet_raw"]) / "Dataset021_Synapse" / "dataset.json").read_text())
    assert dataset["numTraining"] == 4


def test_transunet_missing_cases_are_reported_against_the_lists(tmp_path: Path) -> None:
    make_phantom(tmp_path / "src", "transunet", size=16, slices=3, seed=SEED)
    for path in (tmp_path / "src" / "train_npz").glob("case0007_slice*.npz"):
        path.unlink()
    (tmp_path / "src" / "test_vol_h5" / "case0003.npy.h5").unlink()
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "20", "-np", "2"], env)
    assert result.returncode == 0, result.stderr
    assert "train.txt lists 1 case(s) without any slice" in result.stderr
    assert "test_vol.txt lists 1 volume(s) missing" in result.stderr
    assert "1 Synapse training case(s) missing" in result.stderr and "1 Synapse test case(s) missing" in result.stderr
    assert "incomplete Synapse: 2 of 30 cases missing (training: case0007; test: case0003)" in result.stderr
    splits = json.loads((Path(env["nnUNet_preprocessed"]) / "Dataset020_Synapse" / "splits_final.json").read_text())
    assert len(splits[0]["train"]) == 17 and "case0007" not in splits[0]["train"]
    assert len(splits[0]["val"]) == 11 and "case0003" not in splits[0]["val"]
    out = Path(env["nnUNet_raw"]) / "Dataset020_Synapse"
    assert len(list((out / "imagesTr").iterdir())) == 28 and len(list((out / "imagesTs").iterdir())) == 11


def test_test_case_stored_as_slices_is_converted_with_a_warning(tmp_path: Path) -> None:
    truth = _small(tmp_path, "transunet")
    src = tmp_path / "src"
    with h5py.File(_h5(src, 1)) as handle:
        image, label = handle["image"][()], handle["label"][()]
    _h5(src, 1).unlink()
    for z in range(image.shape[0]):
        np.savez(_npz(src, 1, z), image=image[z], label=label[z])
    shutil.rmtree(src / "lists")
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", src, "-d", "19", "-np", "1"], env)
    assert result.returncode == 0, result.stderr
    assert "case0001 is a test case of the TransUNet split but sits in" in result.stderr
    splits = json.loads((Path(env["nnUNet_preprocessed"]) / "Dataset019_Synapse" / "splits_final.json").read_text())
    assert splits[0]["val"] == ["case0001", "case0002"]
    converted = read_case(Path(env["nnUNet_raw"]) / "Dataset019_Synapse" / "labelsTr" / "case0001.nii.gz")[0]
    assert np.array_equal(converted, spec_labels(truth[0].btcv_label))


def test_non_integer_transunet_intensities_stay_float(tmp_path: Path) -> None:
    """Intensities that were not integer HU before scaling are kept as float32, not rounded."""
    _small(tmp_path, "transunet")
    rng = np.random.default_rng(0)
    _rewrite_h5(tmp_path / "src", 2, lambda a: _set(
        a, "image", rng.uniform(0, 1, size=a["image"].shape).astype(np.float32)))
    with h5py.File(_h5(tmp_path / "src", 2)) as handle:
        source = handle["image"][()]
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "17", "-np", "1"], env)
    assert result.returncode == 0, result.stderr
    image = read_case(Path(env["nnUNet_raw"]) / "Dataset017_Synapse" / "imagesTr" / "case0002_0000.nii.gz")[0]
    assert image.dtype == np.float32
    np.testing.assert_allclose(image, 400.0 * source - 125.0, atol=1e-3)


def test_uncompressed_nifti_and_tiny_header_differences_are_accepted(tmp_path: Path) -> None:
    truth = {c.case_id: c for c in _small(tmp_path, "btcv")}
    root = _btcv_root(tmp_path / "src")
    for path in (root / "img" / "img0005.nii.gz", root / "label" / "label0001.nii.gz"):
        sitk.WriteImage(sitk.ReadImage(str(path)), str(path.with_name(path.name[:-3])), False)
        path.unlink()
    # Header rounding well below the tolerance (1e-3 mm): the label takes the image's geometry.
    _rewrite_label(tmp_path / "src", 6, lambda im: _with_geometry(
        im, origin=tuple(o + 2e-4 for o in im.GetOrigin())))
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "18", "-np", "1"], env)
    assert result.returncode == 0, result.stderr
    out = Path(env["nnUNet_raw"]) / "Dataset018_Synapse"
    for case_id in (1, 5, 6):
        case = truth[case_id]
        image, _, origin, _ = read_case(out / "imagesTr" / f"{case.name}_0000.nii.gz")
        label, _, l_origin, _ = read_case(out / "labelsTr" / f"{case.name}.nii.gz")
        assert np.array_equal(image, case.hu) and np.array_equal(label, spec_labels(case.btcv_label))
        assert l_origin == origin
        np.testing.assert_allclose(origin, case.origin, atol=1e-4)


def test_require_all_turns_missing_cases_into_an_error(tmp_path: Path) -> None:
    _small(tmp_path, "transunet")
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "22", "--require-all", "-np", "1"], env)
    assert result.returncode == 2
    assert "missing" in result.stderr and "case0007" in result.stderr and "--require-all" in result.stderr
    assert leftovers(env) == []


def test_spacing_override_and_lists_beside_the_data(tmp_path: Path) -> None:
    _small(tmp_path, "transunet", lists="beside")
    assert (tmp_path / "src" / "train.txt").is_file()
    env = nnunet_env(tmp_path)
    result = run_main(
        ["convert-synapse", tmp_path / "src", "-d", "23", "--format", "transunet", "--spacing", "0.5", "0.6", "2",
         "-np", "1"], env,
    )
    assert result.returncode == 0, result.stderr
    assert "no TransUNet lists" not in result.stderr  # the lists beside the data were found
    _, spacing, _, _ = read_case(Path(env["nnUNet_raw"]) / "Dataset023_Synapse" / "imagesTr" / "case0005_0000.nii.gz")
    assert spacing == pytest.approx((0.5, 0.6, 2.0))
    dataset = json.loads((Path(env["nnUNet_raw"]) / "Dataset023_Synapse" / "dataset.json").read_text())
    assert "[0.5, 0.6, 2.0]" in dataset["spacing"]


def test_lists_from_another_folder(tmp_path: Path) -> None:
    _small(tmp_path, "transunet", lists="beside")
    elsewhere = tmp_path / "my_lists"
    elsewhere.mkdir()
    for name in ("train.txt", "test_vol.txt"):
        shutil.move(str(tmp_path / "src" / name), elsewhere / name)
    # One listed test volume that the data lack: reported against the lists, which are only found with --lists.
    (elsewhere / "test_vol.txt").write_text((elsewhere / "test_vol.txt").read_text() + "case0038\n")
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "26", "-np", "1", "--lists", elsewhere], env)
    assert result.returncode == 0, result.stderr
    assert "no TransUNet lists" not in result.stderr
    assert "test_vol.txt lists 1 volume(s) missing" in result.stderr
    assert (Path(env["nnUNet_raw"]) / "Dataset026_Synapse" / "imagesTr" / "case0005_0000.nii.gz").is_file()


def test_without_lists_a_warning_names_the_gap(tmp_path: Path) -> None:
    _small(tmp_path, "transunet", lists="none")
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "24", "-np", "1"], env)
    assert result.returncode == 0, result.stderr
    assert "no TransUNet lists" in result.stderr


def test_overwrite_is_needed_to_replace_a_dataset(tmp_path: Path) -> None:
    _small(tmp_path, "btcv")
    env = nnunet_env(tmp_path)
    args = ["convert-synapse", tmp_path / "src", "-d", "25", "-np", "1"]
    assert run_main(args, env).returncode == 0
    dest = Path(env["nnUNet_raw"]) / "Dataset025_Synapse"
    marker = dest / "marker.txt"
    marker.write_text("keep me")

    refused = run_main(args, env)
    assert refused.returncode == 2
    assert "already exists" in refused.stderr and "--overwrite" in refused.stderr
    assert "Dataset025_Synapse" in refused.stderr
    assert marker.read_text() == "keep me"
    assert sorted(p.name for p in Path(env["nnUNet_raw"]).iterdir()) == ["Dataset025_Synapse"]

    replaced = run_main(args + ["--overwrite"], env)
    assert replaced.returncode == 0, replaced.stderr
    assert not marker.exists() and (dest / "dataset.json").is_file()
    assert sorted(p.name for p in Path(env["nnUNet_raw"]).iterdir()) == ["Dataset025_Synapse"]


def test_existing_splits_file_is_not_overwritten(tmp_path: Path) -> None:
    _small(tmp_path, "btcv")
    env = nnunet_env(tmp_path)
    pre = Path(env["nnUNet_preprocessed"]) / "Dataset026_Synapse"
    pre.mkdir(parents=True)
    (pre / "splits_final.json").write_text("[]")
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "26", "-np", "1"], env)
    assert result.returncode == 2 and "splits_final.json already exists" in result.stderr
    assert (pre / "splits_final.json").read_text() == "[]"
    assert not (Path(env["nnUNet_raw"]) / "Dataset026_Synapse").exists()


def test_dataset_id_used_by_another_dataset(tmp_path: Path) -> None:
    _small(tmp_path, "btcv")
    env = nnunet_env(tmp_path)
    other = Path(env["nnUNet_raw"]) / "Dataset027_Other"
    other.mkdir(parents=True)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "27", "-np", "1"], env)
    assert result.returncode == 2 and "Dataset027_Other" in result.stderr
    assert leftovers(env) == [other]


@pytest.mark.parametrize("unset", ["nnUNet_raw", "nnUNet_preprocessed"])
def test_unset_nnunet_paths_are_an_error(tmp_path: Path, unset: str) -> None:
    _small(tmp_path, "btcv")
    env = nnunet_env(tmp_path)
    del env[unset]
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "28"], env)
    assert result.returncode == 2 and unset in result.stderr and "not set" in result.stderr
    assert not (tmp_path / "nnUNet_raw").exists() and not (tmp_path / "nnUNet_preprocessed").exists()


def test_spacing_is_refused_for_btcv(tmp_path: Path) -> None:
    _small(tmp_path, "btcv")
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "29", "--spacing", "1", "1", "1"], env)
    assert result.returncode == 2 and "--spacing" in result.stderr and "BTCV" in result.stderr
    assert leftovers(env) == []


@pytest.mark.parametrize("where", ["RawData", "Training", "parent"])
def test_btcv_source_folder_may_be_any_level(tmp_path: Path, where: str) -> None:
    _small(tmp_path, "btcv", cases=(1, 5))
    src = {"RawData": tmp_path / "src" / "RawData", "Training": tmp_path / "src" / "RawData" / "Training",
           "parent": tmp_path / "src"}[where]
    layout = detect_layout(src)
    assert layout.fmt == "btcv" and layout.root == tmp_path / "src" / "RawData" / "Training"
    assert sorted(scan_btcv(layout.root)) == [1, 5]


@pytest.mark.parametrize("script,layout", [("Dataset_Synapse_from_BTCV.py", "btcv"),
                                           ("Dataset_Synapse_from_TransUNet.py", "transunet")])
def test_dataset_conversion_scripts(tmp_path: Path, script: str, layout: str) -> None:
    truth = _small(tmp_path, layout)
    env = nnunet_env(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "dataset_conversion" / script), str(tmp_path / "src"), "-d", "30", "-np", "1"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    label = read_case(Path(env["nnUNet_raw"]) / "Dataset030_Synapse" / "labelsTr" / "case0006.nii.gz")[0]
    assert np.array_equal(label, truth[3].benchmark_label())
    # Each script insists on its own layout.
    other = "Dataset_Synapse_from_TransUNet.py" if layout == "btcv" else "Dataset_Synapse_from_BTCV.py"
    wrong = subprocess.run(
        [sys.executable, str(REPO / "dataset_conversion" / other), str(tmp_path / "src"), "-d", "31"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert wrong.returncode == 2 and "no " in wrong.stderr and "layout found" in wrong.stderr


def test_library_call_raises_conversion_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _small(tmp_path, "btcv")
    (tmp_path / "src" / "RawData" / "Training" / "label" / "label0006.nii.gz").unlink()
    for var, value in nnunet_env(tmp_path).items():
        if var.startswith("nnUNet_"):
            monkeypatch.setenv(var, value)
    with pytest.raises(ConversionError, match="label0006"):
        convert_synapse(tmp_path / "src", 32, num_processes=1, progress=False)


# --------------------------------------------------------------------------------------------
# Bad input: non-zero exit, a message naming the file or case, nothing left behind
# --------------------------------------------------------------------------------------------


def _btcv_root(src: Path) -> Path:
    return src / "RawData" / "Training"


def _rewrite_label(src: Path, case_id: int, change: Callable[[sitk.Image], sitk.Image]) -> None:
    path = _btcv_root(src) / "label" / f"label{case_id:04d}.nii.gz"
    sitk.WriteImage(change(sitk.ReadImage(str(path))), str(path), True)


def _with_geometry(image: sitk.Image, **geometry) -> sitk.Image:
    out = sitk.Image(image)
    if "spacing" in geometry:
        out.SetSpacing(geometry["spacing"])
    if "origin" in geometry:
        out.SetOrigin(geometry["origin"])
    if "direction" in geometry:
        out.SetDirection(geometry["direction"])
    return out


def _label_values(image: sitk.Image, value: int) -> sitk.Image:
    array = sitk.GetArrayFromImage(image)
    array[0, 0, 0] = value
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def _label_resized(image: sitk.Image) -> sitk.Image:
    array = sitk.GetArrayFromImage(image)[:-1]
    out = sitk.GetImageFromArray(array)
    out.SetSpacing(image.GetSpacing())
    out.SetOrigin(image.GetOrigin())
    out.SetDirection(image.GetDirection())
    return out


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _to_truncated_nii(path: Path) -> None:
    """Replace ``imgNNNN.nii.gz`` by an uncompressed ``imgNNNN.nii`` missing its last bytes."""
    target = path.with_name(path.name[: -len(".gz")])
    sitk.WriteImage(sitk.ReadImage(str(path)), str(target), False)
    path.unlink()
    _truncate(target, 0.95)


def _npz(src: Path, case_id: int, slice_no: int) -> Path:
    return src / "train_npz" / f"case{case_id:04d}_slice{slice_no:03d}.npz"


def _corrupt_zip_member(path: Path) -> None:
    """Flip bytes inside the compressed data of an npz, keeping the zip directory intact."""
    data = bytearray(path.read_bytes())
    start = 60  # past the first local file header, inside the first member's deflate stream
    for i in range(start, start + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _h5(src: Path, case_id: int) -> Path:
    return src / "test_vol_h5" / f"case{case_id:04d}.npy.h5"


def _rewrite_npz(src: Path, case_id: int, slice_no: int, change: Callable[[dict[str, np.ndarray]], dict]) -> None:
    path = _npz(src, case_id, slice_no)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez_compressed(path, **change(arrays))


def _rewrite_h5(src: Path, case_id: int, change: Callable[[dict[str, np.ndarray]], dict]) -> None:
    path = _h5(src, case_id)
    with h5py.File(path, "r") as handle:
        arrays = {k: handle[k][()] for k in handle}
    path.unlink()
    with h5py.File(path, "w") as handle:
        for key, value in change(arrays).items():
            handle.create_dataset(key, data=value)


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


def _set(arrays: dict[str, np.ndarray], key: str, value: np.ndarray) -> dict[str, np.ndarray]:
    arrays = dict(arrays)
    arrays[key] = value
    return arrays


def _with_value(array: np.ndarray, value: float) -> np.ndarray:
    array = array.copy()
    array.flat[0] = value
    return array


BTCV_ERRORS = {
    "missing_image": (
        lambda s: (_btcv_root(s) / "img" / "img0005.nii.gz").unlink(),
        ["missing image", "case0005", "label0005.nii.gz"],
    ),
    "missing_label": (
        lambda s: (_btcv_root(s) / "label" / "label0001.nii.gz").unlink(),
        ["missing label", "case0001", "img0001.nii.gz"],
    ),
    "label_shape": (
        lambda s: _rewrite_label(s, 2, _label_resized),
        ["case0002", "label0002.nii.gz", "does not match image", "size"],
    ),
    "label_spacing": (
        lambda s: _rewrite_label(s, 6, lambda im: _with_geometry(im, spacing=(1.5, 1.5, 1.5))),
        ["case0006", "label0006.nii.gz", "spacing"],
    ),
    "label_origin": (
        lambda s: _rewrite_label(s, 5, lambda im: _with_geometry(im, origin=(1.0, 2.0, 3.0))),
        ["case0005", "label0005.nii.gz", "origin"],
    ),
    "label_direction": (
        lambda s: _rewrite_label(s, 2, lambda im: _with_geometry(im, direction=(0, 1, 0, 1, 0, 0, 0, 0, 1))),
        ["case0002", "label0002.nii.gz", "direction"],
    ),
    "label_value_14": (
        lambda s: _rewrite_label(s, 6, lambda im: _label_values(im, 14)),
        ["case0006", "label0006.nii.gz", "[14]", "0-13"],
    ),
    "corrupt_image": (
        lambda s: (_btcv_root(s) / "img" / "img0001.nii.gz").write_bytes(b"this is not a NIfTI file" * 40),
        ["case0001", "img0001.nii.gz", "cannot read"],
    ),
    "truncated_image": (
        lambda s: _truncate(_btcv_root(s) / "img" / "img0005.nii.gz"),
        ["case0005", "img0005.nii.gz", "cannot read"],
    ),
    "truncated_label": (
        lambda s: _truncate(_btcv_root(s) / "label" / "label0002.nii.gz", 0.7),
        ["case0002", "label0002.nii.gz", "cannot read"],
    ),
    "truncated_uncompressed": (
        lambda s: _to_truncated_nii(_btcv_root(s) / "img" / "img0006.nii.gz"),
        ["case0006", "img0006.nii", "truncated", "bytes"],
    ),
    "duplicate_case": (
        lambda s: _copy(_btcv_root(s) / "img" / "img0005.nii.gz", _btcv_root(s) / "img" / "img5.nii.gz"),
        ["duplicate case case0005", "img0005.nii.gz", "img5.nii.gz"],
    ),
    "duplicate_uncompressed": (
        lambda s: sitk.WriteImage(sitk.ReadImage(str(_btcv_root(s) / "img" / "img0001.nii.gz")),
                                  str(_btcv_root(s) / "img" / "img0001.nii")),
        ["duplicate case case0001", "img0001.nii"],
    ),
    "unparseable_name": (
        lambda s: _copy(_btcv_root(s) / "img" / "img0005.nii.gz", _btcv_root(s) / "img" / "img_extra.nii.gz"),
        ["img_extra.nii.gz", "cannot parse"],
    ),
    "unknown_case": (
        lambda s: (
            _copy(_btcv_root(s) / "img" / "img0005.nii.gz", _btcv_root(s) / "img" / "img0011.nii.gz"),
            _copy(_btcv_root(s) / "label" / "label0005.nii.gz", _btcv_root(s) / "label" / "label0011.nii.gz"),
        ),
        ["case0011", "not one of the 30"],
    ),
    "empty_case_folders": (
        lambda s: [p.unlink() for sub in ("img", "label") for p in (_btcv_root(s) / sub).iterdir()],
        ["no cases found", "img"],
    ),
    "only_training_cases": (
        lambda s: [p.unlink() for sub in ("img", "label") for p in (_btcv_root(s) / sub).iterdir()
                   if p.name.endswith(("0001.nii.gz", "0002.nii.gz"))],
        ["0 test case(s)", "needs at least one of each"],
    ),
}


TRANSUNET_ERRORS = {
    "slice_gap": (
        lambda s: _npz(s, 5, 2).unlink(),
        ["missing slices in case0005", "2"],
    ),
    "slice_gap_without_lists": (
        lambda s: (shutil.rmtree(s / "lists"), _npz(s, 6, 1).unlink()),
        ["missing slices in case0006", "slice(s) 1 absent", "train_npz"],
    ),
    "corrupt_npz_member": (
        lambda s: _corrupt_zip_member(_npz(s, 5, 1)),
        ["case0005", "case0005_slice001.npz", "cannot read"],
    ),
    "last_slice_missing": (
        lambda s: _npz(s, 6, 3).unlink(),
        ["missing slices in case0006", "train.txt", "3"],
    ),
    "npz_missing_label": (
        lambda s: _rewrite_npz(s, 6, 1, lambda a: {"image": a["image"]}),
        ["case0006", "case0006_slice001.npz", "lacks 'label'"],
    ),
    "npz_missing_image": (
        lambda s: _rewrite_npz(s, 5, 0, lambda a: {"label": a["label"]}),
        ["case0005", "case0005_slice000.npz", "lacks 'image'"],
    ),
    "h5_missing_label": (
        lambda s: _rewrite_h5(s, 2, lambda a: {"image": a["image"]}),
        ["case0002", "case0002.npy.h5", "'label'"],
    ),
    "npz_label_shape": (
        lambda s: _rewrite_npz(s, 5, 1, lambda a: _set(a, "label", a["label"][:-1])),
        ["case0005", "case0005_slice001.npz", "label shape"],
    ),
    "slice_shape_differs": (
        lambda s: _rewrite_npz(s, 6, 2, lambda a: {"image": a["image"][:-2], "label": a["label"][:-2]}),
        ["case0006", "case0006_slice002.npz", "shape"],
    ),
    "h5_label_shape": (
        lambda s: _rewrite_h5(s, 1, lambda a: _set(a, "label", a["label"][:-1])),
        ["case0001", "case0001.npy.h5", "label shape"],
    ),
    "npz_label_value_9": (
        lambda s: _rewrite_npz(s, 6, 0, lambda a: _set(a, "label", _with_value(a["label"], 9))),
        ["case0006", "case0006_slice000.npz", "[9]", "0-8"],
    ),
    "h5_label_value_13": (
        lambda s: _rewrite_h5(s, 2, lambda a: _set(a, "label", _with_value(a["label"], 13))),
        ["case0002", "case0002.npy.h5", "[13]", "0-8"],
    ),
    "label_not_integer": (
        lambda s: _rewrite_npz(s, 5, 3, lambda a: _set(a, "label", _with_value(a["label"], 2.5))),
        ["case0005", "case0005_slice003.npz", "non-integer"],
    ),
    "image_not_scaled": (
        lambda s: _rewrite_npz(s, 5, 2, lambda a: _set(a, "image", a["image"] * 400 - 125)),
        ["case0005", "case0005_slice002.npz", "[0, 1]"],
    ),
    "corrupt_npz": (
        lambda s: _npz(s, 6, 1).write_bytes(b"garbage" * 50),
        ["case0006", "case0006_slice001.npz", "not an npz"],
    ),
    "truncated_npz": (
        lambda s: _truncate(_npz(s, 5, 3)),
        ["case0005", "case0005_slice003.npz", "cannot read"],
    ),
    "truncated_h5": (
        lambda s: _truncate(_h5(s, 1)),
        ["case0001", "case0001.npy.h5", "cannot read"],
    ),
    "duplicate_slice": (
        lambda s: _copy(_npz(s, 5, 0), s / "train_npz" / "case5_slice000.npz"),
        ["duplicate slice 0 of case0005", "case5_slice000.npz"],
    ),
    "case_in_both_folders": (
        lambda s: _copy(_npz(s, 5, 0), s / "train_npz" / "case0001_slice000.npz"),
        ["duplicate case case0001", "case0001.npy.h5"],
    ),
    "duplicate_h5": (
        lambda s: _copy(_h5(s, 1), s / "test_vol_h5" / "case0001.h5"),
        ["duplicate case case0001", "case0001.h5"],
    ),
    "unparseable_npz": (
        lambda s: _copy(_npz(s, 5, 0), s / "train_npz" / "case0005_sliceA.npz"),
        ["case0005_sliceA.npz", "cannot parse"],
    ),
    "unparseable_list_line": (
        lambda s: (s / "lists" / "lists_Synapse" / "test_vol.txt").write_text("case0001\nvolume two\n"),
        ["test_vol.txt line 2", "volume two"],
    ),
    "unknown_case": (
        lambda s: _copy(_h5(s, 1), s / "test_vol_h5" / "case0011.npy.h5"),
        ["case0011", "not one of the 30"],
    ),
    "empty_folders": (
        lambda s: [p.unlink() for sub in ("train_npz", "test_vol_h5") for p in (s / sub).iterdir()],
        ["no cases found", "train_npz"],
    ),
}


def _assert_failed_cleanly(result: subprocess.CompletedProcess, env: dict[str, str], expected: list[str]) -> None:
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(error_lines) == 1, result.stderr
    for text in expected:
        assert text in error_lines[0], (text, error_lines[0])
    assert "Traceback" not in result.stderr
    assert leftovers(env) == []  # no dataset, no temporary folder, no splits file


# Cases run with parallel workers: an error inside a worker process must surface the same way.
_PARALLEL_ERRORS = ("label_value_14", "truncated_image", "h5_label_value_13", "truncated_npz")


def _check_bad_input(tmp_path: Path, layout: str, name: str, errors: dict[str, tuple], dataset_id: int) -> None:
    mutate, expected = errors[name]
    _small(tmp_path, layout)
    mutate(tmp_path / "src")
    env = nnunet_env(tmp_path)
    workers = "2" if name in _PARALLEL_ERRORS else "1"
    result = run_main(["convert-synapse", tmp_path / "src", "-d", dataset_id, "-np", workers], env)
    _assert_failed_cleanly(result, env, expected)


@pytest.mark.parametrize("name", sorted(BTCV_ERRORS))
def test_bad_btcv_input(tmp_path: Path, name: str) -> None:
    _check_bad_input(tmp_path, "btcv", name, BTCV_ERRORS, 40)


@pytest.mark.parametrize("name", sorted(TRANSUNET_ERRORS))
def test_bad_transunet_input(tmp_path: Path, name: str) -> None:
    _check_bad_input(tmp_path, "transunet", name, TRANSUNET_ERRORS, 41)


@pytest.mark.parametrize("content", ["nothing", "unrelated files"])
def test_empty_or_unrelated_source_folder(tmp_path: Path, content: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    if content != "nothing":
        (src / "notes.txt").write_text("hello")
        (src / "img").mkdir()
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", src, "-d", "42"], env)
    _assert_failed_cleanly(result, env, ["no Synapse data found", str(src)])


def test_missing_source_folder(tmp_path: Path) -> None:
    env = nnunet_env(tmp_path)
    result = run_cli(["convert-synapse", tmp_path / "nowhere", "-d", "43"], env)
    _assert_failed_cleanly(result, env, ["does not exist", "nowhere"])


def test_layout_ambiguity_needs_format(tmp_path: Path) -> None:
    make_phantom(tmp_path / "src", "btcv", cases=(1, 5), size=16, slices=4)
    make_phantom(tmp_path / "src", "transunet", cases=(1, 5), size=16, slices=4)
    env = nnunet_env(tmp_path)
    result = run_cli(["convert-synapse", tmp_path / "src", "-d", "44", "-np", "1"], env)
    _assert_failed_cleanly(result, env, ["both a BTCV layout", "--format"])
    chosen = run_cli(["convert-synapse", tmp_path / "src", "-d", "44", "--format", "transunet", "-np", "1"], env)
    assert chosen.returncode == 0, chosen.stderr
    dataset = json.loads((Path(env["nnUNet_raw"]) / "Dataset044_Synapse" / "dataset.json").read_text())
    assert dataset["converted_from"] == "transunet"


def test_failure_in_a_late_case_removes_the_partial_dataset(tmp_path: Path) -> None:
    """All but the last case convert before the error: the finished ones must not survive either."""
    _small(tmp_path, "btcv", cases=synapse.ALL_CASES)
    _truncate(_btcv_root(tmp_path / "src") / "img" / "img0040.nii.gz")
    env = nnunet_env(tmp_path)
    result = run_main(["convert-synapse", tmp_path / "src", "-d", "45", "-np", "1"], env)
    _assert_failed_cleanly(result, env, ["case0040", "img0040.nii.gz"])
    assert "29/30" in result.stderr  # the progress bar got that far before the failure
