"""TransUNet's preprocessed Synapse release: ``train_npz/caseNNNN_sliceSSS.npz`` (2D slices) and
``test_vol_h5/caseNNNN.npy.h5`` (volumes), with the lists ``train.txt`` / ``test_vol.txt`` beside the
data, in ``lists_Synapse/`` or in ``lists/lists_Synapse/`` (or given explicitly); finding, reading
and converting its cases.

A TransUNet volume (D x H x W; the ``train_npz`` slices stacked along D in slice order) becomes the
(z, y, x) array of a NIfTI image unchanged, with identity direction, zero origin and a constant
spacing (the release stores none), its intensities scaled back to HU.
"""
from __future__ import annotations

import logging
import re
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_smaformer.conversion.cases import (
    CaseResult,
    SourceFormat,
    Spacing,
    case_result,
    check_label_values,
    first_root,
    scan_folder,
)
from nnunetv2_smaformer.conversion.synapse_raw import FILE_ENDING, transunet_to_hu
from nnunetv2_smaformer.errors import ConversionError
from nnunetv2_smaformer.synapse import MAX_BENCHMARK_LABEL, SYNAPSE_SPACING, case_name, split_of

logger = logging.getLogger(__name__)

_NPZ_RE = re.compile(r"^case(?P<case>\d+)_slice(?P<slice>\d+)\.npz$")
_H5_RE = re.compile(r"^case(?P<case>\d+)(\.npy)?\.h5$")
_LIST_SLICE_RE = re.compile(r"^case(\d+)_slice(\d+)(\.npz)?$")
_LIST_CASE_RE = re.compile(r"^case(\d+)(\.npy\.h5|\.h5)?$")
# Folders (relative to SRC) where the layout may start, and where its lists may be (relative to that).
_ROOTS = (".", "Synapse", "data/Synapse")
_LIST_DIRS = ("lists/lists_Synapse", "lists_Synapse", ".")
# TransUNet intensities lie in [0, 1]; allow float rounding, reject anything that is clearly not
# that scaling (raw HU, [0, 255] images), since 400 * v - 125 would silently produce garbage.
_TRANSUNET_RANGE = (-0.01, 1.01)
# Largest distance from an integer for 400 * v - 125 to count as integer HU (float32 rounding is ~1e-4).
_INTEGER_HU_TOLERANCE = 0.01


@dataclass(frozen=True)
class TransUNetCase:
    """One TransUNet case: ``npz`` slice files in slice order (slice 0 first), or one ``h5`` volume."""

    case_id: int
    kind: str
    files: tuple[Path, ...]


def find_root(src: Path) -> Path | None:
    """The folder under ``src`` holding ``train_npz/`` or ``test_vol_h5/``, or None."""
    return first_root(src, _ROOTS, lambda root: (root / "train_npz").is_dir() or (root / "test_vol_h5").is_dir())


def find_list_dir(root: Path, lists_dir: Path | None = None) -> Path | None:
    """Folder holding TransUNet's ``train.txt`` / ``test_vol.txt``, or None if there is none."""
    if lists_dir is not None:
        if not ((lists_dir / "train.txt").is_file() or (lists_dir / "test_vol.txt").is_file()):
            raise ConversionError(f"list folder {lists_dir} holds neither train.txt nor test_vol.txt")
        return lists_dir
    for rel in _LIST_DIRS:
        candidate = root / rel
        if (candidate / "train.txt").is_file() or (candidate / "test_vol.txt").is_file():
            return candidate
    return None


def _read_list(path: Path, pattern: re.Pattern[str], example: str) -> list[re.Match[str]]:
    """Parse a TransUNet list file: one name per line, blank lines ignored."""
    entries: list[re.Match[str]] = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConversionError(f"cannot read list file {path}: {err}") from err
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        match = pattern.match(text)
        if match is None:
            raise ConversionError(f"{path} line {number}: cannot parse {text!r} (expected {example})")
        entries.append(match)
    return entries


def _format_numbers(numbers: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", ... ({len(numbers)} in all)" if len(numbers) > limit else "")


def scan(root: Path, lists_dir: Path | None = None) -> dict[int, TransUNetCase]:
    """Collect the cases of a TransUNet release under ``root``; case id -> files.

    Checks file names, duplicate cases/slices, gaps in slice numbers, and agreement with the
    lists when they exist (a listed slice or volume that is absent is a missing-slice error).
    """
    npz_dir, h5_dir = root / "train_npz", root / "test_vol_h5"
    slices: dict[int, dict[int, Path]] = {}
    if npz_dir.is_dir():
        for (case_id, slice_no), path in scan_folder(npz_dir, _NPZ_RE, "caseNNNN_sliceSSS.npz").items():
            slices.setdefault(case_id, {})[slice_no] = path
    volumes: dict[int, Path] = {}
    if h5_dir.is_dir():
        volumes = {key[0]: path for key, path in scan_folder(h5_dir, _H5_RE, "caseNNNN.npy.h5").items()}
    for case_id, path in volumes.items():
        if case_id in slices:
            raise ConversionError(f"duplicate case {case_name(case_id)}: both {path} and slices in {npz_dir}")

    if not slices and not volumes:
        raise ConversionError(f"no cases found in {npz_dir} or {h5_dir}: the folders are empty or missing")

    list_dir = find_list_dir(root, Path(lists_dir) if lists_dir is not None else None)
    if list_dir is None:
        logger.warning(
            "no TransUNet lists (train.txt, test_vol.txt) found beside %s or in lists/lists_Synapse; "
            "slices are only checked for gaps in their numbering",
            root,
        )
    else:
        _check_against_lists(list_dir, slices, volumes, npz_dir, h5_dir)

    for case_id, per_case in slices.items():
        expected = range(max(per_case) + 1)
        gaps = [s for s in expected if s not in per_case]
        if gaps:
            raise ConversionError(
                f"missing slices in {case_name(case_id)}: slice(s) {_format_numbers(gaps)} absent from {npz_dir} "
                f"(found {len(per_case)} slices numbered up to {max(per_case)})"
            )

    for case_id in sorted(slices):
        if split_of(case_id) != "train":
            logger.warning(
                "%s is a test case of the TransUNet split but sits in %s; it is converted and kept in the "
                "test (validation) set", case_name(case_id), npz_dir,
            )
    for case_id in sorted(volumes):
        if split_of(case_id) != "test":
            logger.warning(
                "%s is a training case of the TransUNet split but sits in %s; it is converted and kept in the "
                "training set", case_name(case_id), h5_dir,
            )

    cases: dict[int, TransUNetCase] = {}
    for case_id, per_case in slices.items():
        cases[case_id] = TransUNetCase(case_id, "npz", tuple(per_case[s] for s in sorted(per_case)))
    for case_id, path in volumes.items():
        cases[case_id] = TransUNetCase(case_id, "h5", (path,))
    return dict(sorted(cases.items()))


def _check_against_lists(
    list_dir: Path,
    slices: dict[int, dict[int, Path]],
    volumes: dict[int, Path],
    npz_dir: Path,
    h5_dir: Path,
) -> None:
    train_list = list_dir / "train.txt"
    if train_list.is_file():
        listed = [
            (int(m.group(1)), int(m.group(2))) for m in _read_list(train_list, _LIST_SLICE_RE, "caseNNNN_sliceSSS")
        ]
        listed_set = set(listed)
        missing: dict[int, list[int]] = {}
        for case_id, slice_no in listed:
            if slice_no not in slices.get(case_id, {}):
                missing.setdefault(case_id, []).append(slice_no)
        for case_id, numbers in sorted(missing.items()):
            if case_id in slices:
                raise ConversionError(
                    f"missing slices in {case_name(case_id)}: {train_list} lists slice(s) "
                    f"{_format_numbers(sorted(numbers))} that are not in {npz_dir}"
                )
        absent_cases = sorted(missing)
        if absent_cases:
            # Whole cases absent: the missing-case policy (warn, split from what exists) applies.
            logger.warning(
                "%s lists %d case(s) without any slice in %s: %s",
                train_list, len(absent_cases), npz_dir, ", ".join(case_name(i) for i in absent_cases),
            )
        unlisted = sorted({c for c, per_case in slices.items() for s in per_case if (c, s) not in listed_set})
        if unlisted:
            logger.warning(
                "%s holds slices that %s does not list, in %s; they are converted anyway",
                npz_dir, train_list, ", ".join(case_name(i) for i in unlisted),
            )
    test_list = list_dir / "test_vol.txt"
    if test_list.is_file():
        listed_cases = [int(m.group(1)) for m in _read_list(test_list, _LIST_CASE_RE, "caseNNNN")]
        absent = sorted(i for i in set(listed_cases) if i not in volumes)
        if absent:
            logger.warning(
                "%s lists %d volume(s) missing from %s: %s",
                test_list, len(absent), h5_dir, ", ".join(case_name(i) for i in absent),
            )
        unlisted = sorted(i for i in volumes if i not in set(listed_cases))
        if unlisted:
            logger.warning(
                "%s holds volumes that %s does not list: %s; they are converted anyway",
                h5_dir, test_list, ", ".join(case_name(i) for i in unlisted),
            )


def check_spacing(spacing: Sequence[float] | None) -> Spacing:
    """The spacing (x, y, z) in mm given to the volumes: ``spacing`` if valid, else the default."""
    if spacing is None:
        return SYNAPSE_SPACING
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ConversionError(f"--spacing needs three positive numbers X Y Z in mm, got {list(spacing)}")
    return values  # type: ignore[return-value]


def spacing_note(spacing: Spacing) -> str:
    return f"constant (x, y, z) = {list(spacing or ())} mm: the TransUNet release stores no spacing"


def _check_transunet_image(image: np.ndarray, path: Path, case_id: int) -> None:
    if image.dtype.kind not in "fiub":
        raise ConversionError(f"{case_name(case_id)}: image in {path} has unsupported data type {image.dtype}")
    if image.size == 0:
        raise ConversionError(f"{case_name(case_id)}: image in {path} is empty (shape {image.shape})")
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise ConversionError(f"{case_name(case_id)}: image in {path} contains NaN or infinite values")
    low, high = image.min(initial=0.0), image.max(initial=0.0)
    if low < _TRANSUNET_RANGE[0] or high > _TRANSUNET_RANGE[1]:
        raise ConversionError(
            f"{case_name(case_id)}: image in {path} has values in [{low:g}, {high:g}], not TransUNet's "
            "[0, 1] scaling of HU [-125, 275]"
        )


def _restore_hu(values: np.ndarray) -> np.ndarray:
    """HU volume from TransUNet intensities (same shape): int16 when the source was integer HU.

    ``400 * v - 125`` of float32 ``v`` lands within ~1e-4 of the original integer HU, so rounding
    restores it exactly and halves the file size (float noise compresses badly). Data that were not
    integer HU before scaling stay float32.
    """
    hu = transunet_to_hu(values)
    rounded = np.rint(hu)
    if np.max(np.abs(hu - rounded), initial=0.0) <= _INTEGER_HU_TOLERANCE:
        return rounded.astype(np.int16)
    return hu


_ENTRIES = ("image", "label")


def _load_pair(path: Path, case_id: int, read: Callable[[Path], tuple[list[str], dict[str, np.ndarray]]],
               read_errors: tuple[type, ...], ndim: int, shape_text: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) of one file; ``read(path)`` gives the names of all its entries and the arrays
    of ``image`` and ``label``. An unreadable file, a missing entry or shapes other than two equal
    ``ndim``-D ones is a ConversionError."""
    try:
        keys, arrays = read(path)
    except read_errors as err:
        raise ConversionError(f"{case_name(case_id)}: cannot read {path} (corrupt or truncated?): {err}") from err
    missing = [k for k in _ENTRIES if k not in arrays]
    if missing:
        raise ConversionError(
            f"{case_name(case_id)}: {path} lacks {' and '.join(repr(k) for k in missing)} (found keys {sorted(keys)})"
        )
    image, label = arrays["image"], arrays["label"]
    if image.ndim != ndim or label.shape != image.shape:
        raise ConversionError(
            f"{case_name(case_id)}: {path} has image shape {image.shape} and label shape {label.shape}; "
            f"expected two equal {shape_text} shapes"
        )
    return image, label


def _read_npz(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    # np.load takes any non-zip file for a pickle and then complains about pickles; say what is wrong.
    if not zipfile.is_zipfile(path):
        raise ValueError("not an npz (zip) archive")
    with np.load(path, allow_pickle=False) as data:
        return list(data.files), {key: data[key] for key in _ENTRIES if key in data.files}


def _read_h5(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    import h5py

    with h5py.File(path, "r") as data:
        return list(data.keys()), {key: data[key][()] for key in _ENTRIES if key in data}


def _load_npz_slice(path: Path, case_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) of one ``train_npz`` slice, both (H, W)."""
    errors = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)
    return _load_pair(path, case_id, _read_npz, errors, 2, "2D")


def _load_h5_volume(path: Path, case_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) of one ``test_vol_h5`` volume, both (D, H, W)."""
    return _load_pair(path, case_id, _read_h5, (OSError, ValueError, KeyError, TypeError), 3, "D x H x W")


def convert_case(case: TransUNetCase, images_dir: Path, labels_dir: Path, spacing: Spacing) -> CaseResult:
    """Convert one TransUNet case into (z, y, x) = (D, H, W) NIfTI volumes in HU."""
    import SimpleITK as sitk

    if case.kind == "npz":
        images, labels = [], []
        for path in case.files:  # already in slice order
            image, label = _load_npz_slice(path, case.case_id)
            if images and image.shape != images[0].shape:
                raise ConversionError(
                    f"{case_name(case.case_id)}: slice {path} has shape {image.shape}, "
                    f"but {case.files[0].name} has {images[0].shape}"
                )
            _check_transunet_image(image, path, case.case_id)
            labels.append(check_label_values(label, MAX_BENCHMARK_LABEL, path, case_name(case.case_id)))
            images.append(image)
        volume = np.stack(images, axis=0)
        label_volume = np.stack(labels, axis=0)
    elif case.kind == "h5":
        path = case.files[0]
        volume, raw_label = _load_h5_volume(path, case.case_id)
        _check_transunet_image(volume, path, case.case_id)
        label_volume = check_label_values(raw_label, MAX_BENCHMARK_LABEL, path, case_name(case.case_id))
    else:  # pragma: no cover - scan only makes these two kinds
        raise ValueError(f"unknown TransUNet case kind {case.kind!r}")

    hu = _restore_hu(volume)
    geometry = {"spacing": tuple(float(s) for s in spacing), "origin": (0.0, 0.0, 0.0)}
    name = case_name(case.case_id)
    for array, out in (
        (hu, images_dir / f"{name}_0000{FILE_ENDING}"),
        (label_volume, labels_dir / f"{name}{FILE_ENDING}"),
    ):
        image = sitk.GetImageFromArray(array)  # array (z, y, x) = (D, H, W)
        image.SetSpacing(geometry["spacing"])
        image.SetOrigin(geometry["origin"])
        sitk.WriteImage(image, str(out), True)
    return case_result(case.case_id, label_volume)


TRANSUNET = SourceFormat(name="transunet", title="TransUNet", find_root=find_root, scan=scan,
                         check_spacing=check_spacing, convert_case=convert_case, spacing_note=spacing_note)
