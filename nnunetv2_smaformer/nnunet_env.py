"""nnU-Net's environment: the trainer folder for ``nnUNet_extTrainer``, the environment of nnU-Net subprocesses
(:func:`folder_environment`), a context manager that sets variables for in-process nnU-Net calls and restores them
afterwards (:func:`temporary_environ`), and which dataset ids are in use.

A leaf module (standard library and the package's errors only), so that the CLI, the conversion, the demo and the
benchmarks share it without importing each other, torch or nnU-Net.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from nnunetv2_smaformer.errors import SMAFormerError

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


def folder_environment(root: Path, *, keep_user_folders: bool = False, trainer_dirs: Sequence[Path] = (),
                       create: bool = True, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for nnU-Net subprocesses with the nnU-Net folders in ``root``.

    ``root/nnUNet_raw``, ``root/nnUNet_preprocessed`` and ``root/nnUNet_results`` (made unless ``create`` is
    False), except that with ``keep_user_folders`` a folder variable already set in ``base`` (default: this
    process's environment) is kept. ``nnUNet_extTrainer`` lists ``trainer_dirs``, the folders already in it and
    this package's trainer folder, so that the trainers are found by name.
    """
    env = dict(os.environ if base is None else base)
    for name in NNUNET_FOLDER_VARIABLES:
        if not (keep_user_folders and env.get(name)):
            env[name] = str(Path(root) / name)
        if create:
            Path(env[name]).mkdir(parents=True, exist_ok=True)
    folders = [str(d) for d in trainer_dirs] + [p for p in env.get(EXT_TRAINER_VARIABLE, "").split(os.pathsep) if p]
    env[EXT_TRAINER_VARIABLE] = with_trainer_dir(os.pathsep.join(folders))
    return env


def with_cpu_worker_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with one augmentation worker (``nnUNet_n_proc_DA``) unless the user set another count: on a small
    CPU machine the other cores go to the network."""
    env = dict(env)
    env.setdefault("nnUNet_n_proc_DA", "1")
    return env


def nnunet_variables(env: Mapping[str, str], trainers: bool = True) -> dict[str, str]:
    """The nnU-Net folder variables of ``env``, and ``nnUNet_extTrainer`` with ``trainers``: what
    :func:`temporary_environ` needs so that in-process nnU-Net calls see the folders a subprocess would."""
    names = (*NNUNET_FOLDER_VARIABLES, EXT_TRAINER_VARIABLE) if trainers else NNUNET_FOLDER_VARIABLES
    return {name: env[name] for name in names if name in env}


@contextlib.contextmanager
def temporary_environ(values: Mapping[str, str] | None = None, register_trainers: bool = True) -> Iterator[None]:
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


def dataset_id_in_use(env: Mapping[str, str], dataset_id: int) -> bool:
    """Whether any of the nnU-Net folders of ``env`` holds a dataset with this id."""
    return any(datasets_using_id(Path(env[name]), dataset_id) for name in NNUNET_FOLDER_VARIABLES if env.get(name))


def free_dataset_id(env: Mapping[str, str], wanted: int | None, candidates: Sequence[int]) -> int:
    """``wanted`` if no dataset in the nnU-Net folders of ``env`` uses it (else an error), or the first unused
    id of ``candidates``."""
    if wanted is not None:
        if dataset_id_in_use(env, wanted):
            raise SMAFormerError(f"dataset id {wanted} is already used in your nnU-Net folders; existing datasets "
                                 f"are never touched: choose another --dataset-id")
        return wanted
    for dataset_id in candidates:
        if not dataset_id_in_use(env, dataset_id):
            return dataset_id
    raise SMAFormerError(f"no free dataset id between {min(candidates)} and {max(candidates)} in your nnU-Net folders")
