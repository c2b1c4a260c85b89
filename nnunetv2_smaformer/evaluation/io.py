"""Reading label maps and images for evaluation and overlays (SimpleITK, imported lazily)."""
from __future__ import annotations

from os import PathLike
from typing import Tuple, Union

import numpy as np

from nnunetv2_smaformer.errors import EvaluationError


def read_scalar_image(path: Union[str, PathLike], role: str) -> Tuple[np.ndarray, Tuple[float, ...]]:
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
