"""Convert a Synapse source release (BTCV raw or TransUNet npz/h5) into an nnU-Net v2 raw dataset.

Output, for dataset id ``ID``::

    $nnUNet_raw/DatasetID_Synapse/
        dataset.json                      channel "CT", labels 0-8 (benchmark organs)
        imagesTr/caseNNNN_0000.nii.gz     all converted cases (NNNN = BTCV number)
        labelsTr/caseNNNN.nii.gz
        imagesTs/, labelsTs/              relative symlinks to the test cases' files in *Tr
        splits_final.json                 copy of the split below (nnU-Net's planner copies it too)
    $nnUNet_preprocessed/DatasetID_Synapse/splits_final.json
                                          fold 0 = TransUNet split (train 18 / val 12)

Arrays follow SimpleITK's convention: ``sitk.GetArrayFromImage`` gives (z, y, x). A TransUNet
volume (D x H x W, also its ``train_npz`` slices stacked along D in slice order) becomes that
(z, y, x) array unchanged, with identity direction, zero origin and a constant spacing. A BTCV
case keeps the spacing, origin and direction of its NIfTI header and its HU values.

The dataset is built in a hidden temporary folder inside ``$nnUNet_raw`` and renamed into place
only when every case has converted, so a failure leaves nothing behind.
"""
from __future__ import annotations

import gzip
import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from nnunetv2_smaformer.conversion.sources import (
    BTCVCase,
    TransUNetCase,
    detect_layout,
    scan_btcv,
    scan_transunet,
)
from nnunetv2_smaformer.conversion.synapse import (
    BENCHMARK_LABELS,
    FILE_ENDING,
    MAX_BENCHMARK_LABEL,
    MAX_BTCV_LABEL,
    TEST_CASES,
    TRAIN_CASES,
    TRANSUNET_DEFAULT_SPACING,
    btcv_to_benchmark_lut,
    case_name,
    dataset_folder_name,
    format_case_list,
    make_dataset_json,
    make_splits,
    missing_cases,
    transunet_to_hu,
)
from nnunetv2_smaformer.errors import ConversionError

logger = logging.getLogger(__name__)

# Header agreement required between a BTCV image and its label (mm for spacing/origin).
_GEOMETRY_ATOL = 1e-3
_DIRECTION_ATOL = 1e-4
# TransUNet intensities lie in [0, 1]; allow float rounding, reject anything that is clearly not
# that scaling (raw HU, [0, 255] images), since 400 * v - 125 would silently produce garbage.
_TRANSUNET_RANGE = (-0.01, 1.01)
# Largest distance from an integer for 400 * v - 125 to count as integer HU (float32 rounding is ~1e-4).
_INTEGER_HU_TOLERANCE = 0.01
_TMP_PREFIX = ".tmp_"


@dataclass(frozen=True)
class CaseResult:
    """What one converted case contributes to the summary."""

    case_id: int
    shape_zyx: Tuple[int, int, int]
    voxels_per_label: Tuple[int, ...]  # benchmark labels 0-8


@dataclass
class ConversionSummary:
    """Result of :func:`convert_synapse`."""

    dataset_dir: Path
    splits_file: Path
    source_format: str
    cases: List[int]
    missing_train: List[int]
    missing_test: List[int]
    num_slices: int
    voxels_per_label: Dict[str, int] = field(default_factory=dict)

    @property
    def train_cases(self) -> List[int]:
        return [i for i in self.cases if i in TRAIN_CASES]

    @property
    def test_cases(self) -> List[int]:
        return [i for i in self.cases if i in TEST_CASES]


# --------------------------------------------------------------------------------------------
# Reading and checking single files (run inside worker processes)
# --------------------------------------------------------------------------------------------


def _first_line(err: BaseException) -> str:
    """ITK errors span many lines; the useful part is usually the last non-empty one."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _check_complete(path: Path, what: str, case_id: int) -> None:
    """Fail on a truncated or corrupt NIfTI file.

    Needed because SimpleITK reads a truncated ``.nii.gz`` without complaint and fills the missing
    voxels with garbage. Decompressing the whole stream verifies gzip's CRC and length; for an
    uncompressed ``.nii`` the file must hold header offset + voxel bytes.
    """
    problem = None
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as stream:
                while stream.read(1 << 24):
                    pass
        except (OSError, EOFError, zlib.error) as err:
            problem = str(err) or type(err).__name__
    else:
        import nibabel

        try:
            proxy = nibabel.load(str(path)).dataobj  # its offset is where the voxels start
            needed = int(proxy.offset) + int(np.prod(proxy.shape)) * np.dtype(proxy.dtype).itemsize
        except Exception as err:  # nibabel raises many types for unreadable headers
            problem = str(err) or type(err).__name__
        else:
            if path.stat().st_size < needed:
                problem = f"file holds {path.stat().st_size} bytes, the header needs {needed}"
    if problem is not None:
        raise ConversionError(f"{case_name(case_id)}: cannot read {what} {path} (corrupt or truncated?): {problem}")


def _read_nifti(path: Path, what: str, case_id: int) -> "sitk.Image":  # noqa: F821
    import SimpleITK as sitk

    _check_complete(path, what, case_id)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ConversionError(
            f"{case_name(case_id)}: cannot read {what} {path} (corrupt or truncated?): {_first_line(err)}"
        ) from err
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ConversionError(
            f"{case_name(case_id)}: {what} {path} is not a 3D single-channel image "
            f"(dimension {image.GetDimension()}, {image.GetNumberOfComponentsPerPixel()} components)"
        )
    return image


def _check_label_values(label: np.ndarray, max_label: int, path: Path, case_id: int) -> np.ndarray:
    """Return ``label`` as uint8 after checking it holds only integers 0..max_label."""
    if label.dtype.kind == "f":
        if not np.all(np.isfinite(label)):
            raise ConversionError(f"{case_name(case_id)}: label {path} contains NaN or infinite values")
        if not np.array_equal(label, np.round(label)):
            raise ConversionError(f"{case_name(case_id)}: label {path} contains non-integer values")
    elif label.dtype.kind not in "iub":
        raise ConversionError(f"{case_name(case_id)}: label {path} has unsupported data type {label.dtype}")
    low, high = label.min(initial=0), label.max(initial=0)
    if low < 0 or high > max_label:
        values = np.unique(label)
        bad = [int(v) for v in values if v < 0 or v > max_label][:10]  # integral: checked above
        raise ConversionError(
            f"{case_name(case_id)}: label {path} holds value(s) {bad} outside the expected 0-{max_label}"
        )
    return label.astype(np.uint8)


def _check_geometry(image: "sitk.Image", label: "sitk.Image", case: BTCVCase) -> None:  # noqa: F821
    problems = []
    if image.GetSize() != label.GetSize():
        problems.append(f"size (x, y, z) {image.GetSize()} vs {label.GetSize()}")
    else:
        if not np.allclose(image.GetSpacing(), label.GetSpacing(), rtol=0, atol=_GEOMETRY_ATOL):
            problems.append(f"spacing {image.GetSpacing()} vs {label.GetSpacing()}")
        if not np.allclose(image.GetOrigin(), label.GetOrigin(), rtol=0, atol=_GEOMETRY_ATOL):
            problems.append(f"origin {image.GetOrigin()} vs {label.GetOrigin()}")
        if not np.allclose(image.GetDirection(), label.GetDirection(), rtol=0, atol=_DIRECTION_ATOL):
            problems.append(f"direction {image.GetDirection()} vs {label.GetDirection()}")
    if problems:
        raise ConversionError(
            f"{case_name(case.case_id)}: label {case.label} does not match image {case.image}: " + "; ".join(problems)
        )


def _count_labels(label: np.ndarray) -> Tuple[int, ...]:
    return tuple(int(c) for c in np.bincount(label.ravel(), minlength=MAX_BENCHMARK_LABEL + 1))


def convert_btcv_case(case: BTCVCase, images_dir: Path, labels_dir: Path) -> CaseResult:
    """Convert one BTCV case: image kept (HU, geometry), label mapped 0-13 -> 0-8 on the image grid."""
    import SimpleITK as sitk

    image = _read_nifti(case.image, "image", case.case_id)
    label = _read_nifti(case.label, "label", case.case_id)
    _check_geometry(image, label, case)

    image_array = sitk.GetArrayViewFromImage(image)  # (z, y, x)
    if image_array.dtype.kind == "f" and not np.all(np.isfinite(image_array)):
        raise ConversionError(f"{case_name(case.case_id)}: image {case.image} contains NaN or infinite values")
    label_array = _check_label_values(sitk.GetArrayFromImage(label), MAX_BTCV_LABEL, case.label, case.case_id)
    mapped = btcv_to_benchmark_lut()[label_array]

    name = case_name(case.case_id)
    image_out = images_dir / f"{name}_0000{FILE_ENDING}"
    if case.image.name.endswith(".nii.gz"):
        # Already validated by the full read above; copying skips a slow re-compression and keeps the
        # header byte for byte.
        shutil.copyfile(case.image, image_out)
    else:
        sitk.WriteImage(image, str(image_out), True)
    label_image = sitk.GetImageFromArray(mapped)
    label_image.CopyInformation(image)  # exactly the image grid (headers agreed within tolerance)
    sitk.WriteImage(label_image, str(labels_dir / f"{name}{FILE_ENDING}"), True)
    return CaseResult(case.case_id, tuple(int(s) for s in mapped.shape), _count_labels(mapped))


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


def _load_npz_slice(path: Path, case_id: int) -> Tuple[np.ndarray, np.ndarray]:
    """(image, label) of one ``train_npz`` slice, both (H, W)."""
    # np.load takes any non-zip file for a pickle and then complains about pickles; say what is wrong.
    if not zipfile.is_zipfile(path):
        raise ConversionError(
            f"{case_name(case_id)}: cannot read {path} (corrupt or truncated?): not an npz (zip) archive"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            missing = [k for k in ("image", "label") if k not in keys]
            if missing:
                raise ConversionError(
                    f"{case_name(case_id)}: {path} lacks {' and '.join(repr(k) for k in missing)} "
                    f"(found keys {sorted(keys)})"
                )
            image, label = data["image"], data["label"]
    except ConversionError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as err:
        raise ConversionError(f"{case_name(case_id)}: cannot read {path} (corrupt or truncated?): {err}") from err
    if image.ndim != 2 or label.shape != image.shape:
        raise ConversionError(
            f"{case_name(case_id)}: {path} has image shape {image.shape} and label shape {label.shape}; "
            "expected two equal 2D shapes"
        )
    return image, label


def _load_h5_volume(path: Path, case_id: int) -> Tuple[np.ndarray, np.ndarray]:
    """(image, label) of one ``test_vol_h5`` volume, both (D, H, W)."""
    import h5py

    try:
        with h5py.File(path, "r") as data:
            missing = [k for k in ("image", "label") if k not in data]
            if missing:
                raise ConversionError(
                    f"{case_name(case_id)}: {path} lacks dataset(s) {', '.join(repr(k) for k in missing)} "
                    f"(found {sorted(data.keys())})"
                )
            image, label = data["image"][()], data["label"][()]
    except ConversionError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConversionError(f"{case_name(case_id)}: cannot read {path} (corrupt or truncated?): {err}") from err
    if image.ndim != 3 or label.shape != image.shape:
        raise ConversionError(
            f"{case_name(case_id)}: {path} has image shape {image.shape} and label shape {label.shape}; "
            "expected two equal D x H x W shapes"
        )
    return image, label


def convert_transunet_case(
    case: TransUNetCase, images_dir: Path, labels_dir: Path, spacing: Sequence[float]
) -> CaseResult:
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
            labels.append(_check_label_values(label, MAX_BENCHMARK_LABEL, path, case.case_id))
            images.append(image)
        volume = np.stack(images, axis=0)
        label_volume = np.stack(labels, axis=0)
    elif case.kind == "h5":
        path = case.files[0]
        volume, raw_label = _load_h5_volume(path, case.case_id)
        _check_transunet_image(volume, path, case.case_id)
        label_volume = _check_label_values(raw_label, MAX_BENCHMARK_LABEL, path, case.case_id)
    else:  # pragma: no cover - scan_transunet only makes these two kinds
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
    return CaseResult(case.case_id, tuple(int(s) for s in label_volume.shape), _count_labels(label_volume))


def _worker_init() -> None:
    # One ITK thread per process: the pool already uses all the cores we were given.
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)


def _convert_task(task: Tuple[str, object, str, str, Optional[Tuple[float, float, float]]]) -> CaseResult:
    fmt, case, images_dir, labels_dir, spacing = task
    if fmt == "btcv":
        return convert_btcv_case(case, Path(images_dir), Path(labels_dir))  # type: ignore[arg-type]
    return convert_transunet_case(case, Path(images_dir), Path(labels_dir), spacing)  # type: ignore[arg-type]


def _run_tasks(
    tasks: Sequence[tuple], num_processes: int, progress: bool, worker: Callable[[tuple], CaseResult] = _convert_task
) -> List[CaseResult]:
    """Run ``worker`` over ``tasks`` with a tqdm bar on stderr; the first failure stops everything."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    results: List[CaseResult] = []
    bar = tqdm(total=len(tasks), desc="Converting Synapse", unit="case", file=sys.stderr, disable=not progress)
    with bar, logging_redirect_tqdm():
        if num_processes <= 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(worker(task))
                bar.update()
        else:
            # spawn, not fork: the parent may already hold ITK threads, which fork does not copy safely.
            context = multiprocessing.get_context("spawn")
            with context.Pool(min(num_processes, len(tasks)), initializer=_worker_init) as pool:
                # Leaving the with-block on an exception terminates the remaining workers.
                for result in pool.imap_unordered(worker, tasks):
                    results.append(result)
                    bar.update()
    return sorted(results, key=lambda r: r.case_id)


# --------------------------------------------------------------------------------------------
# Destination handling
# --------------------------------------------------------------------------------------------


def nnunet_folders() -> Tuple[Path, Path]:
    """(nnUNet_raw, nnUNet_preprocessed) from the environment, read now (not at import time)."""
    values = {}
    for var in ("nnUNet_raw", "nnUNet_preprocessed"):
        value = os.environ.get(var, "").strip()
        if not value:
            raise ConversionError(
                f"environment variable {var} is not set; set nnUNet_raw, nnUNet_preprocessed and nnUNet_results "
                "as described in nnU-Net's documentation (setting_up_paths.md)"
            )
        values[var] = Path(value).expanduser()
    if not os.environ.get("nnUNet_results", "").strip():
        logger.warning("nnUNet_results is not set; nnU-Net training and inference will need it")
    return values["nnUNet_raw"], values["nnUNet_preprocessed"]


def _conflicting_datasets(folder: Path, dataset_id: int, name: str) -> List[Path]:
    """Other datasets using the same id (nnU-Net refuses ambiguous ids)."""
    if not folder.is_dir():
        return []
    prefix = f"Dataset{dataset_id:03d}_"
    return sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and p.name != name)


def _link_or_copy(target: Path, link: Path) -> str:
    """Make ``link`` point at ``target`` (same dataset folder): relative symlink, else hard link, else copy."""
    try:
        os.symlink(os.path.relpath(target, link.parent), link)
        return "symlink"
    except (OSError, NotImplementedError):
        pass
    try:
        os.link(target, link)
        return "hard link"
    except OSError:
        shutil.copyfile(target, link)
        return "copy"


def _write_json(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n")


def _install_splits(splits: object, preprocessed_dir: Path) -> Tuple[Path, Callable[[], None]]:
    """Write splits_final.json into the preprocessed dataset folder; return (path, undo)."""
    created_dir = not preprocessed_dir.exists()
    preprocessed_dir.mkdir(parents=True, exist_ok=True)
    target = preprocessed_dir / "splits_final.json"
    previous = target.read_bytes() if target.is_file() else None
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX + "splits_", suffix=".json", dir=preprocessed_dir)
    os.close(fd)
    try:
        _write_json(Path(tmp_name), splits)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise

    def undo() -> None:
        if previous is not None:
            target.write_bytes(previous)
        else:
            target.unlink(missing_ok=True)
            if created_dir:
                shutil.rmtree(preprocessed_dir, ignore_errors=True)

    return target, undo


def _move_into_place(built: Path, dest: Path) -> None:
    """Rename the finished temporary folder to ``dest``, replacing an existing one (``--overwrite``)."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(built, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX + "old_" + dest.name + "_", dir=dest.parent))
    old.rmdir()
    os.rename(dest, old)
    try:
        os.rename(built, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink()


# --------------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------------


def _validate_spacing(spacing: Optional[Sequence[float]], fmt: str) -> Optional[Tuple[float, float, float]]:
    if spacing is None:
        return TRANSUNET_DEFAULT_SPACING if fmt == "transunet" else None
    if fmt == "btcv":
        raise ConversionError("--spacing only applies to the TransUNet layout; BTCV spacing comes from the NIfTI headers")
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ConversionError(f"--spacing needs three positive numbers X Y Z in mm, got {list(spacing)}")
    return values  # type: ignore[return-value]


def default_num_processes() -> int:
    """Worker processes used by default: all cores, at most 8 (conversion is I/O and zlib bound)."""
    return max(1, min(8, os.cpu_count() or 1))


def convert_synapse(
    src: Path | str,
    dataset_id: int,
    fmt: str = "auto",
    overwrite: bool = False,
    spacing: Optional[Sequence[float]] = None,
    num_processes: Optional[int] = None,
    require_all: bool = False,
    lists_dir: Path | str | None = None,
    progress: bool = True,
) -> ConversionSummary:
    """Convert the Synapse release in ``src`` into ``$nnUNet_raw/Dataset{ID:03d}_Synapse``.

    ``fmt``: ``auto``, ``btcv`` or ``transunet``. ``spacing``: (x, y, z) mm for TransUNet volumes
    (default :data:`TRANSUNET_DEFAULT_SPACING`). Missing cases are logged as warnings and the split
    is built from the cases present, unless ``require_all`` makes them an error. Raises
    :class:`ConversionError` on any problem; then nothing is left in nnUNet_raw/nnUNet_preprocessed.
    """
    if not 1 <= int(dataset_id) <= 999:
        raise ConversionError(f"dataset id must be between 1 and 999, got {dataset_id}")
    raw_root, preprocessed_root = nnunet_folders()
    name = dataset_folder_name(int(dataset_id))
    dest = raw_root / name
    preprocessed_dir = preprocessed_root / name

    layout = detect_layout(Path(src), fmt)
    spacing_xyz = _validate_spacing(spacing, layout.fmt)
    if layout.fmt == "btcv":
        if lists_dir is not None:
            raise ConversionError("--lists only applies to the TransUNet layout")
        cases: Dict[int, object] = dict(scan_btcv(layout.root))
    else:
        cases = dict(scan_transunet(layout.root, Path(lists_dir) if lists_dir is not None else None))
    logger.info("found %d %s case(s) in %s", len(cases), layout.fmt, layout.root)

    missing_train, missing_test = missing_cases(cases)
    for kind, missing in (("training", missing_train), ("test", missing_test)):
        if missing:
            message = f"{len(missing)} Synapse {kind} case(s) missing from {layout.root}: {format_case_list(missing)}"
            if require_all:
                raise ConversionError(message + " (--require-all)")
            logger.warning("%s; the split is built from the cases present", message)
    present_train = [i for i in cases if i in TRAIN_CASES]
    present_test = [i for i in cases if i in TEST_CASES]
    if not present_train or not present_test:
        raise ConversionError(
            f"{layout.root} has {len(present_train)} training and {len(present_test)} test case(s); "
            "the TransUNet split needs at least one of each"
        )

    # Refuse before doing any work: existing data, ambiguous ids.
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise ConversionError(f"{dest} already exists; pass --overwrite to replace it")
    splits_target = preprocessed_dir / "splits_final.json"
    if splits_target.exists() and not overwrite:
        raise ConversionError(
            f"{splits_target} already exists (from an earlier conversion?); pass --overwrite to replace it"
        )
    conflicts = _conflicting_datasets(raw_root, int(dataset_id), name) + _conflicting_datasets(
        preprocessed_root, int(dataset_id), name
    )
    if conflicts:
        raise ConversionError(
            f"dataset id {dataset_id} is already used by {', '.join(str(c) for c in conflicts)}; choose another -d"
        )

    raw_root.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{name}_", dir=raw_root))
    try:
        # mkdtemp makes the folder private (0700); the dataset gets the usual umask permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(build, 0o777 & ~umask)
        dirs = {sub: build / sub for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs")}
        for folder in dirs.values():
            folder.mkdir()
        tasks = [
            (layout.fmt, case, str(dirs["imagesTr"]), str(dirs["labelsTr"]), spacing_xyz)
            for case in cases.values()
        ]
        workers = default_num_processes() if num_processes is None else max(1, int(num_processes))
        results = _run_tasks(tasks, workers, progress)

        link_kinds = set()
        for case_id in present_test:
            case = case_name(case_id)
            for sub, file_name in (("images", f"{case}_0000{FILE_ENDING}"), ("labels", f"{case}{FILE_ENDING}")):
                link_kinds.add(_link_or_copy(dirs[f"{sub}Tr"] / file_name, dirs[f"{sub}Ts"] / file_name))
        if "copy" in link_kinds:
            logger.warning("this file system supports neither symbolic nor hard links; test cases were copied")

        if layout.fmt == "transunet":
            spacing_note = (
                f"constant (x, y, z) = {list(spacing_xyz)} mm: the TransUNet release stores no spacing"  # type: ignore[arg-type]
            )
        else:
            spacing_note = "from the BTCV NIfTI headers"
        splits = make_splits(cases)
        _write_json(
            build / "dataset.json",
            make_dataset_json(
                len(results),
                layout.fmt,
                spacing_note,
                extra={"numTest": len(present_test), "test_cases": splits[0]["val"]},
            ),
        )
        _write_json(build / "splits_final.json", splits)

        splits_file, undo_splits = _install_splits(splits, preprocessed_dir)
        try:
            _move_into_place(build, dest)
        except BaseException:
            undo_splits()
            raise
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise

    if overwrite and any(p.name != "splits_final.json" for p in preprocessed_dir.iterdir()):
        logger.warning(
            "%s holds preprocessed data from before this conversion; rerun nnUNetv2_plan_and_preprocess "
            "with --clean", preprocessed_dir,
        )

    totals = np.sum([r.voxels_per_label for r in results], axis=0)
    summary = ConversionSummary(
        dataset_dir=dest,
        splits_file=splits_file,
        source_format=layout.fmt,
        cases=[r.case_id for r in results],
        missing_train=missing_train,
        missing_test=missing_test,
        num_slices=int(sum(r.shape_zyx[0] for r in results)),
        voxels_per_label={
            name_: int(totals[value])
            for value, name_ in [(0, "background")] + sorted(BENCHMARK_LABELS.items())
        },
    )
    _log_summary(summary, link_kinds)
    return summary


def _log_summary(summary: ConversionSummary, link_kinds: Iterable[str]) -> None:
    logger.info(
        "converted %d case(s) from the %s layout into %s: %d training, %d test, %d slices in all",
        len(summary.cases), summary.source_format, summary.dataset_dir,
        len(summary.train_cases), len(summary.test_cases), summary.num_slices,
    )
    logger.info(
        "voxels per label: %s",
        ", ".join(f"{value} {name}={count}" for value, (name, count) in enumerate(summary.voxels_per_label.items())),
    )
    logger.info(
        "split (fold 0 of %s): train %d [%s], val %d [%s]; test cases linked in imagesTs/labelsTs (%s)",
        summary.splits_file, len(summary.train_cases), format_case_list(summary.train_cases),
        len(summary.test_cases), format_case_list(summary.test_cases), ", ".join(sorted(link_kinds)) or "none",
    )
    missing = summary.missing_train + summary.missing_test
    if missing:
        logger.warning(
            "incomplete Synapse: %d of 30 cases missing (training: %s; test: %s)",
            len(missing), format_case_list(summary.missing_train) or "none",
            format_case_list(summary.missing_test) or "none",
        )
