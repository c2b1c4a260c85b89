"""Shared helpers of the conversion and phantom tests: the CLI (see :mod:`nnunet_cli`), reading converted cases."""
from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_cli import nnunet_env as _nnunet_env
from nnunet_cli import run, run_main  # noqa: F401  (re-exported for the conversion tests)
from nnunetv2_smaformer.processes import console_script  # noqa: F401  (re-exported for the conversion tests)

REPO = Path(__file__).resolve().parents[1]


def nnunet_env(base: Path) -> dict[str, str]:
    """Environment with nnUNet_raw/_preprocessed/_results pointing into ``base``, not created: the
    converter must make (or, on failure, not make) them itself."""
    return _nnunet_env(base, create=False)


def run_cli(args: Sequence[object], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``smaformer ARGS`` console script in a subprocess and capture its output."""
    return run(["smaformer", *args], env, timeout=int(timeout), check=False)


def read_case(path: Path) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(array (z, y, x), spacing, origin, direction) of a NIfTI file, as SimpleITK reads it."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def leftovers(env: dict[str, str]) -> list:
    """Everything inside nnUNet_raw and nnUNet_preprocessed (hidden temporary folders included)."""
    found = []
    for var in ("nnUNet_raw", "nnUNet_preprocessed"):
        folder = Path(env[var])
        if folder.is_dir():
            found.extend(sorted(folder.iterdir()))
    return found
