"""Synapse-scale benchmark: SMAFormerV2 and stock nnU-Net on a phantom with Synapse's geometry, in one run.

What a user meets at that geometry and no 128x128 phantom shows: stock nnU-Net plans a 512x512 patch for
512x512 slices (one tile per slice), SMAFormerV2 on ``2d`` trains on 256x256 patches, so ``nnUNetv2_predict``
covers a slice with 9 overlapping tiles at nnU-Net's step 0.5 (4 forward passes each with test-time
mirroring), while SMAFormerV2 on ``2d_wholeslice`` (the original's protocol, :mod:`nnunetv2_smaformer.whole_slice`)
sees each slice whole at 256x256, one tile; and SMAFormerV2's batch of 28 patches runs through nnU-Net's CPU
augmentation, which may not keep a GPU busy.

Steps (:func:`run_scale_benchmark`; every method measured with the same data on the same machine):

1. a phantom (:mod:`nnunetv2_smaformer.conversion.phantom`) with 512x512 slices, 0.76 mm in-plane, 3 mm slices,
   at least 80 slices a case, converted to an nnU-Net dataset (8 organs), planned and preprocessed (``2d``), and
   given its whole-slice configuration (``smaformer add-configuration``);
2. per method, in a fresh process (:mod:`.scale_worker`): loader throughput with nnU-Net's augmentation at the
   planned batch size, training iterations, a checkpoint;
3. ``nnUNetv2_predict`` on the test volumes, timed as a user waits for it (process start, model loading,
   preprocessing, export included), with nnU-Net's defaults (step 0.5, mirroring) and with what nnU-Net and the
   network allow to make it cheaper (:func:`prediction_variants`): ``--disable_tta``, ``-step_size 1`` and, for
   SMAFormerV2, a patch as large as the slice (one tile; the network accepts any input whose sides are multiples
   of its stride), predicted from a copy of the model folder whose ``plans.json`` holds that patch.

The settings are :class:`ScaleSettings`; the Markdown page is
:func:`nnunetv2_smaformer.speed.scale_report.scale_report`.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunetv2_smaformer.conversion.phantom_dataset import write_phantom_dataset
from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.machine import machine_info
from nnunetv2_smaformer.model_folder import linked_model_copy
from nnunetv2_smaformer.network.stride import NETWORK_STRIDE, round_up_to_stride
from nnunetv2_smaformer.nnunet_commands import plan_and_preprocess, predict_command, train_command
from nnunetv2_smaformer.nnunet_env import folder_environment
from nnunetv2_smaformer.processes import RunRecord, Stages, console_command, run_logged, run_worker
from nnunetv2_smaformer.synapse import SYNAPSE_MIN_SLICES, SYNAPSE_SLICE_SIZE, SYNAPSE_SPACING, TEST_CASES, TRAIN_CASES
from nnunetv2_smaformer.whole_slice.plans import DEFAULT_NAME as WHOLE_SLICE

logger = logging.getLogger(__name__)

SMAFORMER_TRAINER = "nnUNetTrainerSMAFormerV2_noPretrain"
STOCK_TRAINER = "nnUNetTrainer"
#: nnU-Net's 5-epoch benchmark trainers (CUDA only): epoch times including data loading with all workers.
NNUNET_BENCHMARK_TRAINERS = {
    SMAFORMER_TRAINER: "nnUNetTrainerSMAFormerV2_Benchmark_5epochs",
    STOCK_TRAINER: "nnUNetTrainerBenchmark_5epochs",
}
CONFIGURATION = "2d"
#: Wall seconds one method's training worker may take before it is stopped.
WORKER_TIMEOUT_S = 4 * 3600
#: nnU-Net's epoch: 250 training iterations (data loading included) and 50 validation iterations.
NNUNET_ITERATIONS_PER_EPOCH = 250


@dataclass
class ScaleSettings:
    """What the benchmark builds and how long it measures. The defaults are sized for one GPU."""

    device: str = "cpu"
    size: int = SYNAPSE_SLICE_SIZE
    slices: int = 96
    train_cases: int = 4
    test_cases: int = 2
    loader_batches: int = 20
    train_warmup: int = 3
    train_steps: int = 20
    seed: int = 0
    smaformer_trainer: str = SMAFORMER_TRAINER
    stock_trainer: str = STOCK_TRAINER
    #: Also run nnU-Net's ``_Benchmark_5epochs`` trainers through ``nnUNetv2_train`` (CUDA only).
    nnunet_benchmark: bool = False
    #: Training steps on the first samples of each loaded batch (``None``: the planned batch size).
    train_batch_size: int | None = None
    #: Predict a slab of this many middle slices of each test volume and extrapolate to the volume
    #: (``None``: whole volumes, measured directly).
    predict_slices: int | None = None
    #: Slice side of the whole-slice configuration (the original's 256).
    whole_slice_size: int = 256

    @classmethod
    def quick(cls, device: str = "cpu") -> ScaleSettings:
        """Fewer cases and iterations, sized for a 2-core CPU.

        On the CPU, training steps run on 2 samples of each planned batch (a batch of 28 256x256 patches needs
        more memory and minutes than a 2-core machine has) and prediction runs on a 16-slice slab of the test
        volume (and, for the fixed cost of a run, on a 1-slice slab), extrapolated to the whole volume: on 4
        slices the seconds a slice of the cheapest variants drowned in the run-to-run noise of the fixed cost.
        """
        cpu = not device.startswith("cuda")
        return cls(device=device, slices=SYNAPSE_MIN_SLICES, train_cases=2, test_cases=1, loader_batches=3,
                   train_warmup=1, train_steps=2 if not cpu else 1, train_batch_size=2 if cpu else None,
                   predict_slices=16 if cpu else None)

    @property
    def synapse_geometry(self) -> bool:
        return self.size == SYNAPSE_SLICE_SIZE and self.slices >= SYNAPSE_MIN_SLICES

    def validate(self) -> None:
        if self.size < NETWORK_STRIDE or self.slices < 2:
            raise SMAFormerError(f"phantom size must be >= {NETWORK_STRIDE} and slices >= 2 "
                                 f"(got {self.size}, {self.slices})")
        if self.train_cases < 1 or self.test_cases < 1:
            raise SMAFormerError(f"need at least one training and one test case (got {self.train_cases}, "
                                 f"{self.test_cases})")
        if self.loader_batches < 1 or self.train_steps < 1 or self.train_warmup < 0:
            raise SMAFormerError("loader batches and training steps must be >= 1, warm-up steps >= 0")
        if self.train_batch_size is not None and self.train_batch_size < 1:
            raise SMAFormerError(f"training batch size must be >= 1, got {self.train_batch_size}")
        if self.predict_slices is not None and not 2 <= self.predict_slices <= self.slices:
            raise SMAFormerError(f"predicted slab must hold 2 to {self.slices} slices (a 1-slice slab gives the fixed "
                                 f"cost), got {self.predict_slices}")
        if self.whole_slice_size < NETWORK_STRIDE or self.whole_slice_size % NETWORK_STRIDE:
            raise SMAFormerError(f"whole-slice size must be a positive multiple of {NETWORK_STRIDE}, "
                                 f"got {self.whole_slice_size}")
        if self.nnunet_benchmark and not self.device.startswith("cuda"):
            raise SMAFormerError("nnU-Net's _Benchmark_5epochs trainers run on CUDA only: use --device cuda")


@dataclass(frozen=True)
class ScaleMethod:
    """One measured row: a trainer on a configuration; ``kind`` chooses its prediction variants. Its key in the
    report is ``<trainer>__<configuration>``, as nnU-Net names model folders."""

    trainer: str
    configuration: str
    kind: str  # "smaformer", "smaformer_whole_slice" or "stock"

    @property
    def key(self) -> str:
        return f"{self.trainer}__{self.configuration}"


def scale_methods(settings: ScaleSettings) -> list[ScaleMethod]:
    """The rows of one run: SMAFormerV2 on ``2d`` and on ``2d_wholeslice``, stock nnU-Net on ``2d`` (the reference)."""
    return [ScaleMethod(settings.smaformer_trainer, CONFIGURATION, "smaformer"),
            ScaleMethod(settings.smaformer_trainer, WHOLE_SLICE, "smaformer_whole_slice"),
            ScaleMethod(settings.stock_trainer, CONFIGURATION, "stock")]


@dataclass
class PredictVariant:
    """One way to run ``nnUNetv2_predict``: its extra arguments and the patch it predicts with."""

    name: str
    args: tuple[str, ...] = ()
    mirroring: bool = True
    step_size: float = 0.5
    #: Patch side to write into a copy of the model folder's plans (``None``: the trained patch).
    patch_side: int | None = None


def prediction_variants(whole_slice: int) -> dict[str, list[PredictVariant]]:
    """Variants per method kind: nnU-Net's defaults, without test-time mirroring, fewer tiles (a whole-slice
    configuration has one tile per slice already)."""
    common = [
        PredictVariant("default"),
        PredictVariant("disable_tta", ("--disable_tta",), mirroring=False),
        PredictVariant("step_1.0_disable_tta", ("--disable_tta", "-step_size", "1.0"), mirroring=False, step_size=1.0),
    ]
    whole = PredictVariant(f"patch_{whole_slice}_disable_tta", ("--disable_tta",), mirroring=False,
                           patch_side=whole_slice)
    return {"smaformer": common + [whole], "smaformer_whole_slice": common[:2], "stock": common[:2]}


def tiles_per_slice(image: Sequence[int], patch: Sequence[int], step_size: float) -> int:
    """Tiles nnU-Net's sliding window places on one slice (a patch larger than the image is one tile)."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    padded = [max(i, p) for i, p in zip(image, patch)]
    steps = compute_steps_for_sliding_window(padded, list(patch), step_size)
    return int(math.prod(len(s) for s in steps))


def fixed_cost(one_slice_s: float, slab_s: float, slab_slices: int) -> float:
    """The part of a prediction run's time that does not grow with the slices, from runs on 1 slice and on
    ``slab_slices`` slices: ``t1 - (tk - t1) / (k - 1)``, within ``[0, t1]``."""
    return min(max(one_slice_s - (slab_s - one_slice_s) / (slab_slices - 1), 0.0), one_slice_s)


def extrapolate_to_volume(slab_s: float, fixed_s: float, volume_slices: int, slab_slices: int) -> float:
    """Seconds for a whole volume from the time of a slab: the fixed cost once, the rest of the slab's time scaled
    by ``volume_slices / slab_slices``."""
    return fixed_s + max(slab_s - fixed_s, 0.0) * volume_slices / slab_slices


def _phantom_cases(settings: ScaleSettings) -> list[int]:
    return list(TRAIN_CASES[: settings.train_cases]) + list(TEST_CASES[: settings.test_cases])


def _write_slabs(volumes: Sequence[Path], slices: int, folder: Path) -> Path:
    """The middle ``slices`` slices of each volume, with its spacing, direction and origin (of the slab)."""
    import SimpleITK as sitk

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path in volumes:
        image = sitk.ReadImage(str(path))
        first = (image.GetSize()[2] - slices) // 2
        sitk.WriteImage(image[:, :, first:first + slices], str(folder / path.name))
    return folder


def _whole_slice_model(model: Path, configuration: str, side: int) -> Path:
    """A copy of ``model`` (a model folder, its folds linked) whose plans predict with a ``side`` x ``side`` patch."""
    copy = linked_model_copy(model, model.parent / f"{model.name}__patch{side}")
    plans_path = copy / "plans.json"
    plans = json.loads(plans_path.read_text())
    plans["configurations"][configuration]["patch_size"] = [side, side]
    plans_path.write_text(json.dumps(plans, indent=2))
    return copy


def _nnunet_benchmark(trainer: str, configuration: str, dataset_id: int, env: Mapping[str, str], logs: Path,
                      device: str) -> dict:
    """``nnUNetv2_train`` with nnU-Net's 5-epoch benchmark trainer; its fastest epoch and what it implies."""
    cmd = console_command(train_command(dataset_id, configuration, trainer, device="cuda"))
    if ":" in device:
        env = dict(env, CUDA_VISIBLE_DEVICES=device.split(":", 1)[1])
    run = run_logged(cmd, env, logs / f"{trainer}.log")
    folders = list(Path(env["nnUNet_results"]).glob(f"*/{trainer}__nnUNetPlans__{configuration}/fold_0"))
    if not folders or not (folders[0] / "benchmark_result.json").is_file():
        raise SMAFormerError(f"{trainer} wrote no benchmark_result.json; see {logs / (trainer + '.log')}")
    results = json.loads((folders[0] / "benchmark_result.json").read_text())
    entry = next(iter(results.values()))
    fastest = entry["fastest_epoch"]
    record = {"trainer": trainer, "wall_s": run.seconds, "fastest_epoch_s": fastest, "gpu": entry.get("gpu_name")}
    if isinstance(fastest, (int, float)):
        record["epoch_train_iterations_per_s"] = NNUNET_ITERATIONS_PER_EPOCH / fastest
    return record


@dataclass(frozen=True)
class _PredictionRun:
    """What every method's predictions share: the dataset, the inputs (whole volumes, or slabs and their 1-slice
    slabs), the environment, the output folder and the stage timer."""

    settings: ScaleSettings
    dataset_id: int
    dataset: str
    inputs: Path
    single: Path | None
    volumes: int
    env: Mapping[str, str]
    out: Path
    stages: Stages

    def command(self, method: ScaleMethod, variant: PredictVariant, images: Path, predictions: Path) -> list[str]:
        """``nnUNetv2_predict`` of ``method`` with ``variant``'s arguments; a variant with its own patch predicts from
        a copy of the model folder whose plans hold that patch."""
        if predictions.exists():
            shutil.rmtree(predictions)
        common = dict(device=self.settings.device, extra=("--disable_progress_bar", *variant.args))
        if variant.patch_side is None:
            return console_command(predict_command(images, predictions, dataset_id=self.dataset_id,
                                                   configuration=method.configuration, trainer=method.trainer,
                                                   **common))
        model = (Path(self.env["nnUNet_results"]) / self.dataset
                 / f"{method.trainer}__nnUNetPlans__{method.configuration}")
        copy = _whole_slice_model(model, method.configuration, variant.patch_side)
        return console_command(predict_command(images, predictions, model_folder=copy, **common))

    def seconds(self, method: ScaleMethod, variant: PredictVariant, images: Path, name: str,
                stage: str | None = None) -> RunRecord:
        """One timed ``nnUNetv2_predict`` run of ``method`` with ``variant`` on ``images``, its predictions and log
        named ``name``, its stage ``stage`` (default: ``name``)."""
        predictions = self.out / "predictions" / method.key / name
        with self.stages(f"predict {method.key} {stage or name}"):
            return run_logged(self.command(method, variant, images, predictions), self.env,
                              self.out / "logs" / f"predict_{method.key}_{name}.log")


def _predict(method: ScaleMethod, record: dict, run: _PredictionRun) -> None:
    """Every prediction variant of ``method`` into ``record["predict"]``, with the summary figures.

    On slabs (``settings.predict_slices``), the cheapest variant also predicts the 1-slice slabs in ``run.single``:
    the two give the fixed cost of a run (process start, model loading, nnU-Net's worker processes, files), which
    every variant pays once a volume, and the rest of each variant's time scales with the slices.
    """
    settings = run.settings
    record["predict"] = {}
    variants = prediction_variants(round_up_to_stride(settings.size))[method.kind]
    for variant in variants:
        measured = run.seconds(method, variant, run.inputs, variant.name)
        patch = record["patch_size"] if variant.patch_side is None else [variant.patch_side] * 2
        image = [round(settings.size * SYNAPSE_SPACING[0] / s) for s in record["spacing"]]
        tiles = tiles_per_slice(image, patch, variant.step_size)
        record["predict"][variant.name] = {
            "args": list(variant.args), "patch_size": patch, "mirroring": variant.mirroring,
            "step_size": variant.step_size, "tiles_per_slice": tiles,
            "forward_passes_per_slice": tiles * (4 if variant.mirroring else 1),
            "peak_rss_mib": measured.peak_rss_mib, "seconds": measured.seconds / run.volumes}
    if run.single is None:
        for entry in record["predict"].values():
            entry["seconds_per_volume"] = entry.pop("seconds")
            entry["seconds_per_volume_source"] = "measured on whole volumes"
    else:
        cheapest = next(v for v in variants if v.name == "disable_tta")
        one = run.seconds(method, cheapest, run.single, "one_slice", f"{cheapest.name} 1 slice").seconds / run.volumes
        record["predict_fixed_s"] = _extrapolate_slabs(record["predict"], one, cheapest.name, settings)
    record["predict_seconds_per_volume"] = record["predict"]["default"]["seconds_per_volume"]
    record["predict_seconds_per_volume_no_mirroring"] = record["predict"]["disable_tta"]["seconds_per_volume"]
    record["predict_peak_rss_mib"] = max(v["peak_rss_mib"] for v in record["predict"].values())


def _extrapolate_slabs(predict: dict, one_slice_s: float, cheapest: str, settings: ScaleSettings) -> float:
    """Each variant's seconds per slab in ``predict`` extrapolated to a whole volume, from the fixed cost that the
    cheapest variant's slab and 1-slice runs give; returns that fixed cost."""
    slab = settings.predict_slices
    fixed = fixed_cost(one_slice_s, predict[cheapest]["seconds"], slab)
    for entry in predict.values():
        entry["seconds_per_slab"] = entry.pop("seconds")
        entry["seconds_per_volume"] = extrapolate_to_volume(entry["seconds_per_slab"], fixed, settings.slices, slab)
        per_slice = (entry["seconds_per_volume"] - fixed) / settings.slices
        entry["seconds_per_volume_source"] = (
            f"extrapolated from slabs of 1 and {slab} slices: fixed {fixed:.1f} s + {per_slice:.2f} s a slice "
            f"x {settings.slices} slices")
    return fixed


_RATIO_KEYS = ("predict_seconds_per_volume", "predict_seconds_per_volume_no_mirroring", "train_samples_per_s",
               "train_megapixels_per_s", "loader_samples_per_s_per_worker")
#: The goal for SMAFormerV2 on the whole-slice configuration: a volume predicted in at most this share of stock
#: nnU-Net's time on ``2d``, both with nnU-Net's defaults.
WHOLE_SLICE_PREDICT_GOAL = 0.5


def ratios_to(reference: dict, methods: Mapping[str, dict]) -> dict[str, dict[str, float]]:
    """For each method other than the reference: its figure over the reference's, per key of :data:`_RATIO_KEYS`."""
    return {key: {name: record[name] / reference[name] for name in _RATIO_KEYS}
            for key, record in methods.items() if record is not reference}


def _prepare_dataset(out: Path, settings: ScaleSettings, dataset_id: int, env: Mapping[str, str],
                     stages: Stages) -> tuple[str, Path]:
    """The phantom with Synapse's geometry as an nnU-Net dataset, planned and preprocessed for ``2d`` and the
    whole-slice configuration; returns ``(dataset folder name, raw dataset folder)``."""
    logs = out / "logs"
    if not settings.synapse_geometry:
        logger.warning("phantom %dx%d with %d slices is smaller than Synapse's geometry (%dx%d, >= %d slices)",
                       settings.size, settings.size, settings.slices, SYNAPSE_SLICE_SIZE, SYNAPSE_SLICE_SIZE,
                       SYNAPSE_MIN_SLICES)
    with stages("phantom+conversion"):
        dataset, raw = write_phantom_dataset(env, dataset_id, out, size=settings.size, slices=settings.slices,
                                             seed=settings.seed, cases=_phantom_cases(settings),
                                             spacing=SYNAPSE_SPACING, overwrite=True, num_processes=1)
    with stages("plan+preprocess"):
        plan_and_preprocess(env, dataset_id, logs / "plan_and_preprocess.log", configuration=CONFIGURATION)
    with stages("add-configuration"):
        add_configuration = ["smaformer", "add-configuration", "-d", dataset_id, "--name", WHOLE_SLICE,
                             "--size", settings.whole_slice_size, "-np", 2]
        run_logged(console_command(add_configuration), env, logs / "add_configuration.log")
    return dataset, raw


def _measure_training(methods: Sequence[ScaleMethod], settings: ScaleSettings, dataset: str, env: Mapping[str, str],
                      out: Path, stages: Stages) -> dict[str, dict]:
    """Each method's loader and training figures, measured by :mod:`.scale_worker` in a fresh process."""
    from nnunetv2_smaformer.speed.scale_worker import WORKER_MODULE

    records: dict[str, dict] = {}
    for method in methods:
        spec = {"trainer": method.trainer, "configuration": method.configuration, "dataset": dataset,
                "device": settings.device, "loader_batches": settings.loader_batches,
                "train_warmup": settings.train_warmup, "train_steps": settings.train_steps,
                "train_batch_size": settings.train_batch_size}
        with stages(f"train {method.key}"):
            records[method.key] = run_worker(WORKER_MODULE, spec, out / "work", name=method.key,
                                             env=dict(env, nnUNet_n_proc_DA="0"), timeout_s=WORKER_TIMEOUT_S,
                                             log_file=out / "logs" / f"train_{method.key}.log")
    return records


def _prediction_run(out: Path, settings: ScaleSettings, dataset_id: int, dataset: str, raw: Path,
                    env: Mapping[str, str], stages: Stages) -> _PredictionRun:
    """What the predictions read: the test volumes, or their middle slabs and 1-slice slabs."""
    volumes = sorted((raw / "imagesTs").glob("*_0000.nii.gz"))
    inputs, single = raw / "imagesTs", None
    if settings.predict_slices is not None:
        inputs = _write_slabs(volumes, settings.predict_slices, out / "predict_input")
        single = _write_slabs(volumes, 1, out / "predict_input_one_slice")
    return _PredictionRun(settings, dataset_id, dataset, inputs, single, len(volumes), env, out, stages)


def run_scale_benchmark(out: Path, settings: ScaleSettings, dataset_id: int = 990) -> dict:
    """Run the benchmark into ``out``; returns the report also written to ``out/benchmark_scale.{json,md}``."""
    from nnunetv2_smaformer.speed.scale_report import scale_report

    settings.validate()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = folder_environment(out / "nnunet")  # never the user's nnU-Net folders
    started = time.perf_counter()
    stages = Stages()

    dataset, raw = _prepare_dataset(out, settings, dataset_id, env, stages)
    methods = scale_methods(settings)
    records = _measure_training(methods, settings, dataset, env, out, stages)
    run = _prediction_run(out, settings, dataset_id, dataset, raw, env, stages)
    for method in methods:
        _predict(method, records[method.key], run)
        if settings.nnunet_benchmark:
            benchmark_trainer = NNUNET_BENCHMARK_TRAINERS.get(method.trainer, f"{method.trainer}_Benchmark_5epochs")
            with stages(f"nnU-Net benchmark {method.key}"):
                records[method.key]["nnunet_benchmark_5epochs"] = _nnunet_benchmark(
                    benchmark_trainer, method.configuration, dataset_id, env, out / "logs", settings.device)

    reference = next(m.key for m in methods if m.kind == "stock")
    report = {
        "geometry": {
            "slice_size": [settings.size, settings.size],
            "spacing_mm_xyz": list(SYNAPSE_SPACING),
            "slices_per_case": settings.slices,
            "train_cases": settings.train_cases,
            "test_volumes_predicted": run.volumes,
            "predicted_slices_per_volume": settings.predict_slices or settings.slices,
            "synapse_scale": settings.synapse_geometry,
        },
        "settings": asdict(settings),
        "environment": machine_info(settings.device),
        "methods": records,
        "reference": reference,
        "over_reference": ratios_to(records[reference], records),
        "whole_slice_predict_goal": WHOLE_SLICE_PREDICT_GOAL,
        "stage_seconds": stages.seconds,
        "total_seconds": time.perf_counter() - started,
    }
    (out / "benchmark_scale.json").write_text(json.dumps(report, indent=2))
    (out / "benchmark_scale.md").write_text(scale_report(report))
    shutil.rmtree(out / "work", ignore_errors=True)
    return report
