"""Trained nnU-Net model folders, read without building anything: names, checkpoints, the training log's epoch
times, nnU-Net's benchmark results and a prediction folder's ``timing.json``; and a linked copy of a model folder.

A model folder is ``$nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<configuration>`` with
``plans.json``, ``dataset.json`` and ``fold_N/checkpoint_*.pth``. torch is imported only to read a
checkpoint.
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.paths import PathLike

#: Optional file in a prediction folder: ``{"seconds_per_case": x}`` from whoever ran the prediction.
TIMING_FILE = "timing.json"
#: Written by nnU-Net's ``nnUNetTrainerBenchmark_5epochs*`` trainers (CUDA only).
BENCHMARK_FILE = "benchmark_result.json"
#: What nnUNetv2_train leaves at the end of a training: the checkpoint comparisons describe and predictions read.
DEFAULT_CHECKPOINT = "checkpoint_final.pth"

# nnU-Net's benchmark trainers: nnUNetTrainerBenchmark_5epochs, nnUNetTrainerSMAFormerV2_Benchmark_5epochs, ...
_BENCHMARK_TRAINER = re.compile(r"^(?P<root>.+?)_?Benchmark_5epochs(?:_noDataLoading)?$")


@dataclass(frozen=True)
class ModelFolder:
    """An nnU-Net model folder as read without torch (names from the folder and its plans.json)."""

    path: Path
    trainer: str | None  # from the folder name; the checkpoint's ``trainer_name`` wins
    plans_name: str
    configuration: str | None
    dataset_name: str
    checkpoint: Path

    @property
    def plans_path(self) -> Path:
        return self.path / "plans.json"

    @property
    def dataset_json_path(self) -> Path:
        return self.path / "dataset.json"


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SMAFormerError(f"cannot read {what} {path}: {err}") from err
    if not isinstance(data, dict):
        raise SMAFormerError(f"{what} {path} is not a JSON object")
    return data


def inspect_model_folder(folder: PathLike, fold: int | str = 0,
                         checkpoint_name: str = DEFAULT_CHECKPOINT) -> ModelFolder:
    """Check that ``folder`` is a trained nnU-Net model folder and read its names.

    Raises:
        SMAFormerError: naming the folder, when it, its ``plans.json``/``dataset.json`` or
            ``fold_<fold>/<checkpoint_name>`` is missing.
    """
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise SMAFormerError(f"model folder {path} does not exist")
    for name in ("plans.json", "dataset.json"):
        if not (path / name).is_file():
            raise SMAFormerError(f"model folder {path} has no {name}: not an nnU-Net model folder")
    checkpoint = path / f"fold_{fold}" / checkpoint_name
    if not checkpoint.is_file():
        raise SMAFormerError(
            f"model folder {path} has no fold_{fold}/{checkpoint_name} (train it to the end, or choose "
            f"another --fold/--checkpoint)")
    plans = read_json(path / "plans.json", "plans file")
    parts = path.name.split("__")
    trainer, configuration = (parts[0], parts[2]) if len(parts) == 3 else (None, None)
    return ModelFolder(
        path=path,
        trainer=trainer,
        plans_name=str(plans.get("plans_name", parts[1] if len(parts) == 3 else "?")),
        configuration=configuration,
        dataset_name=str(plans.get("dataset_name", path.parent.name)),
        checkpoint=checkpoint,
    )


def check_same_dataset(folders: Sequence[ModelFolder]) -> str:
    """The common dataset name of all model folders (from their ``plans.json``).

    Raises:
        SMAFormerError: naming the folders, when they were trained on different datasets.
    """
    names = {folder.dataset_name for folder in folders}
    if len(names) > 1:
        listing = "; ".join(f"{folder.path} -> {folder.dataset_name}" for folder in folders)
        raise SMAFormerError(f"the methods were trained on different datasets: {listing}")
    return names.pop()


def load_checkpoint(path: Path) -> dict:
    """An nnU-Net checkpoint on the CPU.

    ``weights_only=False`` as in nnU-Net itself: its checkpoints hold numpy values and the trainer's
    init arguments, so only load model folders you trust.
    """
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise SMAFormerError(f"cannot read checkpoint {path}: {err}".splitlines()[0]) from err
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise SMAFormerError(f"{path} is not an nnU-Net checkpoint (no 'network_weights')")
    return checkpoint


def epoch_times(checkpoint: dict) -> dict[str, object]:
    """Epoch durations from the checkpoint's log (nnU-Net's ``MetaLogger``: per-epoch start and end
    timestamps in seconds since the epoch).

    Returns ``{"epochs": n, "epoch_times_s": [...], "epoch_time_median_s": median or None}``.
    """
    logged = checkpoint.get("logging") or {}
    starts = logged.get("epoch_start_timestamps") or []
    ends = logged.get("epoch_end_timestamps") or []
    durations = [float(end) - float(start) for start, end in zip(starts, ends)]
    return {
        "epochs": int(checkpoint.get("current_epoch", len(durations))),
        "epoch_times_s": durations,
        "epoch_time_median_s": statistics.median(durations) if durations else None,
    }


def training_seconds(fold: Path, checkpoint_name: str = DEFAULT_CHECKPOINT) -> float:
    """Training time of a fold as nnU-Net logs it: the sum of its epoch durations (start-up excluded)."""
    return float(sum(epoch_times(load_checkpoint(Path(fold) / checkpoint_name))["epoch_times_s"]))


def _benchmark_root_matches(trainer: str, benchmark_trainer: str) -> bool:
    match = _BENCHMARK_TRAINER.match(benchmark_trainer)
    if match is None:
        return False
    root = match.group("root")
    return trainer == root or trainer.startswith(root + "_")


def find_benchmark_results(folder: ModelFolder, trainer: str, configuration: str,
                           fold: int | str) -> list[dict[str, object]]:
    """Fastest epochs recorded by nnU-Net's benchmark trainers for this model's trainer family.

    Looks at ``<model folder>/fold_<fold>/benchmark_result.json`` and at the benchmark trainers'
    own folders next to it with the same plans and configuration, e.g.
    ``nnUNetTrainerBenchmark_5epochs__nnUNetPlans__2d`` for ``nnUNetTrainer*`` and
    ``nnUNetTrainerSMAFormerV2_Benchmark_5epochs__nnUNetPlans__2d`` for ``nnUNetTrainerSMAFormerV2*``.
    Returns one record per machine entry: ``fastest_epoch_s``, ``gpu_name``, ``num_gpus``,
    ``benchmark_trainer``, ``file``.
    """
    candidates = [(trainer, folder.path / f"fold_{fold}" / BENCHMARK_FILE)]
    for sibling in sorted(folder.path.parent.iterdir()):
        parts = sibling.name.split("__")
        if (sibling.is_dir() and sibling != folder.path and len(parts) == 3
                and parts[1:] == [folder.plans_name, configuration] and _benchmark_root_matches(trainer, parts[0])):
            candidates.append((parts[0], sibling / f"fold_{fold}" / BENCHMARK_FILE))
    records: list[dict[str, object]] = []
    for benchmark_trainer, path in candidates:
        if not path.is_file():
            continue
        data = read_json(path, "benchmark result")
        for entry in data.values():
            fastest = entry.get("fastest_epoch") if isinstance(entry, dict) else None
            if isinstance(fastest, (int, float)) and not isinstance(fastest, bool):  # else: the run crashed
                records.append({"fastest_epoch_s": float(fastest), "gpu_name": entry.get("gpu_name"),
                                "num_gpus": entry.get("num_gpus"), "benchmark_trainer": benchmark_trainer,
                                "file": str(path)})
    return records


def read_timing_file(pred_folder: Path) -> dict[str, object] | None:
    """``PRED_FOLDER/timing.json`` (``{"seconds_per_case": x, ...}``) if present.

    Raises:
        SMAFormerError: the file exists but has no positive ``seconds_per_case``.
    """
    path = pred_folder / TIMING_FILE
    if not path.is_file():
        return None
    data = read_json(path, "timing file")
    seconds = data.get("seconds_per_case")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise SMAFormerError(f"{path}: expected {{\"seconds_per_case\": <positive number>}}, got {data}")
    return {**data, "seconds_per_case": float(seconds), "source": str(path)}


def method_keys(folders: Sequence[ModelFolder], trainers: Sequence[str]) -> list[str]:
    """Trainer names, or folder names where two methods share a trainer (then a number if still equal)."""
    keys = [trainer if trainers.count(trainer) == 1 else folder.path.name
            for folder, trainer in zip(folders, trainers)]
    seen: dict[str, int] = {}
    unique = []
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        unique.append(key if keys.count(key) == 1 else f"{key}_{seen[key]}")
    return unique


def linked_model_copy(model: Path, copy: Path) -> Path:
    """``copy``: a new copy of the model folder ``model`` whose files (plans, dataset.json) are copied and whose
    folders (the folds, with checkpoints of hundreds of MB) are linked; replaces what was at ``copy``. What nnU-Net
    writes at the model folder's level (plans changed for a run, cross-validation results) stays out of ``model``."""
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir(parents=True)
    for item in model.iterdir():
        if item.is_dir():
            (copy / item.name).symlink_to(item.resolve(), target_is_directory=True)
        else:
            shutil.copy(item, copy / item.name)
    return copy
