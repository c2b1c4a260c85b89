"""Reading label maps and images for evaluation and overlays (SimpleITK, imported lazily)."""
from __future__ import annotations

import numpy as np

from nnunetv2_smaformer.errors import EvaluationError
from nnunetv2_smaformer.paths import PathLike


def read_scalar_image(path: PathLike, role: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """A one-component image as array ``(z, y, x)`` (or ``(y, x)``) and its spacing in that axis order.

    ``role`` ("prediction", "image", ...) names the file in error messages.
    """
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise EvaluationError(f"cannot read {role} {path}: {err}".splitlines()[0]) from err
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise EvaluationError(f"{role} {path} has several components per pixel; expected a scalar image")
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))
