"""Qualitative overlays: one PNG per axial slice with image, ground truth and prediction.

Each PNG has three panels side by side: the CT slice in a Hounsfield window (default the
Synapse window [-125, 275] HU), the ground truth over it, the prediction over it. Every label
has a fixed colour, and a legend names the labels present in the slice. Slices are indexed
along the first array axis of SimpleITK's ``(z, y, x)`` arrays, i.e. the file's third (k)
index, and shown as stored (rows = y, columns = x) with the in-plane spacing as aspect ratio.

Rendering uses matplotlib's object API with the Agg canvas, never pyplot, so no display or
global backend state is involved.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunetv2_smaformer.errors import EvaluationError
from nnunetv2_smaformer.evaluation.io import read_scalar_image
from nnunetv2_smaformer.paths import PathLike
from nnunetv2_smaformer.synapse import HU_WINDOW

logger = logging.getLogger(__name__)


#: The display window of the image: Synapse's abdominal CT window in HU.
DEFAULT_WINDOW: tuple[float, float] = HU_WINDOW

# Fixed, well-separated colours (RGB in [0, 1]); label L uses entry (L - 1) mod len.
_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.10, 0.10),  # red
    (0.10, 0.70, 0.20),  # green
    (0.15, 0.35, 0.95),  # blue
    (1.00, 0.85, 0.00),  # yellow
    (0.00, 0.85, 0.85),  # cyan
    (0.90, 0.20, 0.90),  # magenta
    (1.00, 0.55, 0.00),  # orange
    (0.55, 0.25, 0.85),  # purple
    (0.55, 0.85, 0.25),  # lime
    (0.95, 0.55, 0.70),  # pink
    (0.00, 0.50, 0.50),  # teal
    (0.65, 0.40, 0.15),  # brown
    (0.60, 0.60, 1.00),  # light blue
    (0.50, 0.00, 0.00),  # maroon
    (0.50, 0.50, 0.00),  # olive
    (0.00, 0.00, 0.50),  # navy
)


def label_color(label: int) -> tuple[float, float, float]:
    """Fixed RGB colour of a positive label."""
    return _PALETTE[(int(label) - 1) % len(_PALETTE)]


def _color_overlay(labels: np.ndarray, alpha: float) -> np.ndarray:
    """RGBA image ``(y, x, 4)`` for a 2D label slice ``(y, x)``; background is transparent."""
    rgba = np.zeros(labels.shape + (4,), dtype=np.float32)
    for label in np.unique(labels):
        if label <= 0:
            continue
        rgba[labels == label] = (*label_color(int(label)), alpha)
    return rgba


def select_slices(gt: np.ndarray, pred: np.ndarray, count: int) -> list[int]:
    """The ``count`` axial slices with the most foreground (ground truth or prediction).

    Args:
        gt, pred: label maps ``(z, y, x)``.

    Returns:
        Ascending slice indices; only slices with foreground, or the middle slice if the
        volumes hold no foreground at all.
    """
    if count < 1:
        raise EvaluationError(f"--auto needs a positive slice count, got {count}")
    foreground = np.count_nonzero((gt > 0) | (pred > 0), axis=(1, 2))
    if not foreground.any():
        logger.warning("no foreground in ground truth or prediction; using the middle slice")
        return [gt.shape[0] // 2]
    # Stable sort on the negated counts: ties go to the lower slice index.
    order = np.argsort(-foreground, kind="stable")[:count]
    return sorted(int(z) for z in order if foreground[z] > 0)


def render_slice(
    image: np.ndarray,
    gt: np.ndarray,
    pred: np.ndarray,
    out_path: PathLike,
    label_names: dict[int, str] | None = None,
    window: tuple[float, float] = DEFAULT_WINDOW,
    aspect: float = 1.0,
    title: str = "",
    alpha: float = 0.5,
) -> Path:
    """Write one three-panel PNG (image | ground truth | prediction) for 2D slices ``(y, x)``.

    Args:
        aspect: pixel height / width, i.e. ``spacing_y / spacing_x``.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    label_names = label_names or {}
    lo, hi = window
    height, width = image.shape
    panel_w = 4.0
    panel_h = panel_w * height * aspect / width
    fig = Figure(figsize=(3 * panel_w, panel_h + 1.0), dpi=100)
    axes = fig.subplots(1, 3)
    for ax, overlay, panel_title in (
        (axes[0], None, "image"),
        (axes[1], gt, "ground truth"),
        (axes[2], pred, "prediction"),
    ):
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        if overlay is not None:
            ax.imshow(_color_overlay(overlay, alpha), aspect=aspect, interpolation="nearest")
        ax.set_title(panel_title)
        ax.set_axis_off()
    present = sorted(int(v) for v in np.union1d(np.unique(gt), np.unique(pred)) if v > 0)
    if present:
        handles = [
            Patch(color=label_color(label), label=f"{label} {label_names.get(label, '')}".strip())
            for label in present
        ]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88 if title else 0.95, bottom=0.12 if present else 0.02,
                        wspace=0.03)
    out_path = Path(out_path)
    fig.savefig(out_path, format="png")
    return out_path


def _read_volume(path: PathLike, role: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """Scalar volume as array ``(z, y, x)`` (2D files get z = 1) and spacing ``(sz, sy, sx)``."""
    array, spacing = read_scalar_image(path, role)
    if array.ndim == 2:
        array, spacing = array[None], (1.0,) + spacing
    if array.ndim != 3:
        raise EvaluationError(f"{role} {path} is {array.ndim}D; expected a 2D or 3D image")
    return array, spacing


def _case_name(path: Path) -> str:
    name = path.name
    for ending in (".nii.gz", ".nii", ".mha", ".nrrd", ".png"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return path.stem


def write_overlays(
    image_path: PathLike,
    gt_path: PathLike,
    pred_path: PathLike,
    out_dir: PathLike,
    slices: Sequence[int] | None = None,
    auto: int | None = None,
    label_names: dict[int, str] | None = None,
    window: tuple[float, float] = DEFAULT_WINDOW,
    alpha: float = 0.5,
) -> list[Path]:
    """Write ``<case>_slice<z>.png`` for the chosen axial slices; returns the PNG paths.

    Args:
        slices: slice indices along the array's z axis; if ``None``, ``auto`` (default 3)
            slices with the most foreground are picked.
        label_names: legend names per label (missing -> the number only).
        window: display range of the image (HU for CT).

    Raises:
        EvaluationError: unreadable files, shape mismatch, or slice indices out of range.
    """
    image_path, gt_path, pred_path = Path(image_path), Path(gt_path), Path(pred_path)
    image, spacing = _read_volume(image_path, "image")
    gt, _ = _read_volume(gt_path, "ground truth")
    pred, _ = _read_volume(pred_path, "prediction")
    for role, path, array in (("ground truth", gt_path, gt), ("prediction", pred_path, pred)):
        if array.shape != image.shape:
            raise EvaluationError(
                f"shape mismatch: {role} {path} is {array.shape}, image {image_path} is {image.shape} (z, y, x)"
            )
    if window[0] >= window[1]:
        raise EvaluationError(f"window must be LOW < HIGH, got {window}")
    if not 0.0 <= alpha <= 1.0:
        raise EvaluationError(f"alpha must be in [0, 1], got {alpha}")
    if slices:
        bad = [z for z in slices if not 0 <= z < image.shape[0]]
        if bad:
            raise EvaluationError(f"slice(s) {bad} out of range 0..{image.shape[0] - 1} for {image_path}")
        chosen = sorted(set(int(z) for z in slices))
    else:
        chosen = select_slices(gt, pred, 3 if auto is None else auto)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    case = _case_name(pred_path)
    aspect = float(spacing[1] / spacing[2])
    written = []
    for z in chosen:
        path = render_slice(
            image[z].astype(np.float32),
            gt[z],
            pred[z],
            out_dir / f"{case}_slice{z:04d}.png",
            label_names=label_names,
            window=window,
            aspect=aspect,
            title=f"{case}  slice {z}",
            alpha=alpha,
        )
        written.append(path)
        logger.debug("wrote %s", path)
    return written
