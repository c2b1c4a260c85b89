"""Side-by-side report of trained nnU-Net models (SMAFormerV2 and stock nnU-Net) on one dataset.

:func:`compare` takes a :class:`CompareConfig`: per method an nnU-Net model folder
(``$nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<configuration>``) and a folder of its
predictions. It writes into ``out_dir``:

* ``<method>/synapse_eval.{json,csv,md}``: the Synapse evaluation of each prediction folder
  (:func:`nnunetv2_smaformer.evaluation.evaluate.evaluate_folders`);

With ``folds`` (cross-validation) a method is a model folder alone: its ``fold_k/validation`` predictions of those
folds are pooled (:mod:`.cross_validation`) and evaluated as one set, and the report adds each fold's means.
* ``report.json``, ``report.md``: per-organ DSC and HD95 side by side; per-case paired DSC differences of each
  method against the first, with bootstrap intervals and Wilcoxon p (:mod:`.paired`); model facts (parameters and
  GMACs of the trained network, epoch time from the checkpoint's log and from nnU-Net's benchmark
  trainers, inference seconds per case); the network-level side-by-side at 256x256
  (:mod:`nnunetv2_smaformer.speed.side_by_side`); the environment;
* ``dsc_per_organ.png``: grouped bars of DSC per organ, one colour per method.

The work is split by job: :mod:`nnunetv2_smaformer.model_folder` reads model folders and checkpoints,
:mod:`.model_facts` measures the trained networks and inference, :mod:`.report` renders the files. Inference time
per case is measured with ``nnUNetPredictor`` when images are given, else read from ``PRED_FOLDER/timing.json``.
"""
from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nnunetv2_smaformer.comparison.cross_validation import per_fold, pool_validation
from nnunetv2_smaformer.comparison.model_facts import (
    list_images,
    time_inference,
    trained_network_facts,
)
from nnunetv2_smaformer.comparison.paired import paired_comparison
from nnunetv2_smaformer.comparison.report import (
    DSC_PNG,
    EVALUATION_JSON,
    REPORT_JSON,
    REPORT_MD,
    render_markdown,
    write_dsc_chart,
)
from nnunetv2_smaformer.errors import EvaluationError, SMAFormerError
from nnunetv2_smaformer.evaluation.evaluate import EvaluationResult, evaluate_folders, write_outputs
from nnunetv2_smaformer.machine import machine_info
from nnunetv2_smaformer.model_folder import (
    DEFAULT_CHECKPOINT,
    ModelFolder,
    check_same_dataset,
    epoch_times,
    find_benchmark_results,
    inspect_model_folder,
    load_checkpoint,
    method_keys,
    read_json,
    read_timing_file,
)
from nnunetv2_smaformer.nnunet_env import temporary_environ
from nnunetv2_smaformer.paths import PathLike
from nnunetv2_smaformer.synapse import HD95_UNITS

logger = logging.getLogger(__name__)

#: SMAFormerV2 trainer used for the network side-by-side when no compared method is one.
DEFAULT_SMAFORMER_TRAINER = "nnUNetTrainerSMAFormerV2"


@dataclass(frozen=True)
class CompareConfig:
    """What to compare and how.

    Attributes:
        methods: ``(model folder, prediction folder)`` per method, at least two, same dataset; with ``folds``,
            ``(model folder, None)``.
        gt_dir: reference label maps (e.g. ``labelsTr`` or ``labelsTs``), matched by file name.
        out_dir: where ``report.{md,json}``, ``dsc_per_organ.png`` and ``<method>/synapse_eval.*`` go.
        fold, checkpoint_name: which checkpoint of each model folder describes the model.
        folds: cross-validation: pool each method's ``fold_k/validation`` predictions of these folds instead of
            reading prediction folders; the first of them is the fold whose checkpoint describes the model.
        dataset_json: labels, organ names and file ending; default: the first model folder's.
        hd95_unit: ``"voxel"`` (published tables) or ``"mm"``.
        images_dir: raw images (``CASE_0000.nii.gz``) to time inference on, the first ``time_cases``
            cases, per method on ``device``; without it ``PRED_FOLDER/timing.json`` is read if present.
        network_benchmark: also run the network-level side-by-side (SMAFormerV2 vs the stock 2D
            network of the dataset's plans) at ``img_size`` with ``batch_size``, ``steps``, ``warmup``.
        device: ``"cpu"`` or ``"cuda[:N]"`` for inference timing and the network side-by-side.
        jobs, progress: evaluation worker processes and progress bar.
    """

    methods: Sequence[tuple[PathLike, PathLike]]
    gt_dir: PathLike
    out_dir: PathLike
    fold: int | str = 0
    checkpoint_name: str = DEFAULT_CHECKPOINT
    folds: Sequence[int] | None = None
    dataset_json: PathLike | None = None
    hd95_unit: str = "voxel"
    images_dir: PathLike | None = None
    time_cases: int = 2
    network_benchmark: bool = True
    steps: int = 5
    warmup: int = 2
    batch_size: int = 2
    img_size: int = 256
    device: str = "cpu"
    jobs: int | None = None
    progress: bool = False

    def check(self) -> None:
        """Raise :class:`SMAFormerError` for settings no folder needs to be read to refuse."""
        if len(self.methods) < 2:
            raise SMAFormerError(
                f"compare needs at least 2 methods (--method MODEL_FOLDER PRED_FOLDER), got {len(self.methods)}")
        if self.hd95_unit not in HD95_UNITS:
            raise SMAFormerError(f"hd95_unit must be one of {HD95_UNITS}, got {self.hd95_unit!r}")
        if self.folds is not None:
            if not self.folds or len(set(self.folds)) != len(self.folds) or min(self.folds) < 0:
                raise SMAFormerError(f"folds must be distinct fold numbers >= 0, got {list(self.folds)}")
            given = [str(pred) for _, pred in self.methods if pred is not None]
            if given:
                raise SMAFormerError("with folds (cross-validation) a method is its model folder alone: predictions "
                                     f"are read from fold_k/validation, not from {', '.join(given)}")
        elif any(pred is None for _, pred in self.methods):
            raise SMAFormerError("every method needs a prediction folder (MODEL_FOLDER PRED_FOLDER), unless folds "
                                 "are given (cross-validation)")
        if self.time_cases < 1:
            raise SMAFormerError(f"time_cases must be at least 1, got {self.time_cases}")


@dataclass(frozen=True)
class _Method:
    """One compared method: its model folder, checkpoint and predictions."""

    key: str
    folder: ModelFolder
    checkpoint: dict
    trainer: str
    configuration: str
    predictions: Path | None  # with cross-validation, the pooled validation predictions once linked


def compare(config: CompareConfig) -> dict:
    """Evaluate and describe two or more trained models side by side; write the report files.

    Returns:
        The report dict written to ``report.json``: ``dataset``, ``methods`` (evaluation JSON per
        method), ``models`` (facts per method), ``network``, ``environment``, ``files``.

    Raises:
        SMAFormerError / EvaluationError: bad folders, different datasets or cases, missing files.
    """
    config.check()
    fold = config.folds[0] if config.folds else config.fold
    folders = [inspect_model_folder(model, fold, config.checkpoint_name) for model, _ in config.methods]
    predictions = [None if pred is None else Path(pred).expanduser().resolve() for _, pred in config.methods]
    for pred in predictions:
        if pred is not None and not pred.is_dir():
            raise EvaluationError(f"prediction folder {pred} does not exist")
    dataset_name = check_same_dataset(folders)
    dataset_json = (Path(config.dataset_json).expanduser().resolve() if config.dataset_json
                    else folders[0].dataset_json_path)
    out_dir = Path(config.out_dir).expanduser().resolve()
    file_ending = read_json(dataset_json, "dataset.json").get("file_ending", ".nii.gz")

    import torch

    if torch.device(config.device).type == "cuda" and not torch.cuda.is_available():
        raise SMAFormerError(f"device {config.device}: CUDA is not available on this machine")

    with temporary_environ(), tempfile.TemporaryDirectory(prefix="smaformer_compare_") as tmp:
        # trained networks and nnUNetPredictor look their trainer up by name
        methods = _load_methods(folders, predictions)
        case_folds = None
        if config.folds:
            pooled, case_folds = pool_validation(folders, [m.key for m in methods], config.folds, file_ending,
                                                 Path(tmp))
            methods = [replace(m, predictions=p) for m, p in zip(methods, pooled)]
        evaluations = _evaluate(methods, config, dataset_json)
        evaluation_files = _write_evaluations(evaluations, out_dir)
        image_cases = None
        if config.images_dir is not None:
            image_cases = list_images(config.images_dir, file_ending, config.time_cases)
        models = {m.key: _model_facts(m, config, fold, image_cases, evaluation_files[m.key]) for m in methods}
        del methods  # the checkpoints
        network = _network(folders, models, config)

    report = {
        "dataset": dataset_name,
        "fold": fold,
        "folds": list(config.folds) if config.folds else None,
        "ground_truth": str(Path(config.gt_dir).expanduser().resolve()),
        "dataset_json": str(dataset_json),
        "hd95_unit": config.hd95_unit,
        "methods": {key: result.to_json() for key, result in evaluations.items()},
        "paired": paired_comparison(evaluations),
        "models": models,
        "network": network,
        "environment": machine_info(config.device),
        "files": {"markdown": str(out_dir / REPORT_MD), "json": str(out_dir / REPORT_JSON),
                  "dsc_chart": str(out_dir / DSC_PNG)},
    }
    if case_folds is not None:
        report["cross_validation"] = {"folds": list(config.folds), "case_folds": case_folds,
                                      "per_fold": per_fold(evaluations, case_folds)}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_dsc_chart(evaluations, out_dir / DSC_PNG, title=f"DSC per organ, {dataset_name}")
    (out_dir / REPORT_MD).write_text(render_markdown(report, evaluations), encoding="utf-8")
    (out_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    logger.info("report written to %s", out_dir)
    return report


def _load_methods(folders: list[ModelFolder], predictions: list[Path | None]) -> list[_Method]:
    """Checkpoints read; trainer and configuration from the checkpoint, else from the folder name."""
    checkpoints = [load_checkpoint(folder.checkpoint) for folder in folders]
    trainers = [str(ckpt.get("trainer_name") or folder.trainer) for folder, ckpt in zip(folders, checkpoints)]
    keys = method_keys(folders, trainers)
    return [
        _Method(key, folder, ckpt, trainer, str((ckpt.get("init_args") or {}).get("configuration")
                                                or folder.configuration), pred)
        for key, folder, ckpt, trainer, pred in zip(keys, folders, checkpoints, trainers, predictions)
    ]


def _evaluate(methods: list[_Method], config: CompareConfig, dataset_json: Path) -> dict[str, EvaluationResult]:
    """Segmentation quality, with one label set (the dataset.json) for all methods, on the same cases."""
    evaluations: dict[str, EvaluationResult] = {}
    for method in methods:
        logger.info("evaluating %s: %s", method.key, method.predictions)
        evaluations[method.key] = evaluate_folders(method.predictions, Path(config.gt_dir).expanduser().resolve(),
                                                   dataset_json=dataset_json, hd95_unit=config.hd95_unit,
                                                   jobs=config.jobs, progress=config.progress)
    case_sets = {key: sorted(result.per_case) for key, result in evaluations.items()}
    if len({tuple(cases) for cases in case_sets.values()}) > 1:
        listing = "; ".join(f"{key}: {', '.join(cases)}" for key, cases in case_sets.items())
        raise EvaluationError(f"the prediction folders hold different cases, the comparison would be unfair: {listing}")
    return evaluations


def _write_evaluations(evaluations: dict[str, EvaluationResult], out_dir: Path) -> dict[str, dict[str, str]]:
    files: dict[str, dict[str, str]] = {}
    for key, result in evaluations.items():
        paths = write_outputs(result, out_dir / key / EVALUATION_JSON)
        files[key] = dict(zip(("json", "csv", "md"), map(str, paths)))
    return files


def _model_facts(method: _Method, config: CompareConfig, fold: int | str, image_cases: list[list[str]] | None,
                 evaluation_files: dict[str, str]) -> dict[str, object]:
    """Facts of one trained model: names, network size and cost, epoch times, inference time."""
    predictions = (f"{method.folder.path}/fold_{{{','.join(map(str, config.folds))}}}/validation" if config.folds
                   else str(method.predictions))
    facts: dict[str, object] = {
        "model_folder": str(method.folder.path), "prediction_folder": predictions,
        "trainer": method.trainer, "plans": method.folder.plans_name, "configuration": method.configuration,
        "fold": fold, "checkpoint": str(method.folder.checkpoint),
    }
    facts.update(trained_network_facts(method.folder, method.checkpoint, method.trainer, method.configuration))
    facts.update(epoch_times(method.checkpoint))
    facts["benchmark_epochs"] = find_benchmark_results(method.folder, method.trainer, method.configuration, fold)
    if image_cases is not None:
        facts["inference"] = time_inference(method.folder, fold, config.checkpoint_name, image_cases, config.device)
    elif config.folds:
        facts["inference"] = {"seconds_per_case": None, "source": "not measured (validation predictions)"}
    else:
        facts["inference"] = (read_timing_file(method.predictions)
                              or {"seconds_per_case": None, "source": "not measured"})
    facts["evaluation_files"] = evaluation_files
    return facts


def _network(folders: list[ModelFolder], models: dict[str, dict[str, object]], config: CompareConfig) -> dict:
    """Network-level side-by-side at ``img_size``: SMAFormerV2 against the dataset's stock 2D network."""
    if not config.network_benchmark:
        return {"skipped": "disabled (--no-network-benchmark)"}
    from nnunetv2_smaformer.speed.side_by_side import network_side_by_side

    keys = list(models)
    smaformer_trainer = next((models[k]["trainer"] for k in keys if models[k]["is_smaformer"]),
                             DEFAULT_SMAFORMER_TRAINER)
    # The SMAFormerV2 trainer changes only the patch and batch size in its plans, so any model folder's
    # plans hold the stock 2D architecture; a stock method's plans are preferred all the same.
    plans_folder = next((f for k, f in zip(keys, folders) if not models[k]["is_smaformer"]), folders[0])
    return network_side_by_side(str(smaformer_trainer), plans_folder.plans_path, plans_folder.dataset_json_path,
                                configuration="2d", batch_size=config.batch_size, img_size=config.img_size,
                                steps=config.steps, warmup=config.warmup, device=config.device)
