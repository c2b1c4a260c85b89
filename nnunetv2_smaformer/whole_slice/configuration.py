"""Whole-slice 2D configurations: the original SMAFormerV2's (TransUNet's) protocol as an nnU-Net configuration.

The original trains and tests on every slice resized to 256x256: the whole field of view at lower resolution, one
network input per slice. In nnU-Net terms that is a 2D configuration whose in-plane spacing makes the dataset's
median slice ``size x size``, with a ``size x size`` patch. nnU-Net's plans hold such custom configurations
(``inherits_from``, their own ``spacing``, ``patch_size`` and ``data_identifier``), ``nnUNetv2_preprocess -c NAME``
preprocesses them and every stock command takes them with ``-c NAME``; inference resamples each prediction back to
its case's original grid. A planner given with ``-pl`` is only looked up inside nnU-Net's own package, so
:func:`add_whole_slice_configuration` plans the configuration itself, with the planner class the plans were made
with, and runs nnU-Net's preprocessor for it.

The configuration's marker and the pure readers are :mod:`.plans`; its training sampling is :mod:`.loader`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

from nnunetv2_smaformer.errors import ConfigurationError
from nnunetv2_smaformer.quiet import quiet
from nnunetv2_smaformer.whole_slice.plans import (
    DEFAULT_NAME,
    DEFAULT_SIZE,
    WHOLE_SLICE_KEY,
    check_request,
    median_depth,
)

logger = logging.getLogger(__name__)

#: The keys a whole-slice configuration sets; everything else is inherited from ``2d``.
PLANNED_KEYS = ("data_identifier", "spacing", "median_image_size_in_voxels", "patch_size", "batch_size",
                "architecture")
_TMP = ".smaformer_tmp_"


@dataclass(frozen=True)
class AddedConfiguration:
    """What :func:`add_whole_slice_configuration` did."""

    dataset: str
    plans_file: Path
    name: str
    configuration: dict
    #: ``"added"``, ``"replaced"``, ``"preprocessed"`` (plans already held it, data were missing) or ``"unchanged"``.
    action: str
    data_folder: Path


def _dataset_name(dataset: str) -> str:
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    if not os.environ.get("nnUNet_preprocessed") or not os.environ.get("nnUNet_raw"):
        raise ConfigurationError("nnUNet_raw and nnUNet_preprocessed must be set (nnU-Net's setting_up_paths.md)")
    try:
        return maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError) as err:
        raise ConfigurationError(f"dataset {dataset}: {str(err).splitlines()[0]}") from err


def plan_whole_slice(plans: dict, name: str, size: int, dataset: str, num_training: int) -> dict:
    """The plans entry of a whole-slice configuration ``name`` for ``plans`` of a dataset with ``num_training``
    training cases: spacing, patch, data identifier, and the architecture and batch size that the plans' own nnU-Net
    planner chooses for that spacing and patch."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(deepcopy(plans))
    if "2d" not in manager.available_configurations:
        raise ConfigurationError(f"the plans of {dataset} have no '2d' configuration to inherit from (available: "
                                 f"{', '.join(manager.available_configurations)}); plan it with "
                                 "nnUNetv2_plan_experiment -d ID")
    two_d = manager.get_configuration("2d")
    spacing = [float(m) * float(s) / size for m, s in zip(two_d.median_image_size_in_voxels, two_d.spacing)]
    median = [float(size)] * len(spacing)
    voxels = median_depth(plans) * size * size * num_training
    try:
        planner_class = manager.experiment_planner_class
    except Exception:  # nnU-Net's class search raises or returns None for an unknown name
        planner_class = None
    if planner_class is None:
        raise ConfigurationError(f"nnU-Net's planner {manager.experiment_planner_name}, which made these plans, is not "
                                 "found in the nnunetv2 package")
    with quiet("nnU-Net planner"):
        planner = planner_class(dataset, plans_name=manager.plans_name, preprocessor_name=two_d.preprocessor_name)
        planned = planner.get_plans_for_configuration(spacing, median, f"{manager.plans_name}_{name}", voxels, {})
    if [int(p) for p in planned["patch_size"]] != [size] * len(spacing):
        raise ConfigurationError(f"nnU-Net's planner ({manager.experiment_planner_name}) reduces the patch of a "
                                 f"{size}x{size} slice to {planned['patch_size']} for its memory target; choose a "
                                 "smaller --size")
    entry = {"inherits_from": "2d"}
    entry.update({key: planned[key] for key in PLANNED_KEYS})
    entry[WHOLE_SLICE_KEY] = {"size": int(size)}
    # JSON types throughout (the planner returns numpy values), so that entries compare as they are stored.
    return json.loads(json.dumps(entry, default=lambda value: value.tolist() if hasattr(value, "tolist") else value))


def _complete(data_folder: Path, cases: Sequence[str]) -> bool:
    """Whether ``data_folder`` holds preprocessed data of every case (nnU-Net writes a ``.pkl`` per case last)."""
    return data_folder.is_dir() and all((data_folder / f"{case}.pkl").is_file() for case in cases)


def _training_files(dataset: str) -> tuple[dict, dict[str, dict]]:
    """The raw dataset's ``dataset.json`` and nnU-Net's ``{case: {"images": [...], "label": path}}`` of its
    training cases."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    raw = Path(os.environ["nnUNet_raw"]) / dataset
    dataset_json = json.loads((raw / "dataset.json").read_text())
    return dataset_json, get_filenames_of_train_images_and_targets(str(raw), dataset_json)


def _write_json_atomically(path: Path, content: dict) -> None:
    tmp = path.with_name(f"{_TMP}{path.name}")
    tmp.write_text(json.dumps(content, indent=4) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _preprocess(dataset: str, plans: dict, plans_dir: Path, name: str, num_processes: int, progress: bool) -> Path:
    """nnU-Net's preprocessor for configuration ``name`` of ``plans``, into a hidden folder; returns that folder.

    The preprocessor reads its plans from a file named by the plans identifier, so a hidden copy of the plans (whose
    entry points at the hidden data folder) is written next to the real one and removed afterwards.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    tmp_plans = deepcopy(plans)
    final_identifier = tmp_plans["configurations"][name]["data_identifier"]
    tmp_plans["configurations"][name]["data_identifier"] = f"{_TMP}{final_identifier}"
    tmp_identifier = f"{_TMP}{plans['plans_name']}"
    tmp_file = plans_dir / f"{tmp_identifier}.json"
    tmp_file.write_text(json.dumps(tmp_plans, indent=4), encoding="utf-8")
    built = plans_dir / f"{_TMP}{final_identifier}"
    try:
        preprocessor = PlansManager(tmp_plans).get_configuration(name).preprocessor_class(verbose=False)
        preprocessor.show_progress_bar = progress
        preprocessor.run(dataset, name, tmp_identifier, num_processes=num_processes)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    finally:
        tmp_file.unlink(missing_ok=True)
    return built


def _copy_ground_truth(dataset: str, dataset_json: dict, training_files: dict[str, dict]) -> None:
    """The training labels in ``gt_segmentations`` (nnU-Net's validation reads them), as
    ``nnUNetv2_preprocess`` copies them; present already after ``nnUNetv2_plan_and_preprocess``."""
    target = Path(os.environ["nnUNet_preprocessed"]) / dataset / "gt_segmentations"
    target.mkdir(exist_ok=True)
    for case, files in training_files.items():
        destination = target / f"{case}{dataset_json['file_ending']}"
        if not destination.is_file():
            shutil.copyfile(files["label"], destination)


def _read_plans(plans_file: Path) -> dict:
    if not plans_file.is_file():
        raise ConfigurationError(f"{plans_file} does not exist: plan the dataset first (nnUNetv2_plan_and_preprocess "
                                 f"-d ID -c 2d, or nnUNetv2_plan_experiment -d ID), or name its plans with -p")
    try:
        return json.loads(plans_file.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ConfigurationError(f"{plans_file} is not a readable plans file: {err}") from err


def _refuse_other_settings(plans_file: Path, name: str, existing: dict, entry: dict) -> None:
    differing = sorted(k for k in set(existing) | set(entry) if existing.get(k) != entry.get(k))
    raise ConfigurationError(f"{plans_file} already has a configuration {name!r} with other settings (differing: "
                             f"{', '.join(differing)}); pass --overwrite to replace it or choose another --name")


def _publish(built: Path, data_folder: Path, plans_file: Path, new_plans: dict | None) -> None:
    """The preprocessed data ``built`` becomes ``data_folder`` (replacing what was there) and ``new_plans`` (if any)
    the plans file; if writing the plans fails, the previous data are put back."""
    plans_dir = plans_file.parent
    previous = plans_dir / f"{_TMP}previous_{data_folder.name}"
    if data_folder.exists():
        os.replace(data_folder, previous)
    os.replace(built, data_folder)
    try:
        if new_plans is not None:
            _write_json_atomically(plans_file, new_plans)
    except BaseException:
        os.replace(data_folder, plans_dir / f"{_TMP}failed_{data_folder.name}")
        if previous.exists():
            os.replace(previous, data_folder)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def add_whole_slice_configuration(dataset: str, plans_identifier: str = "nnUNetPlans", name: str = DEFAULT_NAME,
                                  size: int = DEFAULT_SIZE, num_processes: int = 4, overwrite: bool = False,
                                  progress: bool = True) -> AddedConfiguration:
    """Add (or find) the whole-slice configuration ``name`` in a dataset's plans and preprocess its data.

    Running it again with the same settings changes nothing; other configurations are never touched. On any
    error the plans file and existing data stay as they were and nothing half-written is left behind.

    Raises:
        ConfigurationError: unknown dataset, no plans yet, no ``2d`` configuration, a bad name or size, or a
            configuration of that name with other settings (unless ``overwrite``).
    """
    check_request(name, size)
    dataset = _dataset_name(str(dataset))
    plans_dir = Path(os.environ["nnUNet_preprocessed"]) / dataset
    plans_file = plans_dir / f"{plans_identifier}.json"
    plans = _read_plans(plans_file)
    dataset_json, training_files = _training_files(dataset)
    entry = plan_whole_slice(plans, name, size, dataset, int(dataset_json["numTraining"]))
    existing = plans["configurations"].get(name)
    data_folder = plans_dir / entry["data_identifier"]
    if existing == entry and _complete(data_folder, sorted(training_files)):
        logger.info("%s: configuration %s is already there with the same settings, its data complete; nothing to do",
                    dataset, name)
        return AddedConfiguration(dataset, plans_file, name, entry, "unchanged", data_folder)
    if existing is not None and existing != entry and not overwrite:
        _refuse_other_settings(plans_file, name, existing, entry)

    new_plans = deepcopy(plans)
    new_plans["configurations"][name] = entry
    logger.info("%s: preprocessing configuration %s (spacing %s mm, patch %s, batch %d) into %s", dataset, name,
                " x ".join(f"{s:.3f}" for s in entry["spacing"]), "x".join(map(str, entry["patch_size"])),
                entry["batch_size"], data_folder)
    built = None
    try:
        built = _preprocess(dataset, new_plans, plans_dir, name, num_processes, progress)
        _copy_ground_truth(dataset, dataset_json, training_files)
        _publish(built, data_folder, plans_file, new_plans if existing != entry else None)
        built = None
    finally:
        if built is not None:
            shutil.rmtree(built, ignore_errors=True)
        for leftover in plans_dir.glob(f"{_TMP}failed_*"):
            shutil.rmtree(leftover, ignore_errors=True)
    action = "preprocessed" if existing == entry else ("replaced" if existing is not None else "added")
    return AddedConfiguration(dataset, plans_file, name, entry, action, data_folder)
