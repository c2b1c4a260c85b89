"""Side-by-side report of trained nnU-Net models (SMAFormerV2 and stock nnU-Net) on one dataset.

:func:`compare` takes, per method, an nnU-Net model folder
(``$nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<configuration>``) and a folder of its
predictions, and writes into ``out_dir``:

* ``<method>/synapse_eval.{json,csv,md}``: the Synapse evaluation of each prediction folder
  (:func:`nnunetv2_smaformer.evaluation.evaluate.evaluate_folders`);
* ``report.json``, ``report.md``: per-organ DSC and HD95 side by side; model facts (parameters and
  GMACs of the trained network, epoch time from the checkpoint's log and from nnU-Net's benchmark
  trainers, inference seconds per case); the network-level side-by-side at 256x256
  (:mod:`nnunetv2_smaformer.benchmark.side_by_side`); the environment;
* ``dsc_per_organ.png``: grouped bars of DSC per organ, one colour per method.

Inference time per case is measured with nnU-Net's ``nnUNetPredictor`` when images are given,
else read from ``PRED_FOLDER/timing.json`` (``{"seconds_per_case": x}``) when present.
torch and nnU-Net are imported inside the functions that need them.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from nnunetv2_smaformer.errors import EvaluationError, SMAFormerError
from nnunetv2_smaformer.evaluation.evaluate import HD95_UNITS, EvaluationResult, evaluate_folders, write_outputs

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
DSC_PNG = "dsc_per_organ.png"
EVALUATION_JSON = "synapse_eval.json"
#: Optional file in a prediction folder: ``{"seconds_per_case": x}`` from whoever ran the prediction.
TIMING_FILE = "timing.json"
#: Written by nnU-Net's ``nnUNetTrainerBenchmark_5epochs*`` trainers (CUDA only).
BENCHMARK_FILE = "benchmark_result.json"
DEFAULT_CHECKPOINT = "checkpoint_final.pth"
#: SMAFormerV2 trainer used for the network side-by-side when no compared method is one.
DEFAULT_SMAFORMER_TRAINER = "nnUNetTrainerSMAFormerV2"

# nnU-Net's benchmark trainers: nnUNetTrainerBenchmark_5epochs, nnUNetTrainerSMAFormerV2_Benchmark_5epochs, ...
_BENCHMARK_TRAINER = re.compile(r"^(?P<root>.+?)_?Benchmark_5epochs(?:_noDataLoading)?$")


@dataclass(frozen=True)
class ModelFolder:
    """An nnU-Net model folder as read without torch (names from the folder and its plans.json)."""

    path: Path
    trainer: Optional[str]  # from the folder name; the checkpoint's ``trainer_name`` wins
    plans_name: str
    configuration: Optional[str]
    dataset_name: str
    checkpoint: Path

    @property
    def plans_path(self) -> Path:
        return self.path / "plans.json"

    @property
    def dataset_json_path(self) -> Path:
        return self.path / "dataset.json"


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SMAFormerError(f"cannot read {what} {path}: {err}") from err
    if not isinstance(data, dict):
        raise SMAFormerError(f"{what} {path} is not a JSON object")
    return data


def inspect_model_folder(folder: PathLike, fold: Union[int, str] = 0,
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
    plans = _read_json(path / "plans.json", "plans file")
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


@contextlib.contextmanager
def _quiet(what: str) -> Iterator[None]:
    """nnU-Net reports with print(); keep stdout for the command's own summary and log it at debug level."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        if buffer.getvalue().strip():
            logger.debug("%s:\n%s", what, buffer.getvalue().rstrip())


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


def epoch_times(checkpoint: dict) -> Dict[str, object]:
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


def _benchmark_root_matches(trainer: str, benchmark_trainer: str) -> bool:
    match = _BENCHMARK_TRAINER.match(benchmark_trainer)
    if match is None:
        return False
    root = match.group("root")
    return trainer == root or trainer.startswith(root + "_")


def find_benchmark_results(folder: ModelFolder, trainer: str, configuration: str,
                           fold: Union[int, str]) -> List[Dict[str, object]]:
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
    records: List[Dict[str, object]] = []
    for benchmark_trainer, path in candidates:
        if not path.is_file():
            continue
        data = _read_json(path, "benchmark result")
        for entry in data.values():
            fastest = entry.get("fastest_epoch") if isinstance(entry, dict) else None
            if isinstance(fastest, (int, float)) and not isinstance(fastest, bool):  # else: the run crashed
                records.append({"fastest_epoch_s": float(fastest), "gpu_name": entry.get("gpu_name"),
                                "num_gpus": entry.get("num_gpus"), "benchmark_trainer": benchmark_trainer,
                                "file": str(path)})
    return records


def read_timing_file(pred_folder: Path) -> Optional[Dict[str, object]]:
    """``PRED_FOLDER/timing.json`` (``{"seconds_per_case": x, ...}``) if present.

    Raises:
        SMAFormerError: the file exists but has no positive ``seconds_per_case``.
    """
    path = pred_folder / TIMING_FILE
    if not path.is_file():
        return None
    data = _read_json(path, "timing file")
    seconds = data.get("seconds_per_case")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise SMAFormerError(f"{path}: expected {{\"seconds_per_case\": <positive number>}}, got {data}")
    return {**data, "seconds_per_case": float(seconds), "source": str(path)}


def list_images(images_dir: PathLike, file_ending: str, n_cases: int) -> List[List[str]]:
    """The first ``n_cases`` cases of an nnU-Net image folder (``CASE_0000<ending>``, ...), one list
    of channel files per case, in nnU-Net's case order."""
    from nnunetv2.utilities.utils import create_lists_from_splitted_dataset_folder

    folder = Path(images_dir).expanduser().resolve()
    if not folder.is_dir():
        raise SMAFormerError(f"image folder {folder} does not exist")
    cases = create_lists_from_splitted_dataset_folder(str(folder), file_ending)
    if not cases:
        raise SMAFormerError(f"no images CASE_XXXX{file_ending} in {folder}")
    return cases[:max(1, n_cases)]


def time_inference(model_folder: ModelFolder, fold: Union[int, str], checkpoint_name: str,
                   cases: List[List[str]], device_name: str) -> Dict[str, object]:
    """Seconds per case of nnU-Net's ``nnUNetPredictor`` on ``cases`` (model loading excluded).

    Each case is predicted as ``nnUNetv2_predict`` does by default (preprocessing, sliding window with
    step 0.5 and Gaussian weighting, the mirroring the checkpoint allows, resampling back), in this
    process, without writing files.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    device = torch.device(device_name)
    with _quiet("nnUNetPredictor"):
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                    perform_everything_on_device=device.type == "cuda", device=device,
                                    verbose=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(model_folder.path), use_folds=(fold,),
                                                       checkpoint_name=checkpoint_name)
    per_case: List[float] = []
    for files in cases:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with _quiet("nnUNetPredictor"):
            predictor.predict_from_files_sequential([files], None, save_probabilities=False, overwrite=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        per_case.append(time.perf_counter() - start)
    logger.info("%s: %.2f s per case (%d case(s), %s)", model_folder.path.name,
                statistics.mean(per_case), len(per_case), device_name)
    return {
        "seconds_per_case": statistics.mean(per_case),
        "per_case_s": per_case,
        "cases": [Path(files[0]).name for files in cases],
        "device": device_name,
        "source": "measured (nnUNetPredictor, in process)",
    }


def trained_network_facts(folder: ModelFolder, checkpoint: dict, trainer: str, configuration: str) -> Dict[str, object]:
    """Parameters and GMACs of the trained network, built the way nnU-Net builds it for inference.

    The trainer class is found by nnU-Net's lookup by name; ``build_network_architecture(...,
    enable_deep_supervision=False)`` builds the network and the checkpoint's weights are loaded
    strictly, so the counted network is the trained one. GMACs: one forward pass of a
    ``[1, C, *patch_size]`` input from the model's plans (1 MAC = 2 FLOPs).
    """
    import inspect

    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunetv2_smaformer.benchmark.side_by_side import count_gmacs, find_trainer_class, input_output_channels
    from nnunetv2_smaformer.training.trainer import nnUNetTrainerSMAFormerV2

    plans = _read_json(folder.plans_path, "plans file")
    dataset_json = _read_json(folder.dataset_json_path, "dataset.json")
    trainer_class = find_trainer_class(trainer)
    plans_manager = PlansManager(plans)
    if configuration not in plans_manager.available_configurations:
        raise SMAFormerError(f"{folder.plans_path} has no configuration '{configuration}' (the checkpoint's)")
    configuration_manager = plans_manager.get_configuration(configuration)
    n_in, n_out = input_output_channels(plans, configuration, dataset_json)
    with _quiet("build_network_architecture"):
        if "plans_manager" in inspect.signature(trainer_class.build_network_architecture).parameters:
            network = trainer_class.build_network_architecture(
                plans_manager, configuration_manager, n_in, n_out, enable_deep_supervision=False)
        else:  # trainers written for nnU-Net < 2.6
            network = trainer_class.build_network_architecture(
                configuration_manager.network_arch_class_name, configuration_manager.network_arch_init_kwargs,
                configuration_manager.network_arch_init_kwargs_req_import, n_in, n_out,
                enable_deep_supervision=False)
    weights = {key[7:] if key.startswith("module.") else key: value
               for key, value in checkpoint["network_weights"].items()}
    try:
        network.load_state_dict(weights)
    except RuntimeError as err:
        raise SMAFormerError(
            f"{folder.checkpoint}: the weights do not fit the network {trainer} builds: "
            f"{str(err).splitlines()[0]}") from err
    patch_size = [int(s) for s in configuration_manager.patch_size]
    facts: Dict[str, object] = {
        "architecture": type(network).__name__,
        "is_smaformer": issubclass(trainer_class, nnUNetTrainerSMAFormerV2),
        "input_channels": n_in,
        "output_channels": n_out,
        "patch_size": patch_size,
        "parameters": int(sum(p.numel() for p in network.parameters())),
        "gmacs": count_gmacs(network, (1, n_in, *patch_size)),
        "gmacs_input_shape": [1, n_in, *patch_size],
    }
    logger.info("%s: %s, %.2f M parameters, %.2f GMACs at %s", trainer, facts["architecture"],
                facts["parameters"] / 1e6, facts["gmacs"], "x".join(map(str, patch_size)))
    return facts


def _method_keys(folders: Sequence[ModelFolder], trainers: Sequence[str]) -> List[str]:
    """Trainer names, or folder names where two methods share a trainer (then a number if still equal)."""
    keys = [trainer if trainers.count(trainer) == 1 else folder.path.name
            for folder, trainer in zip(folders, trainers)]
    seen: Dict[str, int] = {}
    unique = []
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        unique.append(key if keys.count(key) == 1 else f"{key}_{seen[key]}")
    return unique


def _environment(device_name: str) -> Dict[str, object]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from nnunetv2_smaformer.benchmark.network import environment

    info = environment(torch.device(device_name))
    try:
        info["nnunetv2"] = version("nnunetv2")
    except PackageNotFoundError:
        info["nnunetv2"] = "unknown"
    info["python"] = platform.python_version()
    return info


def compare(
    methods: Sequence[Tuple[PathLike, PathLike]],
    gt_dir: PathLike,
    out_dir: PathLike,
    fold: Union[int, str] = 0,
    checkpoint_name: str = DEFAULT_CHECKPOINT,
    dataset_json: Optional[PathLike] = None,
    hd95_unit: str = "voxel",
    images_dir: Optional[PathLike] = None,
    time_cases: int = 2,
    network_benchmark: bool = True,
    steps: int = 5,
    warmup: int = 2,
    batch_size: int = 2,
    img_size: int = 256,
    device: str = "cpu",
    jobs: Optional[int] = None,
    progress: bool = False,
) -> dict:
    """Evaluate and describe two or more trained models side by side; write the report files.

    Args:
        methods: ``(model folder, prediction folder)`` per method, at least two, same dataset.
        gt_dir: reference label maps (e.g. ``labelsTr`` or ``labelsTs``), matched by file name.
        out_dir: where ``report.{md,json}``, ``dsc_per_organ.png`` and ``<method>/synapse_eval.*`` go.
        fold, checkpoint_name: which checkpoint of each model folder describes the model.
        dataset_json: labels, organ names and file ending; default: the first model folder's.
        hd95_unit: ``"voxel"`` (published tables) or ``"mm"``.
        images_dir: raw images (``CASE_0000.nii.gz``) to time inference on, the first ``time_cases``
            cases, per method on ``device``; without it ``PRED_FOLDER/timing.json`` is read if present.
        network_benchmark: also run the network-level side-by-side (SMAFormerV2 vs the stock 2D
            network of the dataset's plans) at ``img_size`` with ``batch_size``, ``steps``, ``warmup``.
        device: ``"cpu"`` or ``"cuda[:N]"`` for inference timing and the network side-by-side.
        jobs, progress: evaluation worker processes and progress bar.

    Returns:
        The report dict written to ``report.json``: ``dataset``, ``methods`` (evaluation JSON per
        method), ``models`` (facts per method), ``network``, ``environment``, ``files``.

    Raises:
        SMAFormerError / EvaluationError: bad folders, different datasets or cases, missing files.
    """
    if len(methods) < 2:
        raise SMAFormerError(f"compare needs at least 2 methods (--method MODEL_FOLDER PRED_FOLDER), got {len(methods)}")
    if hd95_unit not in HD95_UNITS:
        raise SMAFormerError(f"hd95_unit must be one of {HD95_UNITS}, got {hd95_unit!r}")
    if time_cases < 1:
        raise SMAFormerError(f"time_cases must be at least 1, got {time_cases}")
    folders = [inspect_model_folder(model, fold, checkpoint_name) for model, _ in methods]
    pred_folders = [Path(pred).expanduser().resolve() for _, pred in methods]
    for pred in pred_folders:
        if not pred.is_dir():
            raise EvaluationError(f"prediction folder {pred} does not exist")
    dataset_name = check_same_dataset(folders)
    gt_dir = Path(gt_dir).expanduser().resolve()
    dataset_json_path = Path(dataset_json).expanduser().resolve() if dataset_json else folders[0].dataset_json_path
    out_dir = Path(out_dir).expanduser().resolve()

    import torch

    from nnunetv2_smaformer.benchmark.side_by_side import ensure_ext_trainer_path, network_side_by_side

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise SMAFormerError(f"device {device}: CUDA is not available on this machine")
    ensure_ext_trainer_path()

    checkpoints = [load_checkpoint(folder.checkpoint) for folder in folders]
    trainers = [str(ckpt.get("trainer_name") or folder.trainer) for folder, ckpt in zip(folders, checkpoints)]
    configurations = [str((ckpt.get("init_args") or {}).get("configuration") or folder.configuration)
                      for folder, ckpt in zip(folders, checkpoints)]
    keys = _method_keys(folders, trainers)

    # 1. Segmentation quality, with one label set (the dataset.json) for all methods.
    evaluations: Dict[str, EvaluationResult] = {}
    for key, pred in zip(keys, pred_folders):
        logger.info("evaluating %s: %s", key, pred)
        evaluations[key] = evaluate_folders(pred, gt_dir, dataset_json=dataset_json_path, hd95_unit=hd95_unit,
                                            jobs=jobs, progress=progress)
    case_sets = {key: sorted(result.per_case) for key, result in evaluations.items()}
    if len({tuple(cases) for cases in case_sets.values()}) > 1:
        listing = "; ".join(f"{key}: {', '.join(cases)}" for key, cases in case_sets.items())
        raise EvaluationError(f"the prediction folders hold different cases, the comparison would be unfair: {listing}")
    evaluation_files: Dict[str, Dict[str, str]] = {}
    for key, result in evaluations.items():
        paths = write_outputs(result, out_dir / key / EVALUATION_JSON)
        evaluation_files[key] = dict(zip(("json", "csv", "md"), map(str, paths)))

    # 2. Facts of each trained model.
    image_cases = None
    if images_dir is not None:
        file_ending = _read_json(dataset_json_path, "dataset.json").get("file_ending", ".nii.gz")
        image_cases = list_images(images_dir, file_ending, time_cases)
    models: Dict[str, Dict[str, object]] = {}
    for key, folder, ckpt, trainer, configuration, pred in zip(
            keys, folders, checkpoints, trainers, configurations, pred_folders):
        facts: Dict[str, object] = {
            "model_folder": str(folder.path), "prediction_folder": str(pred), "trainer": trainer,
            "plans": folder.plans_name, "configuration": configuration, "fold": fold,
            "checkpoint": str(folder.checkpoint),
        }
        facts.update(trained_network_facts(folder, ckpt, trainer, configuration))
        facts.update(epoch_times(ckpt))
        facts["benchmark_epochs"] = find_benchmark_results(folder, trainer, configuration, fold)
        if image_cases is not None:
            facts["inference"] = time_inference(folder, fold, checkpoint_name, image_cases, device)
        else:
            facts["inference"] = read_timing_file(pred) or {"seconds_per_case": None, "source": "not measured"}
        facts["evaluation_files"] = evaluation_files[key]
        models[key] = facts
    del checkpoints

    # 3. Network-level side-by-side at img_size: SMAFormerV2 against the dataset's stock 2D network.
    network: Dict[str, object]
    if network_benchmark:
        smaformer_trainer = next((models[k]["trainer"] for k in keys if models[k]["is_smaformer"]),
                                 DEFAULT_SMAFORMER_TRAINER)
        # The SMAFormerV2 trainer changes only the patch and batch size in its plans, so any model folder's
        # plans hold the stock 2D architecture; a stock method's plans are preferred all the same.
        plans_folder = next((f for k, f in zip(keys, folders) if not models[k]["is_smaformer"]), folders[0])
        network = network_side_by_side(str(smaformer_trainer), plans_folder.plans_path, plans_folder.dataset_json_path,
                                       configuration="2d", batch_size=batch_size, img_size=img_size,
                                       steps=steps, warmup=warmup, device=device)
    else:
        network = {"skipped": "disabled (--no-network-benchmark)"}

    report = {
        "dataset": dataset_name,
        "fold": fold,
        "ground_truth": str(gt_dir),
        "dataset_json": str(dataset_json_path),
        "hd95_unit": hd95_unit,
        "methods": {key: result.to_json() for key, result in evaluations.items()},
        "models": models,
        "network": network,
        "environment": _environment(device),
        "files": {"markdown": str(out_dir / REPORT_MD), "json": str(out_dir / REPORT_JSON),
                  "dsc_chart": str(out_dir / DSC_PNG)},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_dsc_chart(evaluations, out_dir / DSC_PNG, title=f"DSC per organ, {dataset_name}")
    (out_dir / REPORT_MD).write_text(render_markdown(report, evaluations), encoding="utf-8")
    (out_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    logger.info("report written to %s", out_dir)
    return report


# ---------------------------------------------------------------------------------------------- report


def _fmt(value: Optional[float], spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:{spec}}{unit}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _segmentation_table(evaluations: Dict[str, EvaluationResult], hd95_unit: str) -> List[str]:
    keys = list(evaluations)
    first = evaluations[keys[0]]
    unit = "voxels" if hd95_unit == "voxel" else "mm"
    header = ["Label", "Organ", *(f"DSC (%) {k}" for k in keys), *(f"HD95 ({unit}) {k}" for k in keys)]
    rows = []
    for label in first.labels:
        rows.append([str(label), first.name(label),
                     *(f"{100 * evaluations[k].per_label[label][0]:.2f}" for k in keys),
                     *(f"{evaluations[k].per_label[label][1]:.2f}" for k in keys)])
    rows.append(["", "**mean**", *(f"**{100 * evaluations[k].mean[0]:.2f}**" for k in keys),
                 *(f"**{evaluations[k].mean[1]:.2f}**" for k in keys)])
    return _table(header, rows, ["---:", ":---", *["---:"] * (2 * len(keys))])


def _benchmark_cell(records: List[Dict[str, object]]) -> str:
    if not records:
        return "—"
    best = min(records, key=lambda r: r["fastest_epoch_s"])
    return f"{best['fastest_epoch_s']:.1f} s ({best['gpu_name']}, {best['benchmark_trainer']})"


def _inference_cell(inference: Dict[str, object]) -> str:
    seconds = inference.get("seconds_per_case")
    if seconds is None:
        return "not measured"
    if "per_case_s" in inference:
        return f"{seconds:.2f} (nnUNetPredictor, {len(inference['per_case_s'])} case(s), {inference['device']})"
    return f"{seconds:.2f} ({TIMING_FILE})"


def _models_table(models: Dict[str, Dict[str, object]]) -> List[str]:
    keys = list(models)
    rows_spec = [
        ("network", lambda m: str(m["architecture"])),
        ("plans / configuration", lambda m: f"{m['plans']} / {m['configuration']}"),
        ("patch size", lambda m: "×".join(map(str, m["patch_size"]))),
        ("parameters (M)", lambda m: f"{m['parameters'] / 1e6:.2f}"),
        ("GMACs (one patch)", lambda m: f"{m['gmacs']:.2f}"),
        ("epochs trained", lambda m: str(m["epochs"])),
        ("epoch time, median (s)", lambda m: _fmt(m["epoch_time_median_s"], ".1f")),
        ("fastest benchmark epoch", lambda m: _benchmark_cell(m["benchmark_epochs"])),
        ("inference (s / case)", lambda m: _inference_cell(m["inference"])),
    ]
    rows = [[name, *(fn(models[k]) for k in keys)] for name, fn in rows_spec]
    return _table(["", *keys], rows, [":---", *[":---"] * len(keys)])


def _network_table(network: Dict[str, object]) -> List[str]:
    from nnunetv2_smaformer.benchmark.side_by_side import NNUNET_KEY, SMAFORMER_KEY

    ours, stock = network["networks"][SMAFORMER_KEY], network["networks"][NNUNET_KEY]
    ratios = network["ratios_smaformer_over_nnunet"]
    settings = network["settings"]
    rows_spec = [
        ("network", lambda n: str(n["architecture"]), None),
        ("parameters (M)", lambda n: f"{n['parameters'] / 1e6:.2f}", "parameters"),
        ("GMACs per image", lambda n: f"{n['gmacs_per_image']:.2f}", "gmacs_per_image"),
        (f"training step, median of {settings['steps']} (s)", lambda n: f"{n['train_step_median_s']:.3f}",
         "train_step_median_s"),
        ("inference (images / s)", lambda n: f"{n['inference_images_per_s']:.2f}", "inference_images_per_s"),
        ("peak memory (MiB)", lambda n: _fmt(n.get("peak_memory_mib"), ".0f"), "peak_memory_mib"),
    ]
    if settings["device"].startswith("cpu"):
        # The peak RSS includes the interpreter and its imports: show that share next to it.
        rows_spec.append(("of which process before building (MiB)", lambda n: f"{n['baseline_rss_mib']:.0f}", None))
    rows = [[name, fn(ours), fn(stock), _fmt(ratios.get(key), ".2f", "×") if key else ""]
            for name, fn, key in rows_spec]
    return _table(["", "SMAFormerV2", "nnU-Net 2d", "SMAFormerV2 / nnU-Net"], rows, [":---", "---:", "---:", "---:"])


def render_markdown(report: dict, evaluations: Dict[str, EvaluationResult]) -> str:
    """``report.md``: segmentation table, model facts, network side-by-side, environment."""
    env = report["environment"]
    n_cases = next(iter(report["methods"].values()))["n_cases"]
    lines = [
        f"# Side-by-side: {', '.join(report['methods'])} on {report['dataset']}",
        "",
        f"Environment: {env['device']}"
        + ("" if str(env["device"]).startswith("CPU") else f", {env['threads']} CPU threads")  # CPU names its threads
        + f", {env['processor']}, "
        f"torch {env['torch']}, nnU-Net {env['nnunetv2']}, Python {env['python']}.",
        "",
        "## Segmentation (Synapse protocol)",
        "",
        f"{n_cases} case(s) against `{report['ground_truth']}`; mean over cases per organ, then over organs. "
        f"Per-method files: `<method>/{EVALUATION_JSON}` (+ .csv, .md).",
        "",
        *_segmentation_table(evaluations, report["hd95_unit"]),
        "",
        f"![DSC per organ]({DSC_PNG})",
        "",
        "## Trained models",
        "",
        f"Fold {report['fold']}. Parameters and GMACs of the trained network (checkpoint weights loaded) at one "
        "patch of its plans; epoch time from the checkpoint's training log; fastest epoch of nnU-Net's "
        "benchmark trainers where their `benchmark_result.json` exists (GPU only); inference time per case "
        "excludes model loading.",
        "",
        *_models_table(report["models"]),
        "",
        "## Networks side by side",
        "",
    ]
    network = report["network"]
    if "networks" in network:
        settings = network["settings"]
        memory = next(iter(network["networks"].values()))["peak_memory_source"]
        lines += [
            f"One run, back to back, each network in a fresh process: batch {settings['batch_size']} of "
            f"{settings['img_size']}×{settings['img_size']} on {settings['device']}, {settings['warmup']} untimed + "
            f"{settings['steps']} timed repetitions. Training step: forward with deep supervision, nnU-Net's "
            f"Dice+CE loss, backward, clipping, AdamW. nnU-Net 2d is the network of the '2d' configuration in "
            f"`{settings['plans']}`; SMAFormerV2 as `{settings['smaformer_trainer']}` builds it. "
            f"GMACs for one image. Peak memory: {memory}.",
            "",
            *_network_table(network),
        ]
    else:
        lines.append(f"Not run: {network.get('skipped', 'unknown reason')}.")
    return "\n".join(lines) + "\n"


def write_dsc_chart(evaluations: Dict[str, EvaluationResult], path: Path, title: str = "DSC per organ") -> Path:
    """Grouped bar chart (PNG): DSC in % per organ and the mean, one bar colour per method."""
    from matplotlib.figure import Figure

    keys = list(evaluations)
    first = evaluations[keys[0]]
    groups = [first.name(label) for label in first.labels] + ["mean"]
    width = 0.8 / len(keys)
    figure = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(groups) * max(1, len(keys)) / 2), 4.5), dpi=120)
    axes = figure.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(keys))]
    for i, key in enumerate(keys):
        result = evaluations[key]
        values = [100 * result.per_label[label][0] for label in first.labels] + [100 * result.mean[0]]
        positions = [g + (i - (len(keys) - 1) / 2) * width for g in range(len(groups))]
        axes.bar(positions, values, width=width, color=colours[i], label=key)
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=30, ha="right")
    axes.set_ylabel("DSC (%)")
    # Headroom above 100 % keeps the legend off the bars.
    axes.set_ylim(0, 118)
    axes.set_yticks(range(0, 101, 20))
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper center", ncol=len(keys), fontsize="small", frameon=False)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
