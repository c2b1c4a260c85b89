"""ACDC (cardiac cine-MRI, MICCAI 2017) in the SSL4MIS h5 layout -> an nnU-Net v2 raw dataset.

Source, as SSL4MIS lays ACDC out::

    SRC/train.list, val.list, test.list     volume ids (patientNNN_frame0K), one per line
    SRC/data/patientNNN_frame0K.h5          3-D volumes: "image" float32 (Z, H, W), "label" uint8 (Z, H, W)
    SRC/data/slices/ (or SRC/slices/)       2-D slices patientNNN_frame0K_slice_S.h5, S = 1..N

A volume is read from ``data/`` where it is there, else restacked from its slices (slice_1..slice_N along axis 0;
SSL4MIS keeps only the training patients as slices). Output, for dataset id ``ID``::

    $nnUNet_raw/DatasetID_ACDC/
        dataset.json                         channel "cineMRI" (nnU-Net z-scores it), labels 1 RV, 2 MYO, 3 LV
        imagesTr/, labelsTr/                 the volumes of the train.list and val.list patients
        imagesTs/, labelsTs/                 the volumes of the test.list patients
        splits_final.json                    copy of the folds below
    $nnUNet_preprocessed/DatasetID_ACDC/splits_final.json
                                             5 folds over the training patients: a patient's ED and ES volumes
                                             are always on one side of a fold

The h5 files store no voxel spacing: every volume gets :data:`~nnunetv2_smaformer.acdc.DEFAULT_SPACING_ZYX` (or
``spacing``), written into
the dataset.json and the log, because HD95 in mm depends on it. The conversion uses the plan / build / publish steps
of :mod:`.nnunet_dataset`: every check that needs no conversion runs first, and a failure leaves nothing behind.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_smaformer.acdc import (
    CHANNEL_NAME,
    DATASET_NAME,
    DEFAULT_SPACING_ZYX,
    FOLD_SEED,
    LABELS,
    LISTS,
    NUM_FOLDS,
)
from nnunetv2_smaformer.conversion.cases import check_label_values
from nnunetv2_smaformer.conversion.nnunet_dataset import (
    SPLITS_FILE,
    DatasetTarget,
    build,
    dataset_target,
    default_num_processes,
    one_itk_thread,
    publish,
    refuse_existing,
    write_json,
)
from nnunetv2_smaformer.errors import ConversionError
from nnunetv2_smaformer.parallel import run_tasks

logger = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"

_VOLUME_ID = re.compile(r"^(?P<patient>patient\d{3})_frame\d{2}$")
_SLICE_FILE = re.compile(r"^(?P<volume>patient\d{3}_frame\d{2})_slice_(?P<slice>\d+)\.h5$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class AcdcVolume:
    """One volume to convert: its id, whether it is a test volume, and its file or its slice files in order."""

    volume_id: str
    test: bool
    volume_file: Path | None
    slice_files: tuple[Path, ...] = ()

    @property
    def patient(self) -> str:
        return self.volume_id.split("_")[0]


@dataclass(frozen=True)
class AcdcSummary:
    """What :func:`convert_acdc` wrote."""

    dataset_dir: Path
    splits_file: Path
    training_volumes: int
    test_volumes: int
    training_patients: int
    test_patients: int
    spacing_zyx: tuple[float, float, float]
    voxels_per_label: dict[str, int]


def read_lists(src: Path) -> dict[str, list[str]]:
    """``{list name: volume ids}`` of SSL4MIS's three lists; every id well formed and listed once, and no patient in
    two lists."""
    lists: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for name in LISTS:
        path = src / name
        if not path.is_file():
            raise ConversionError(f"{path} is missing: an SSL4MIS ACDC folder holds {', '.join(LISTS)}")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        for volume_id in ids:
            match = _VOLUME_ID.match(volume_id)
            if match is None:
                raise ConversionError(f"{path}: {volume_id!r} is not a volume id (patientNNN_frameKK)")
            patient = match.group("patient")
            if owner.setdefault(patient, name) != name:
                raise ConversionError(f"patient {patient} is in both {owner[patient]} and {name} (in {src}): "
                                      "a patient's volumes belong to one list")
        duplicates = sorted({v for v in ids if ids.count(v) > 1})
        if duplicates:
            raise ConversionError(f"{path} lists {', '.join(duplicates)} more than once")
        lists[name] = ids
    if not lists["train.list"] + lists["val.list"] or not lists["test.list"]:
        raise ConversionError(f"{src}: the lists hold no training or no test volume")
    return lists


def _slice_folder(src: Path) -> Path | None:
    return next((folder for folder in (src / "data" / "slices", src / "slices") if folder.is_dir()), None)


def _slices_by_volume(folder: Path | None) -> dict[str, dict[int, Path]]:
    """``{volume id: {slice number: file}}`` of a slice folder (other files are ignored)."""
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()) if folder is not None else ():
        match = _SLICE_FILE.match(path.name)
        if match is not None:
            found.setdefault(match.group("volume"), {})[int(match.group("slice"))] = path
    return found


def scan(src: Path) -> list[AcdcVolume]:
    """Every listed volume with the file(s) it is read from; names the volume without a file and the slice gaps."""
    lists = read_lists(src)
    slice_folder = _slice_folder(src)
    slices = _slices_by_volume(slice_folder)
    volumes = []
    for name, ids in lists.items():
        for volume_id in ids:
            volume_file = src / "data" / f"{volume_id}.h5"
            if volume_file.is_file():
                volumes.append(AcdcVolume(volume_id, name == "test.list", volume_file))
                continue
            numbers = slices.get(volume_id)
            if not numbers:
                raise ConversionError(f"{volume_id} ({name}): neither {volume_file} nor slices "
                                      f"{volume_id}_slice_S.h5 in {slice_folder or src / 'data' / 'slices'}")
            gaps = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
            if gaps:
                raise ConversionError(f"{volume_id}: slices {', '.join(map(str, gaps))} missing from "
                                      f"{slice_folder} (slices are numbered 1..N without gaps)")
            volumes.append(AcdcVolume(volume_id, name == "test.list", None,
                                      tuple(numbers[i] for i in sorted(numbers))))
    return volumes


def _read_pair(path: Path, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image, label)`` of one h5 file, both with ``dims`` axes and one shape."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            image, label = np.asarray(file["image"]), np.asarray(file["label"])
    except (OSError, KeyError) as err:
        raise ConversionError(f"cannot read {path} (an h5 file with 'image' and 'label'): {err}") from err
    if image.ndim != dims or image.shape != label.shape:
        raise ConversionError(f"{path}: image {image.shape} and label {label.shape} must be {dims}-D of one shape")
    return image, label


def read_volume(volume: AcdcVolume) -> tuple[np.ndarray, np.ndarray]:
    """``(image float32 (z, y, x), label uint8 0-3)`` of a volume, from its file or restacked from its slices."""
    if volume.volume_file is not None:
        image, label = _read_pair(volume.volume_file, 3)
        source = volume.volume_file
    else:
        pairs = [_read_pair(path, 2) for path in volume.slice_files]
        for path, (image, _) in zip(volume.slice_files, pairs):
            if image.shape != pairs[0][0].shape:
                raise ConversionError(f"{volume.volume_id}: {path.name} is {image.shape}, "
                                      f"{volume.slice_files[0].name} is {pairs[0][0].shape}: the slices of a volume "
                                      "share one shape")
        image, label = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        source = volume.slice_files[0].parent
    if not np.all(np.isfinite(image)):
        raise ConversionError(f"{volume.volume_id}: the image in {source} holds NaN or infinite values")
    return image.astype(np.float32), check_label_values(label, max(LABELS.values()), source, volume.volume_id)


def _write(array: np.ndarray, path: Path, spacing_zyx: Sequence[float]) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))  # SimpleITK: (x, y, z)
    sitk.WriteImage(image, str(path), True)


def _convert_task(task: tuple[AcdcVolume, Path, Path, tuple[float, float, float]]) -> list[int]:
    """Write one volume into ``imagesXx``/``labelsXx``; returns its voxels per label."""
    volume, images, labels, spacing_zyx = task
    image, label = read_volume(volume)
    _write(image, images / f"{volume.volume_id}_0000{FILE_ENDING}", spacing_zyx)
    _write(label, labels / f"{volume.volume_id}{FILE_ENDING}", spacing_zyx)
    return [int(c) for c in np.bincount(label.ravel(), minlength=len(LABELS))]


def patient_folds(volumes: Sequence[AcdcVolume]) -> list[dict[str, list[str]]]:
    """nnU-Net's ``splits_final.json``: 5 folds over the training patients (nnU-Net's KFold, shuffled with its seed,
    on the sorted patients), each patient's volumes on one side."""
    from sklearn.model_selection import KFold

    training = [v for v in volumes if not v.test]
    patients = sorted({v.patient for v in training})
    if len(patients) < NUM_FOLDS:
        raise ConversionError(f"{len(patients)} training patient(s): {NUM_FOLDS} folds need at least {NUM_FOLDS}")
    splits = []
    for train_index, val_index in KFold(n_splits=NUM_FOLDS, shuffle=True, random_state=FOLD_SEED).split(patients):
        val = {patients[i] for i in val_index}
        splits.append({"train": sorted(v.volume_id for v in training if v.patient not in val),
                       "val": sorted(v.volume_id for v in training if v.patient in val)})
    return splits


def check_spacing(spacing_zyx: Sequence[float] | None) -> tuple[float, float, float]:
    spacing = tuple(float(s) for s in (DEFAULT_SPACING_ZYX if spacing_zyx is None else spacing_zyx))
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ConversionError(f"--spacing needs three positive numbers Z Y X in mm, got {list(spacing_zyx or [])}")
    return spacing  # type: ignore[return-value]


def dataset_json(volumes: Sequence[AcdcVolume], spacing_zyx: tuple[float, float, float], name: str) -> dict:
    spacing = " x ".join(f"{s:g}" for s in spacing_zyx)
    return {
        "channel_names": {"0": CHANNEL_NAME},
        "labels": dict(LABELS),
        "numTraining": sum(not v.test for v in volumes),
        "file_ending": FILE_ENDING,
        "name": name,
        "description": "ACDC cardiac cine-MRI (MICCAI 2017), end-diastole and end-systole volumes, from the SSL4MIS "
                       "h5 layout: train.list and val.list patients in imagesTr (5 folds grouped by patient), "
                       "test.list patients in imagesTs.",
        "reference": "Bernard et al., IEEE TMI 37(11):2514-2525, 2018; https://www.creatis.insa-lyon.fr/Challenge/acdc/",
        "licence": "see the ACDC challenge terms of use",
        "release": "converted by nnunetv2_smaformer",
        "spacing": f"assumed {spacing} mm (z, y, x) for every volume: the SSL4MIS h5 files store no spacing",
        "numTest": sum(v.test for v in volumes),
    }


def convert_acdc(src: Path | str, dataset_id: int, spacing_zyx: Sequence[float] | None = None,
                 name: str = DATASET_NAME, overwrite: bool = False, num_processes: int | None = None,
                 progress: bool = True) -> AcdcSummary:
    """Convert ACDC in the SSL4MIS layout at ``src`` into ``$nnUNet_raw/DatasetID_<name>``.

    Raises:
        ConversionError: naming the list, volume, slice or file that is wrong, or the existing data; then nothing
            is written into nnUNet_raw or nnUNet_preprocessed.
    """
    src = Path(src).expanduser()
    if not _NAME.match(name):
        raise ConversionError(f"dataset name {name!r}: letters, digits, '_' and '-' only")
    if not src.is_dir():
        raise ConversionError(f"{src} is not a folder")
    spacing = check_spacing(spacing_zyx)
    target = dataset_target(dataset_id, name)
    volumes = scan(src)
    splits = patient_folds(volumes)
    refuse_existing(target, overwrite)
    workers = default_num_processes() if num_processes is None else max(1, int(num_processes))
    logger.info("found %d ACDC volume(s) in %s; spacing assumed %s mm (z, y, x): the h5 files store none", len(volumes),
                src, " x ".join(f"{s:g}" for s in spacing))
    folder, counts = _build(target, volumes, splits, spacing, name, workers, progress)
    return _publish(target, folder, counts, splits, volumes, spacing)


def _build(target: DatasetTarget, volumes: list[AcdcVolume], splits: list, spacing: tuple[float, float, float],
           name: str, workers: int, progress: bool) -> tuple[Path, list[list[int]]]:
    def fill(folders: dict[str, Path]) -> list[list[int]]:
        tasks = [(v, folders["imagesTs" if v.test else "imagesTr"], folders["labelsTs" if v.test else "labelsTr"],
                  spacing) for v in volumes]
        counts = run_tasks(_convert_task, tasks, workers, progress, desc="Converting ACDC",
                           initializer=one_itk_thread, spawn=True)
        write_json(folders["root"] / "dataset.json", dataset_json(volumes, spacing, name))
        write_json(folders["root"] / SPLITS_FILE, splits)
        return counts

    return build(target, fill)


def _publish(target: DatasetTarget, folder: Path, counts: list[list[int]], splits: list, volumes: list[AcdcVolume],
             spacing: tuple[float, float, float]) -> AcdcSummary:
    splits_file = publish(target, folder, splits)
    totals = np.sum(counts, axis=0)
    summary = AcdcSummary(
        dataset_dir=target.dest, splits_file=splits_file, training_volumes=sum(not v.test for v in volumes),
        test_volumes=sum(v.test for v in volumes), training_patients=len({v.patient for v in volumes if not v.test}),
        test_patients=len({v.patient for v in volumes if v.test}), spacing_zyx=spacing,
        voxels_per_label={label: int(totals[value]) for label, value in LABELS.items()})
    logger.info("converted ACDC into %s: %d training volume(s) of %d patients (%d folds by patient, %s), %d test "
                "volume(s) of %d patients; voxels per label: %s", summary.dataset_dir, summary.training_volumes,
                summary.training_patients, NUM_FOLDS, splits_file, summary.test_volumes, summary.test_patients,
                ", ".join(f"{k}={v}" for k, v in summary.voxels_per_label.items()))
    return summary
