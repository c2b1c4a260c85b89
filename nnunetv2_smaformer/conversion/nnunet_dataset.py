"""Writing an nnU-Net raw dataset so that a failure leaves nothing behind: the machinery every converter here uses.

1. **plan**: :func:`dataset_target` (the id, nnU-Net's folders) and :func:`refuse_existing` (an existing dataset or
   ``splits_final.json`` without ``overwrite``, another dataset with the same id) run before any work;
2. **build**: :func:`build` fills a new hidden folder inside ``$nnUNet_raw`` with nnU-Net's four subfolders and
   removes it again when filling fails;
3. **publish**: :func:`publish` installs ``splits_final.json`` in ``$nnUNet_preprocessed``, then renames the built
   folder into place in one step (replacing the old dataset with ``overwrite``); the splits are undone when the
   rename fails.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from nnunetv2_smaformer.errors import ConversionError
from nnunetv2_smaformer.nnunet_env import datasets_using_id

logger = logging.getLogger(__name__)

#: Prefix of the hidden folders and files a conversion writes before it publishes.
TMP_PREFIX = ".tmp_"
SUBFOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")
SPLITS_FILE = "splits_final.json"

Filled = TypeVar("Filled")


@dataclass(frozen=True)
class DatasetTarget:
    """Where a converted dataset goes: ``$nnUNet_raw/<name>`` and its ``$nnUNet_preprocessed`` folder."""

    dataset_id: int
    raw_root: Path
    dest: Path
    preprocessed_dir: Path

    @property
    def splits_file(self) -> Path:
        return self.preprocessed_dir / SPLITS_FILE


def nnunet_folders() -> tuple[Path, Path]:
    """(nnUNet_raw, nnUNet_preprocessed) from the environment, read now (not at import time)."""
    values = {}
    for var in ("nnUNet_raw", "nnUNet_preprocessed"):
        value = os.environ.get(var, "").strip()
        if not value:
            raise ConversionError(
                f"environment variable {var} is not set; set nnUNet_raw, nnUNet_preprocessed and nnUNet_results "
                "as described in nnU-Net's documentation (setting_up_paths.md)"
            )
        values[var] = Path(value).expanduser()
    if not os.environ.get("nnUNet_results", "").strip():
        logger.warning("nnUNet_results is not set; nnU-Net training and inference will need it")
    return values["nnUNet_raw"], values["nnUNet_preprocessed"]


def dataset_target(dataset_id: int, name: str) -> DatasetTarget:
    """The target of dataset ``DatasetXXX_<name>``, after checking the id and nnU-Net's folder variables."""
    if not 1 <= int(dataset_id) <= 999:
        raise ConversionError(f"dataset id must be between 1 and 999, got {dataset_id}")
    raw_root, preprocessed_root = nnunet_folders()
    folder = f"Dataset{int(dataset_id):03d}_{name}"
    return DatasetTarget(int(dataset_id), raw_root, raw_root / folder, preprocessed_root / folder)


def refuse_existing(target: DatasetTarget, overwrite: bool) -> None:
    """Refuse, before any work, an existing dataset or ``splits_final.json`` (unless ``overwrite``) and another
    dataset with the same id (nnU-Net refuses ambiguous ids)."""
    if (target.dest.exists() or target.dest.is_symlink()) and not overwrite:
        raise ConversionError(f"{target.dest} already exists; pass --overwrite to replace it")
    if target.splits_file.exists() and not overwrite:
        raise ConversionError(
            f"{target.splits_file} already exists (from an earlier conversion?); pass --overwrite to replace it"
        )
    conflicts = [p for root in (target.raw_root, target.preprocessed_dir.parent)
                 for p in datasets_using_id(root, target.dataset_id) if p.name != target.dest.name]
    if conflicts:
        raise ConversionError(f"dataset id {target.dataset_id} is already used by "
                              f"{', '.join(str(c) for c in conflicts)}; choose another -d")


def default_num_processes() -> int:
    """Worker processes used by default: all cores, at most 8 (conversion is I/O and zlib bound)."""
    return max(1, min(8, os.cpu_count() or 1))


def one_itk_thread() -> None:
    """Worker initialiser: one ITK thread per process, since the pool already uses all the cores it was given."""
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)


def write_json(path: Path, content: object) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n")


def link_or_copy(target: Path, link: Path) -> str:
    """Make ``link`` point at ``target`` (same dataset folder): relative symlink, else hard link, else copy."""
    try:
        os.symlink(os.path.relpath(target, link.parent), link)
        return "symlink"
    except (OSError, NotImplementedError):
        pass
    try:
        os.link(target, link)
        return "hard link"
    except OSError:
        shutil.copyfile(target, link)
        return "copy"


def build(target: DatasetTarget, fill: Callable[[dict[str, Path]], Filled]) -> tuple[Path, Filled]:
    """A new hidden folder in ``$nnUNet_raw`` with nnU-Net's subfolders, filled by ``fill(folders)`` (the subfolders
    by name, and ``"root"``); returns the folder and what ``fill`` returned. The folder is removed when ``fill``
    fails."""
    target.raw_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.dest.name}_", dir=target.raw_root))
    try:
        # mkdtemp makes the folder private (0700); the dataset gets the usual umask permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(folder, 0o777 & ~umask)
        folders = {sub: folder / sub for sub in SUBFOLDERS}
        for sub_folder in folders.values():
            sub_folder.mkdir()
        return folder, fill({"root": folder, **folders})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _install_splits(splits: object, preprocessed_dir: Path) -> tuple[Path, Callable[[], None]]:
    """Write splits_final.json into the preprocessed dataset folder; return (path, undo)."""
    created_dir = not preprocessed_dir.exists()
    preprocessed_dir.mkdir(parents=True, exist_ok=True)
    target = preprocessed_dir / SPLITS_FILE
    previous = target.read_bytes() if target.is_file() else None
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + "splits_", suffix=".json", dir=preprocessed_dir)
    os.close(fd)
    try:
        write_json(Path(tmp_name), splits)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise

    def undo() -> None:
        if previous is not None:
            target.write_bytes(previous)
        else:
            target.unlink(missing_ok=True)
            if created_dir:
                shutil.rmtree(preprocessed_dir, ignore_errors=True)

    return target, undo


def _move_into_place(built: Path, dest: Path) -> None:
    """Rename the finished temporary folder to ``dest``, replacing an existing one (``--overwrite``)."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(built, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "old_" + dest.name + "_", dir=dest.parent))
    old.rmdir()
    os.rename(dest, old)
    try:
        os.rename(built, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink()


def publish(target: DatasetTarget, built: Path, splits: object) -> Path:
    """Install ``splits`` as ``splits_final.json`` and rename ``built`` into place; the built folder is removed and
    the splits undone when that fails. Returns the splits file."""
    try:
        splits_file, undo_splits = _install_splits(splits, target.preprocessed_dir)
        try:
            _move_into_place(built, target.dest)
        except BaseException:
            undo_splits()
            raise
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    if any(p.name != SPLITS_FILE for p in target.preprocessed_dir.iterdir()):
        logger.warning("%s holds preprocessed data from before this conversion; rerun nnUNetv2_plan_and_preprocess "
                       "with --clean", target.preprocessed_dir)
    return splits_file
