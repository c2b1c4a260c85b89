"""The BTCV raw release: ``RawData/Training/img/imgNNNN.nii.gz`` and ``label/labelNNNN.nii.gz``
(labels 0-13), finding, reading and converting its cases.

SRC may be the folder holding ``RawData``, the ``RawData`` folder, or the ``Training`` folder
itself. A converted case keeps the spacing, origin and direction of its NIfTI header and its HU
values; its label is mapped to the 8 benchmark organs on the image grid.
"""
from __future__ import annotations

import gzip
import re
import shutil
import zlib
from collections.abc import Sequence
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
from nnunetv2_smaformer.conversion.synapse_raw import FILE_ENDING, btcv_to_benchmark_lut
from nnunetv2_smaformer.errors import ConversionError
from nnunetv2_smaformer.synapse import MAX_BTCV_LABEL, case_name

_IMAGE_RE = re.compile(r"^img(?P<case>\d+)\.nii(\.gz)?$")
_LABEL_RE = re.compile(r"^label(?P<case>\d+)\.nii(\.gz)?$")
# Folders (relative to SRC) where the layout may start.
_ROOTS = (".", "Training", "RawData/Training", "Abdomen/RawData/Training")
# Header agreement required between an image and its label (mm for spacing/origin).
_GEOMETRY_ATOL = 1e-3
_DIRECTION_ATOL = 1e-4


@dataclass(frozen=True)
class BTCVCase:
    """One BTCV case: its image and label NIfTI files."""

    case_id: int
    image: Path
    label: Path


def find_root(src: Path) -> Path | None:
    """The folder under ``src`` holding ``img/`` and ``label/``, or None."""
    return first_root(src, _ROOTS, lambda root: (root / "img").is_dir() and (root / "label").is_dir())


def scan(root: Path, lists_dir: Path | None = None) -> dict[int, BTCVCase]:
    """Pair ``img/imgNNNN.nii.gz`` with ``label/labelNNNN.nii.gz`` under ``root``; case id -> files."""
    if lists_dir is not None:
        raise ConversionError("--lists only applies to the TransUNet layout")
    images = {key[0]: path for key, path in scan_folder(root / "img", _IMAGE_RE, "imgNNNN.nii.gz").items()}
    labels = {key[0]: path for key, path in scan_folder(root / "label", _LABEL_RE, "labelNNNN.nii.gz").items()}
    if not images and not labels:
        raise ConversionError(f"no cases found in {root / 'img'} and {root / 'label'}: both folders are empty")
    for case_id, image in images.items():
        if case_id not in labels:
            raise ConversionError(
                f"missing label for {case_name(case_id)}: {image} has no "
                f"{root / 'label' / f'label{case_id:04d}.nii.gz'}"
            )
    for case_id, label in labels.items():
        if case_id not in images:
            raise ConversionError(
                f"missing image for {case_name(case_id)}: {label} has no "
                f"{root / 'img' / f'img{case_id:04d}.nii.gz'}"
            )
    return {i: BTCVCase(i, images[i], labels[i]) for i in sorted(images)}


def check_spacing(spacing: Sequence[float] | None) -> Spacing:
    """None: BTCV spacing comes from the NIfTI headers, an explicit one is refused."""
    if spacing is not None:
        raise ConversionError("--spacing only applies to the TransUNet layout; BTCV spacing comes from the NIfTI "
                              "headers")
    return None


def spacing_note(spacing: Spacing) -> str:
    return "from the BTCV NIfTI headers"


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


def _read_nifti(path: Path, what: str, case_id: int) -> sitk.Image:  # noqa: F821
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


def _check_geometry(image: sitk.Image, label: sitk.Image, case: BTCVCase) -> None:  # noqa: F821
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


def convert_case(case: BTCVCase, images_dir: Path, labels_dir: Path, spacing: Spacing = None) -> CaseResult:
    """Convert one BTCV case: image kept (HU, geometry), label mapped 0-13 -> 0-8 on the image grid.

    ``spacing`` is always None: the NIfTI headers carry it (:func:`check_spacing`).
    """
    import SimpleITK as sitk

    image = _read_nifti(case.image, "image", case.case_id)
    label = _read_nifti(case.label, "label", case.case_id)
    _check_geometry(image, label, case)

    image_array = sitk.GetArrayViewFromImage(image)  # (z, y, x)
    if image_array.dtype.kind == "f" and not np.all(np.isfinite(image_array)):
        raise ConversionError(f"{case_name(case.case_id)}: image {case.image} contains NaN or infinite values")
    label_array = check_label_values(sitk.GetArrayFromImage(label), MAX_BTCV_LABEL, case.label, case_name(case.case_id))
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
    return case_result(case.case_id, mapped)


BTCV = SourceFormat(name="btcv", title="BTCV", find_root=find_root, scan=scan, check_spacing=check_spacing,
                    convert_case=convert_case, spacing_note=spacing_note)
