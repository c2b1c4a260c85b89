"""Shared helpers of the conversion and phantom tests: running the CLI, reading converted cases."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def console_script(name: str) -> str:
    """Path of a console script of this environment (the venv's bin folder first, then PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"console script {name} not found beside {sys.executable} or on PATH")
    return found


def nnunet_env(base: Path) -> Dict[str, str]:
    """Environment with nnUNet_raw/_preprocessed/_results pointing into ``base`` (not created)."""
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(base / "nnUNet_raw"),
        nnUNet_preprocessed=str(base / "nnUNet_preprocessed"),
        nnUNet_results=str(base / "nnUNet_results"),
    )
    return env


def run_cli(args: Sequence[str], env: Dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``smaformer ARGS`` and capture its output."""
    return subprocess.run(
        [console_script("smaformer"), *map(str, args)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


def read_case(path: Path) -> Tuple[np.ndarray, Tuple[float, ...], Tuple[float, ...], Tuple[float, ...]]:
    """(array (z, y, x), spacing, origin, direction) of a NIfTI file, as SimpleITK reads it."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def leftovers(env: Dict[str, str]) -> list:
    """Everything inside nnUNet_raw and nnUNet_preprocessed (hidden temporary folders included)."""
    found = []
    for var in ("nnUNet_raw", "nnUNet_preprocessed"):
        folder = Path(env[var])
        if folder.is_dir():
            found.extend(sorted(folder.iterdir()))
    return found
