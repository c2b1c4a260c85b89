"""Synthetic abdominal CT phantoms written in either Synapse source layout, with known truth.

A phantom case is a (z, y, x) int16 HU volume with a body outline, a spine (bone, unlabelled) and
one ellipsoid per BTCV organ (all 13 labels), each with an organ-typical HU value plus Gaussian
noise. Cases differ by seeded jitter of organ positions and sizes and by their geometry (spacing,
origin, direction), so they exercise what a converter must keep or rebuild.

``write_btcv`` writes ``RawData/Training/img/imgNNNN.nii.gz`` + ``label/labelNNNN.nii.gz`` with
the case's geometry and the 13 BTCV labels; ``write_transunet`` writes what TransUNet's release
holds: training cases as ``train_npz/caseNNNN_sliceSSS.npz`` (one (H, W) slice per z index), test
cases as ``test_vol_h5/caseNNNN.npy.h5`` ((D, H, W) = (z, y, x)), intensities clipped to
[-125, 275] HU and scaled to [0, 1], labels already mapped to the 8 benchmark organs, plus the
lists ``train.txt`` / ``test_vol.txt``.

The same (case id, size, slices, seed) always gives the same case, so tests regenerate the truth
with :func:`make_phantom_case` and compare converted files with it voxel for voxel.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunetv2_smaformer.conversion.synapse_raw import hu_to_transunet, map_btcv_to_benchmark, transunet_to_hu
from nnunetv2_smaformer.synapse import ALL_CASES, TEST_CASES, TRAIN_CASES, case_name

logger = logging.getLogger(__name__)

LAYOUTS = ("btcv", "transunet")
LIST_PLACEMENTS = ("under", "beside", "none")

AIR_HU = -1000
BODY_HU = -90  # mostly fat
BONE_HU = 450
NOISE_HU = 12.0


@dataclass(frozen=True)
class _Blob:
    """An axis-aligned ellipsoid in normalised coordinates ([-1, 1] across each axis, x y z order)."""

    label: int  # BTCV label, 0 for unlabelled structures
    hu: int
    center: tuple[float, float, float]
    radii: tuple[float, float, float]


# Radiological view: patient right on the image left (small x), anterior at the top (small y).
# Painted in this order, so small organs drawn late stay visible where they overlap large ones.
_ANATOMY: tuple[_Blob, ...] = (
    _Blob(0, BONE_HU, (0.0, 0.55, 0.0), (0.13, 0.13, 2.0)),  # spine, through all slices
    _Blob(6, 60, (-0.4, -0.05, 0.2), (0.38, 0.42, 0.6)),  # liver
    _Blob(1, 50, (0.5, 0.2, 0.25), (0.15, 0.2, 0.35)),  # spleen
    _Blob(7, 25, (0.3, -0.2, 0.3), (0.22, 0.18, 0.3)),  # stomach
    _Blob(2, 150, (-0.35, 0.35, -0.3), (0.12, 0.15, 0.3)),  # right kidney
    _Blob(3, 150, (0.35, 0.35, -0.25), (0.12, 0.15, 0.3)),  # left kidney
    _Blob(11, 45, (0.12, 0.08, -0.05), (0.25, 0.07, 0.15)),  # pancreas
    _Blob(4, 15, (-0.25, -0.35, -0.1), (0.08, 0.1, 0.2)),  # gallbladder
    _Blob(10, 165, (0.0, -0.02, 0.15), (0.2, 0.04, 0.08)),  # portal & splenic vein
    _Blob(9, 130, (-0.12, 0.3, 0.0), (0.06, 0.06, 2.0)),  # inferior vena cava
    _Blob(8, 210, (0.08, 0.32, 0.0), (0.06, 0.06, 2.0)),  # aorta
    _Blob(5, 40, (0.04, 0.38, 0.65), (0.05, 0.05, 0.3)),  # esophagus
    _Blob(12, 30, (-0.22, 0.3, 0.4), (0.05, 0.05, 0.12)),  # right adrenal gland
    _Blob(13, 30, (0.22, 0.3, 0.4), (0.05, 0.05, 0.12)),  # left adrenal gland
)


@dataclass
class PhantomCase:
    """One synthetic case.

    ``hu``: (z, y, x) int16 HU; ``btcv_label``: (z, y, x) uint8 with BTCV labels 0-13.
    ``spacing``/``origin`` are (x, y, z) in mm and ``direction`` the row-major 3x3 matrix, all in
    SimpleITK's convention (what ``sitk.ReadImage`` of the written BTCV files returns).
    """

    case_id: int
    hu: np.ndarray
    btcv_label: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @property
    def name(self) -> str:
        return case_name(self.case_id)

    def benchmark_label(self) -> np.ndarray:
        """(z, y, x) uint8 labels 0-8 after the benchmark mapping."""
        return map_btcv_to_benchmark(self.btcv_label)

    def transunet_image(self) -> np.ndarray:
        """(z, y, x) float32 in [0, 1]: TransUNet's clipped and scaled intensities."""
        return hu_to_transunet(self.hu)

    def transunet_hu(self) -> np.ndarray:
        """(z, y, x) float32 HU a converter should recover from the TransUNet layout."""
        return transunet_to_hu(self.transunet_image())


def _case_rng(seed: int, case_id: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(case_id)])


def _paint(
    hu: np.ndarray, label: np.ndarray, blob: _Blob, center: np.ndarray, radii: np.ndarray
) -> None:
    """Paint one ellipsoid (voxel units, (x, y, z) order) into ``hu``/``label`` of shape (z, y, x)."""
    shape_xyz = np.array(hu.shape[::-1])
    low = np.maximum(np.floor(center - radii).astype(int), 0)
    high = np.minimum(np.ceil(center + radii).astype(int) + 1, shape_xyz)
    if np.any(high <= low):
        return
    z, y, x = np.ogrid[low[2]:high[2], low[1]:high[1], low[0]:high[0]]
    inside = (
        ((x - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2 + ((z - center[2]) / radii[2]) ** 2
    ) <= 1.0
    region = (slice(low[2], high[2]), slice(low[1], high[1]), slice(low[0], high[0]))
    hu[region][inside] = blob.hu
    if blob.label:
        label[region][inside] = blob.label


def make_phantom_case(case_id: int, size: int = 32, slices: int = 8, seed: int = 0,
                      spacing: tuple[float, float, float] | None = None) -> PhantomCase:
    """Build one case of ``slices`` x ``size`` x ``size`` voxels (z, y, x); deterministic in all inputs.

    ``spacing`` (x, y, z mm) fixes the geometry instead of drawing a BTCV-like one per case.
    """
    if size < 8 or slices < 2:
        raise ValueError(f"phantom needs size >= 8 and slices >= 2, got size {size}, slices {slices}")
    rng = _case_rng(seed, case_id)
    shape_xyz = np.array([size, size, slices], dtype=float)
    hu = np.full((slices, size, size), AIR_HU, dtype=np.int16)
    label = np.zeros((slices, size, size), dtype=np.uint8)

    # Body: elliptic cylinder through all slices.
    y, x = np.ogrid[:size, :size]
    cx, cy = (size - 1) / 2.0, (size - 1) / 2.0
    body = ((x - cx) / (0.92 * size / 2)) ** 2 + ((y - cy) / (0.75 * size / 2)) ** 2 <= 1.0
    hu[:, body] = BODY_HU

    # Every organ spans at least one voxel per axis so even tiny phantoms hold all 13 labels.
    centers: dict[int, np.ndarray] = {}
    for blob in _ANATOMY:
        jitter = rng.uniform(-0.04, 0.04, size=3)
        scale = rng.uniform(0.9, 1.1, size=3)
        center_norm = np.clip(np.array(blob.center) + jitter, -0.95, 0.95)
        center = (center_norm + 1.0) / 2.0 * shape_xyz - 0.5
        radii = np.maximum(np.array(blob.radii) * scale * shape_xyz / 2.0, 1.0)
        _paint(hu, label, blob, center, radii)
        if blob.label:
            centers[blob.label] = np.clip(np.round(center).astype(int), 0, shape_xyz.astype(int) - 1)
    for value, center in centers.items():
        if not np.any(label == value):  # fully covered by a later organ: keep one voxel of it
            hu[center[2], center[1], center[0]] = next(b.hu for b in _ANATOMY if b.label == value)
            label[center[2], center[1], center[0]] = value

    noise = rng.normal(0.0, NOISE_HU, size=hu.shape)
    noisy = np.clip(np.round(hu + noise), -1024, 3071).astype(np.int16)

    # Geometry like BTCV: in-plane 0.59-0.98 mm, slices 2.5-5 mm, scanner-specific origin; half
    # of the cases flipped in x and y, as NIfTI files from different converters are.
    in_plane = float(np.round(rng.uniform(0.59, 0.98), 4))
    drawn = (in_plane, in_plane, float(rng.choice([2.5, 3.0, 5.0])))
    spacing = drawn if spacing is None else tuple(float(v) for v in spacing)
    origin = tuple(float(np.round(v, 3)) for v in rng.uniform(-250.0, 50.0, size=3))
    if case_id % 2:
        direction: tuple[float, ...] = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    else:
        direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    return PhantomCase(case_id, noisy, label, spacing, origin, direction)  # type: ignore[arg-type]


def parse_case_selection(tokens: Iterable[str | int]) -> list[int]:
    """Case ids from tokens: numbers (``1``, ``0021``, ``case0021``) or ``all`` / ``train`` / ``test``."""
    ids: list[int] = []
    for token in tokens:
        text = str(token).strip().lower()
        if text == "all":
            ids.extend(ALL_CASES)
        elif text == "train":
            ids.extend(TRAIN_CASES)
        elif text == "test":
            ids.extend(TEST_CASES)
        else:
            digits = text[4:] if text.startswith("case") else text
            if not digits.isdigit() or int(digits) <= 0:
                raise ValueError(f"cannot parse case {token!r}: use a positive number, caseNNNN, all, train or test")
            ids.append(int(digits))
    return sorted(set(ids))


def write_btcv(out: Path, cases: Sequence[PhantomCase]) -> Path:
    """Write ``out/RawData/Training/{img,label}``; return the ``Training`` folder."""
    import SimpleITK as sitk

    root = Path(out) / "RawData" / "Training"
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "label").mkdir(parents=True, exist_ok=True)
    for case in cases:
        for array, path in (
            (case.hu, root / "img" / f"img{case.case_id:04d}.nii.gz"),
            (case.btcv_label, root / "label" / f"label{case.case_id:04d}.nii.gz"),
        ):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(case.spacing)
            image.SetOrigin(case.origin)
            image.SetDirection(case.direction)
            sitk.WriteImage(image, str(path), True)
    return root


def write_transunet(out: Path, cases: Sequence[PhantomCase], lists: str = "under") -> Path:
    """Write TransUNet's layout into ``out``; return ``out``.

    Test cases of the TransUNet split go to ``test_vol_h5``, every other case to ``train_npz``.
    ``lists``: ``under`` writes ``out/lists/lists_Synapse/{train.txt,test_vol.txt}`` (as in the
    TransUNet repository), ``beside`` writes them into ``out`` itself, ``none`` writes none.
    """
    import h5py

    if lists not in LIST_PLACEMENTS:
        raise ValueError(f"lists must be one of {LIST_PLACEMENTS}, got {lists!r}")
    out = Path(out)
    train_lines: list[str] = []
    test_lines: list[str] = []
    for case in cases:
        image = case.transunet_image()  # (z, y, x) = (D, H, W)
        label = case.benchmark_label().astype(np.float32)
        if case.case_id in TEST_CASES:
            folder = out / "test_vol_h5"
            folder.mkdir(parents=True, exist_ok=True)
            with h5py.File(folder / f"{case.name}.npy.h5", "w") as handle:
                handle.create_dataset("image", data=image)
                handle.create_dataset("label", data=label)
            test_lines.append(case.name)
        else:
            folder = out / "train_npz"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(image.shape[0]):
                np.savez_compressed(
                    folder / f"{case.name}_slice{index:03d}.npz", image=image[index], label=label[index]
                )
                train_lines.append(f"{case.name}_slice{index:03d}")
    if lists != "none":
        list_dir = out / "lists" / "lists_Synapse" if lists == "under" else out
        list_dir.mkdir(parents=True, exist_ok=True)
        (list_dir / "train.txt").write_text("".join(line + "\n" for line in train_lines))
        (list_dir / "test_vol.txt").write_text("".join(line + "\n" for line in test_lines))
    return out


def make_phantom(
    out: Path | str,
    layout: str,
    cases: Iterable[int] = ALL_CASES,
    size: int = 32,
    slices: int = 8,
    seed: int = 0,
    lists: str = "under",
    spacing: tuple[float, float, float] | None = None,
) -> list[PhantomCase]:
    """Generate ``cases`` and write them to ``out`` in ``layout`` (``btcv`` or ``transunet``).

    Returns the cases (the truth). TransUNet volumes keep the (z, y, x) order of the truth arrays.
    ``spacing`` (x, y, z mm) gives every case that geometry (default: drawn per case like BTCV's).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    phantoms = [make_phantom_case(i, size=size, slices=slices, seed=seed, spacing=spacing) for i in sorted(set(cases))]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if layout == "btcv":
        write_btcv(out, phantoms)
    else:
        write_transunet(out, phantoms, lists=lists)
    logger.info(
        "wrote %d phantom case(s) (%d x %d x %d, z y x) in the %s layout to %s",
        len(phantoms), slices, size, size, layout, out,
    )
    return phantoms


__all__ = [
    "LAYOUTS",
    "LIST_PLACEMENTS",
    "PhantomCase",
    "make_phantom_case",
    "make_phantom",
    "parse_case_selection",
    "write_btcv",
    "write_transunet",
]
