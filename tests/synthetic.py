"""Tiny synthetic nnU-Net raw datasets (NIfTI with a real spacing) for the CLI tests."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def _blobs(shape: tuple[int, int, int], num_labels: int, rng: np.random.Generator) -> np.ndarray:
    """Label map [z, y, x] with one ellipsoid per foreground label at a random place."""
    zz, yy, xx = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    seg = np.zeros(shape, dtype=np.uint8)
    for label in range(1, num_labels + 1):
        centre = [rng.uniform(0.3 * s, 0.7 * s) for s in shape]
        radii = [max(1.5, rng.uniform(0.15, 0.3) * s) for s in shape]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), centre, radii)) <= 1.0
        seg[inside] = label
    return seg


def write_dataset(
    raw_root: Path,
    dataset_id: int,
    name: str,
    num_cases: int = 5,
    channel_names: Sequence[str] = ("CT",),
    num_labels: int = 3,
    shape: tuple[int, int, int] = (8, 64, 64),
    spacing_xyz: tuple[float, float, float] = (0.8, 0.8, 3.0),
    seed: int = 0,
) -> Path:
    """Write ``Dataset{id}_{name}`` with ``num_cases`` training cases; returns the dataset folder.

    CT-like channels get HU-scaled intensities, others MRI-like arbitrary units; each label has
    its own mean intensity so the task is learnable.
    """
    rng = np.random.default_rng(seed)
    folder = raw_root / f"Dataset{dataset_id:03d}_{name}"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for case in range(num_cases):
        seg = _blobs(shape, num_labels, rng)
        for channel, channel_name in enumerate(channel_names):
            ct = channel_name.upper() == "CT"
            base, step, noise = (-100.0, 60.0, 20.0) if ct else (100.0 + 50 * channel, 80.0, 15.0)
            image = base + step * seg.astype(np.float32) + rng.normal(0, noise, shape).astype(np.float32)
            _write(image, folder / "imagesTr" / f"case_{case:03d}_{channel:04d}.nii.gz", spacing_xyz)
        _write(seg, folder / "labelsTr" / f"case_{case:03d}.nii.gz", spacing_xyz)
    labels: dict[str, int] = {"background": 0, **{f"organ{i}": i for i in range(1, num_labels + 1)}}
    dataset_json = {
        "channel_names": {str(i): c for i, c in enumerate(channel_names)},
        "labels": labels,
        "numTraining": num_cases,
        "file_ending": ".nii.gz",
        "name": name,
    }
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    return folder


def _write(array: np.ndarray, path: Path, spacing_xyz: tuple[float, float, float]) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin((-20.0, 15.0, 100.0))
    sitk.WriteImage(image, str(path))
