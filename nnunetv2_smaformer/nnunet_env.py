"""nnU-Net's environment: the trainer folder for ``nnUNet_extTrainer``, one context manager that sets
variables for in-process nnU-Net calls and restores them afterwards, and which datasets use an id.

A leaf module (standard library only), so that the CLI, the conversion, the demo and the benchmarks share
it without importing each other, torch or nnU-Net.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

EXT_TRAINER_VARIABLE = "nnUNet_extTrainer"
NNUNET_FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def trainer_dir() -> Path:
    """The folder of thin modules that re-export this package's trainers (for ``nnUNet_extTrainer``)."""
    return Path(__file__).resolve().parent / "nnunet_trainers"


def with_trainer_dir(ext_trainer: str | None) -> str:
    """A ``nnUNet_extTrainer`` value that lists :func:`trainer_dir`, after the folders already in ``ext_trainer``."""
    folders = [p for p in (ext_trainer or "").split(os.pathsep) if p.strip()]
    if str(trainer_dir()) not in folders:
        folders.append(str(trainer_dir()))
    return os.pathsep.join(folders)


@contextlib.contextmanager
def nnunet_environ(values: Mapping[str, str] | None = None, register_trainers: bool = True) -> Iterator[None]:
    """Set environment variables for in-process nnU-Net calls (and child processes), then restore them.

    nnU-Net reads ``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results`` and ``nnUNet_extTrainer``
    from ``os.environ`` when it needs them, so a temporary change is enough. ``values`` are set first;
    with ``register_trainers`` this package's trainer folder is then appended to ``nnUNet_extTrainer``
    (the trainer lookup by name finds them, as ``nnUNetv2_predict`` would).
    """
    updates = dict(values or {})
    if register_trainers:
        updates[EXT_TRAINER_VARIABLE] = with_trainer_dir(updates.get(EXT_TRAINER_VARIABLE,
                                                                     os.environ.get(EXT_TRAINER_VARIABLE)))
    saved = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def datasets_using_id(folder: Path, dataset_id: int) -> list[Path]:
    """Dataset folders in ``folder`` (an nnU-Net root such as ``$nnUNet_raw``) named ``DatasetXXX_*`` for this id."""
    if not folder.is_dir():
        return []
    prefix = f"Dataset{dataset_id:03d}_"
    return sorted(p for p in folder.iterdir() if p.name.startswith(prefix))
