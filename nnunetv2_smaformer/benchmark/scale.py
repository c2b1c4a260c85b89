"""Synapse-scale benchmark: SMAFormerV2 and stock nnU-Net 2d on a phantom with Synapse's geometry.

What a user meets at that geometry and no 128x128 phantom shows: stock nnU-Net plans a 512x512
patch for 512x512 slices (one tile per slice), SMAFormerV2 trains on 256x256 patches, so
``nnUNetv2_predict`` covers a slice with 9 overlapping tiles at nnU-Net's step 0.5 (4 forward
passes each with test-time mirroring); and SMAFormerV2's batch of 28 patches runs through nnU-Net's
CPU augmentation, which may not keep a GPU busy.

Steps (one run, both methods measured with the same data on the same machine):

1. a phantom (:mod:`nnunetv2_smaformer.conversion.phantom`) with 512x512 slices, 0.76 mm in-plane,
   3 mm slices, at least 80 slices a case, converted to an nnU-Net dataset (8 organs) and planned
   and preprocessed by nnU-Net (``2d``);
2. per method, in a fresh process (:func:`measure_training`): nnU-Net's training data loader with
   its real augmentation at the trainer's planned batch size, in the measuring process itself
   (``nnUNet_n_proc_DA=0``), so samples/s is what one augmentation worker delivers; then training
   iterations (nnU-Net's ``train_step``) on batches already loaded, so the figure is the network's
   and not the loader's; the weights are saved as a checkpoint for step 3;
3. ``nnUNetv2_predict`` on the test volumes, timed as a user waits for it (process start, model
   loading, preprocessing, export included), with nnU-Net's defaults (step 0.5, mirroring) and
   with what nnU-Net and the network allow to make it cheaper: ``--disable_tta``, ``-step_size 1``
   and, for SMAFormerV2, a patch as large as the slice (one tile; the network accepts any input
   whose sides are multiples of 32), predicted from a copy of the model folder whose ``plans.json``
   holds that patch.

Run as ``python -m nnunetv2_smaformer.benchmark.scale SPEC.json RESULT.json`` for step 2 of one
method (that is how :func:`run_scale_benchmark` runs it).
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.nnunet_env import (EXT_TRAINER_VARIABLE, NNUNET_FOLDER_VARIABLES, console_script,
                                           nnunet_environ, with_trainer_dir)

logger = logging.getLogger(__name__)

#: Synapse (BTCV abdomen CT): 512x512 slices, about 0.76 mm in-plane and 3 mm apart, 85 to 198 slices a case.
SYNAPSE_SIZE = 512
SYNAPSE_SPACING: Tuple[float, float, float] = (0.76, 0.76, 3.0)
SYNAPSE_MIN_SLICES = 80
SMAFORMER_TRAINER = "nnUNetTrainerSMAFormerV2_noPretrain"
STOCK_TRAINER = "nnUNetTrainer"
#: nnU-Net's 5-epoch benchmark trainers (CUDA only): epoch times including data loading with all workers.
NNUNET_BENCHMARK_TRAINERS = {
    SMAFORMER_TRAINER: "nnUNetTrainerSMAFormerV2_Benchmark_5epochs",
    STOCK_TRAINER: "nnUNetTrainerBenchmark_5epochs",
}
CONFIGURATION = "2d"
# The network's total stride: a patch side must be a multiple of it.
NETWORK_STRIDE = 32
_WORKER_TIMEOUT_S = 4 * 3600


@dataclass
class ScaleSettings:
    """What the benchmark builds and how long it measures. The defaults are sized for one GPU."""

    device: str = "cpu"
    size: int = SYNAPSE_SIZE
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
    train_batch_size: Optional[int] = None
    #: Predict a slab of this many middle slices of each test volume and extrapolate to the volume
    #: (``None``: whole volumes, measured directly).
    predict_slices: Optional[int] = None

    @classmethod
    def quick(cls, device: str = "cpu") -> "ScaleSettings":
        """Fewer cases and iterations: ends within 20 minutes on 2 CPU cores.

        On the CPU, training steps run on 2 samples of each planned batch (a batch of 28 256x256
        patches needs more memory and minutes than a 2-core machine has) and prediction runs on a
        4-slice slab of the test volume, extrapolated to the whole volume.
        """
        cpu = not device.startswith("cuda")
        return cls(device=device, slices=SYNAPSE_MIN_SLICES, train_cases=2, test_cases=1, loader_batches=3,
                   train_warmup=1, train_steps=2 if not cpu else 1, train_batch_size=2 if cpu else None,
                   predict_slices=4 if cpu else None)

    @property
    def synapse_geometry(self) -> bool:
        return self.size == SYNAPSE_SIZE and self.slices >= SYNAPSE_MIN_SLICES

    def validate(self) -> None:
        if self.size < 32 or self.slices < 2:
            raise SMAFormerError(f"phantom size must be >= 32 and slices >= 2 (got {self.size}, {self.slices})")
        if self.train_cases < 1 or self.test_cases < 1:
            raise SMAFormerError(f"need at least one training and one test case (got {self.train_cases}, "
                                 f"{self.test_cases})")
        if self.loader_batches < 1 or self.train_steps < 1 or self.train_warmup < 0:
            raise SMAFormerError("loader batches and training steps must be >= 1, warm-up steps >= 0")
        if self.train_batch_size is not None and self.train_batch_size < 1:
            raise SMAFormerError(f"training batch size must be >= 1, got {self.train_batch_size}")
        if self.predict_slices is not None and not 1 <= self.predict_slices <= self.slices:
            raise SMAFormerError(f"predicted slab must hold 1 to {self.slices} slices, got {self.predict_slices}")
        if self.nnunet_benchmark and not self.device.startswith("cuda"):
            raise SMAFormerError("nnU-Net's _Benchmark_5epochs trainers run on CUDA only: use --device cuda")


@dataclass
class PredictVariant:
    """One way to run ``nnUNetv2_predict``: its extra arguments and the patch it predicts with."""

    name: str
    args: Tuple[str, ...] = ()
    mirroring: bool = True
    step_size: float = 0.5
    #: Patch side to write into a copy of the model folder's plans (``None``: the trained patch).
    patch_side: Optional[int] = None


def prediction_variants(whole_slice: int) -> Dict[str, List[PredictVariant]]:
    """Variants per method kind: nnU-Net's defaults, without test-time mirroring, fewer tiles."""
    common = [
        PredictVariant("default"),
        PredictVariant("disable_tta", ("--disable_tta",), mirroring=False),
        PredictVariant("step_1.0_disable_tta", ("--disable_tta", "-step_size", "1.0"), mirroring=False, step_size=1.0),
    ]
    whole = PredictVariant(f"patch_{whole_slice}_disable_tta", ("--disable_tta",), mirroring=False,
                           patch_side=whole_slice)
    return {"smaformer": common + [whole], "stock": common[:2]}


def tiles_per_slice(image: Sequence[int], patch: Sequence[int], step_size: float) -> int:
    """Tiles nnU-Net's sliding window places on one slice (a patch larger than the image is one tile)."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    padded = [max(i, p) for i, p in zip(image, patch)]
    steps = compute_steps_for_sliding_window(padded, list(patch), step_size)
    return int(math.prod(len(s) for s in steps))


# ---------------------------------------------------------------- step 2: one method in its own process


def _peak_rss_mib() -> float:
    """Peak resident set size of this process (``VmHWM``, which starts afresh at exec) in MiB."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _first_samples(batch: dict, count: int) -> dict:
    """The first ``count`` samples of an nnU-Net batch (``data`` and each deep-supervision target)."""
    target = batch["target"]
    target = [t[:count] for t in target] if isinstance(target, (list, tuple)) else target[:count]
    return dict(batch, data=batch["data"][:count], target=target)


def measure_training(spec: dict) -> dict:
    """Loader throughput and training iterations of the trainer ``spec["trainer"]``, then a checkpoint.

    ``spec``: ``trainer``, ``dataset`` (folder name), ``device``, ``loader_batches``, ``train_warmup``,
    ``train_steps``, ``train_batch_size`` (``None``: the planned batch). Reads ``$nnUNet_preprocessed``;
    writes the model folder under ``$nnUNet_results`` the way ``nnUNetv2_train`` lays it out, with
    ``checkpoint_final.pth`` holding the weights after the measured iterations. Must run with ``nnUNet_n_proc_DA=0`` (one loader in this process).
    """
    import torch
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    if os.environ.get("nnUNet_n_proc_DA") != "0":
        raise SMAFormerError("measure_training needs nnUNet_n_proc_DA=0 (the loader in the measuring process)")
    preprocessed = Path(os.environ["nnUNet_preprocessed"]) / spec["dataset"]
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    plans["continue_training"] = False  # nnU-Net 2.8's entry point passes this through the plans
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    device = torch.device(spec["device"])
    trainer_class = recursive_find_trainer_class_by_name(spec["trainer"])
    if trainer_class is None:
        raise SMAFormerError(f"trainer {spec['trainer']} not found (is nnUNet_extTrainer set?)")
    trainer = trainer_class(plans=plans, configuration=CONFIGURATION, fold=0, dataset_json=dataset_json, device=device)
    trainer.initialize()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loader, _ = trainer.get_dataloaders()

    batches = []
    start = time.perf_counter()
    for _ in range(int(spec["loader_batches"])):
        batches.append(next(loader))
    loader_s = time.perf_counter() - start
    loader_rss = _peak_rss_mib()

    batch_size = int(trainer.batch_size)
    train_batch = min(int(spec.get("train_batch_size") or batch_size), batch_size)
    trainer.network.train()
    step_s: List[float] = []
    for i in range(int(spec["train_warmup"]) + int(spec["train_steps"])):
        batch = _first_samples(batches[i % len(batches)], train_batch)
        _sync(device)
        start = time.perf_counter()
        trainer.train_step(batch)
        _sync(device)
        if i >= int(spec["train_warmup"]):
            step_s.append(time.perf_counter() - start)

    # The model folder nnUNetv2_predict reads, laid out as nnUNetv2_train leaves it.
    base = Path(trainer.output_folder_base)
    base.mkdir(parents=True, exist_ok=True)
    (base / "plans.json").write_text(json.dumps(trainer.plans_manager.plans, indent=2))
    (base / "dataset.json").write_text(json.dumps(trainer.dataset_json, indent=2))
    shutil.copy(preprocessed / "dataset_fingerprint.json", base / "dataset_fingerprint.json")
    Path(trainer.output_folder).mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(str(Path(trainer.output_folder) / "checkpoint_final.pth"))
    for generator in (loader,):
        if hasattr(generator, "_finish"):
            generator._finish()

    step_median = sorted(step_s)[len(step_s) // 2]
    record = {
        "trainer": spec["trainer"],
        "network": type(trainer.network).__name__,
        "parameters": sum(p.numel() for p in trainer.network.parameters()),
        "batch_size": batch_size,
        "patch_size": [int(v) for v in trainer.configuration_manager.patch_size],
        "loader_batches": len(batches),
        "loader_samples_per_s_per_worker": len(batches) * batch_size / loader_s,
        "train_batch_size": train_batch,
        "train_step_s": step_s,
        "train_step_median_s": step_median,
        "train_iterations_per_s": 1.0 / step_median,
        "train_samples_per_s": train_batch / step_median,
        # The methods' patches differ in area (256x256 vs 512x512 at Synapse scale): pixels compare fairly.
        "train_megapixels_per_s": train_batch * math.prod(trainer.configuration_manager.patch_size) / step_median / 1e6,
        "loader_peak_rss_mib": loader_rss,
        "peak_rss_mib": _peak_rss_mib(),
    }
    # Augmentation workers needed so that loading keeps up with the training steps.
    record["loader_workers_to_keep_up"] = record["train_samples_per_s"] / record["loader_samples_per_s_per_worker"]
    if device.type == "cuda":
        record["train_peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        record["train_peak_memory_source"] = "torch.cuda.max_memory_allocated"
    else:
        record["train_peak_memory_mib"] = record["peak_rss_mib"]
        record["train_peak_memory_source"] = "peak RSS of the measuring process (imports and loader included)"
    return record


# ---------------------------------------------------------------- the whole run


def _environment(out: Path) -> Dict[str, str]:
    """nnU-Net folders inside ``out`` (never the user's), this package's trainers findable by name."""
    env = dict(os.environ)
    for name in NNUNET_FOLDER_VARIABLES:
        env[name] = str(out / "nnunet" / name)
        Path(env[name]).mkdir(parents=True, exist_ok=True)
    env[EXT_TRAINER_VARIABLE] = with_trainer_dir(env.get(EXT_TRAINER_VARIABLE))
    return env


def _run_timed(cmd: List[str], env: Dict[str, str], log_file: Path) -> Tuple[float, float]:
    """Run ``cmd`` (output into ``log_file``); return (wall seconds, peak RSS of its largest process in MiB)."""
    logger.info("%s", " ".join([Path(cmd[0]).name, *cmd[1:]]))
    start = time.perf_counter()
    with open(log_file, "w") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").strip().splitlines()[-10:])
        raise SMAFormerError(f"{Path(cmd[0]).name} exited {process.returncode}; see {log_file}:\n{tail}")
    scale = 1 if sys.platform == "darwin" else 1024
    return seconds, usage.ru_maxrss * scale / 2**20


def _write_phantom(settings: ScaleSettings, out: Path, env: Dict[str, str], dataset_id: int) -> Tuple[str, Path]:
    from nnunetv2_smaformer.conversion.converter import convert_synapse
    from nnunetv2_smaformer.conversion.phantom import make_phantom
    from nnunetv2_smaformer.conversion.synapse import TEST_CASES, TRAIN_CASES, dataset_folder_name

    cases = list(TRAIN_CASES[: settings.train_cases]) + list(TEST_CASES[: settings.test_cases])
    phantom = out / "phantom"
    if phantom.exists():
        shutil.rmtree(phantom)
    make_phantom(phantom, "btcv", cases=cases, size=settings.size, slices=settings.slices, seed=settings.seed,
                 spacing=SYNAPSE_SPACING)
    # The converter reads the nnU-Net folders from the environment, as the CLI does.
    with nnunet_environ({name: env[name] for name in NNUNET_FOLDER_VARIABLES}, register_trainers=False):
        convert_synapse(phantom, dataset_id, fmt="btcv", overwrite=True, progress=False, num_processes=1)
    shutil.rmtree(phantom)  # the converted dataset holds the same voxels
    name = dataset_folder_name(dataset_id)
    return name, Path(env["nnUNet_raw"]) / name


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


def _measure_in_child(spec: dict, env: Dict[str, str], workdir: Path) -> dict:
    spec_path = workdir / f"{spec['trainer']}.spec.json"
    result_path = workdir / f"{spec['trainer']}.result.json"
    spec_path.write_text(json.dumps(spec))
    child_env = dict(env, nnUNet_n_proc_DA="0")
    cmd = [sys.executable, "-m", "nnunetv2_smaformer.benchmark.scale", str(spec_path), str(result_path)]
    _run_timed(cmd, child_env, workdir / f"train_{spec['trainer']}.log")
    return json.loads(result_path.read_text())


def _whole_slice_model(model: Path, side: int) -> Path:
    """A copy of ``model`` (a model folder) whose plans predict with a ``side`` x ``side`` patch.

    The fold folders (checkpoints of hundreds of MB) are linked, not copied.
    """
    copy = model.parent / f"{model.name}__patch{side}"
    if copy.exists():
        shutil.rmtree(copy)
    copy.mkdir()
    for item in model.iterdir():
        if item.is_dir():
            (copy / item.name).symlink_to(item.resolve(), target_is_directory=True)
        else:
            shutil.copy(item, copy / item.name)
    plans_path = copy / "plans.json"
    plans = json.loads(plans_path.read_text())
    plans["configurations"][CONFIGURATION]["patch_size"] = [side, side]
    plans_path.write_text(json.dumps(plans, indent=2))
    return copy


def _nnunet_benchmark(trainer: str, dataset_id: int, env: Dict[str, str], logs: Path, device: str) -> dict:
    """``nnUNetv2_train`` with nnU-Net's 5-epoch benchmark trainer; its fastest epoch and what it implies."""
    cmd = [console_script("nnUNetv2_train"), str(dataset_id), CONFIGURATION, "0", "-tr", trainer, "-device", "cuda"]
    if ":" in device:
        env = dict(env, CUDA_VISIBLE_DEVICES=device.split(":", 1)[1])
    seconds, _ = _run_timed(cmd, env, logs / f"{trainer}.log")
    folders = list(Path(env["nnUNet_results"]).glob(f"*/{trainer}__nnUNetPlans__{CONFIGURATION}/fold_0"))
    if not folders or not (folders[0] / "benchmark_result.json").is_file():
        raise SMAFormerError(f"{trainer} wrote no benchmark_result.json; see {logs / (trainer + '.log')}")
    results = json.loads((folders[0] / "benchmark_result.json").read_text())
    entry = next(iter(results.values()))
    fastest = entry["fastest_epoch"]
    record = {"trainer": trainer, "wall_s": seconds, "fastest_epoch_s": fastest, "gpu": entry.get("gpu_name")}
    if isinstance(fastest, (int, float)):
        # nnU-Net's epoch: 250 training iterations (data loading included) and 50 validation iterations.
        record["epoch_train_iterations_per_s"] = 250 / fastest
    return record


def run_scale_benchmark(out: Path, settings: ScaleSettings, dataset_id: int = 990) -> dict:
    """Run the benchmark into ``out``; returns the report also written to ``out/benchmark_scale.{json,md}``."""
    settings.validate()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    env = _environment(out)
    started = time.perf_counter()
    stage_s: Dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        stage_s[name] = time.perf_counter() - since
        logger.info("[%s] %.0f s", name, stage_s[name])
        return time.perf_counter()

    now = time.perf_counter()
    if not settings.synapse_geometry:
        logger.warning("phantom %dx%d with %d slices is smaller than Synapse's geometry (%dx%d, >= %d slices)",
                       settings.size, settings.size, settings.slices, SYNAPSE_SIZE, SYNAPSE_SIZE, SYNAPSE_MIN_SLICES)
    dataset, raw = _write_phantom(settings, out, env, dataset_id)
    now = lap("phantom+conversion", now)
    _run_timed([console_script("nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", CONFIGURATION, "-np", "2",
                "--verify_dataset_integrity"], env, logs / "plan_and_preprocess.log")
    now = lap("plan+preprocess", now)

    kinds = {settings.smaformer_trainer: "smaformer", settings.stock_trainer: "stock"}
    methods: Dict[str, dict] = {}
    work = out / "work"
    work.mkdir(exist_ok=True)
    for trainer in kinds:
        spec = {"trainer": trainer, "dataset": dataset, "device": settings.device,
                "loader_batches": settings.loader_batches, "train_warmup": settings.train_warmup,
                "train_steps": settings.train_steps, "train_batch_size": settings.train_batch_size}
        methods[trainer] = _measure_in_child(spec, env, work)
        now = lap(f"train {trainer}", now)

    volumes = sorted((raw / "imagesTs").glob("*_0000.nii.gz"))
    inputs = raw / "imagesTs"
    if settings.predict_slices is not None:
        inputs = _write_slabs(volumes, settings.predict_slices, out / "predict_input")
    whole_slice = int(math.ceil(settings.size / NETWORK_STRIDE) * NETWORK_STRIDE)
    variants = prediction_variants(whole_slice)
    for trainer, kind in kinds.items():
        record = methods[trainer]
        model = Path(env["nnUNet_results"]) / dataset / f"{trainer}__nnUNetPlans__{CONFIGURATION}"
        common = ["-f", "0", "-chk", "checkpoint_final.pth", "-device", settings.device.split(":")[0],
                  "-npp", "1", "-nps", "1", "--disable_progress_bar"]
        by_name = [console_script("nnUNetv2_predict"), "-d", str(dataset_id), "-c", CONFIGURATION, "-tr", trainer]
        startup_s = None
        if settings.predict_slices is not None:
            # Process start and model loading: a run on an empty folder (nnU-Net loads the model, then finds no case).
            empty = out / "predict_empty"
            empty.mkdir(exist_ok=True)
            startup_s, _ = _run_timed([*by_name, "-i", str(empty), "-o", str(out / "predictions" / "empty"), *common],
                                      env, logs / f"predict_{trainer}_startup.log")
            record["predict_startup_s"] = startup_s
        record["predict"] = {}
        for variant in variants[kind]:
            predictions = out / "predictions" / trainer / variant.name
            if predictions.exists():
                shutil.rmtree(predictions)
            io = ["-i", str(inputs), "-o", str(predictions), *common, *variant.args]
            patch = record["patch_size"]
            if variant.patch_side is None:
                cmd = [*by_name, *io]
            else:
                patch = [variant.patch_side, variant.patch_side]
                cmd = [console_script("nnUNetv2_predict_from_modelfolder"), "-m",
                       str(_whole_slice_model(model, variant.patch_side)), *io]
            seconds, rss = _run_timed(cmd, env, logs / f"predict_{trainer}_{variant.name}.log")
            tiles = tiles_per_slice([settings.size] * 2, patch, variant.step_size)
            entry = {"args": list(variant.args), "patch_size": patch, "mirroring": variant.mirroring,
                     "step_size": variant.step_size, "tiles_per_slice": tiles,
                     "forward_passes_per_slice": tiles * (4 if variant.mirroring else 1), "peak_rss_mib": rss}
            if startup_s is None:
                entry["seconds_per_volume"] = seconds / len(volumes)
                entry["seconds_per_volume_source"] = "measured on whole volumes"
            else:
                per_slab = seconds / len(volumes)
                scale = settings.slices / settings.predict_slices
                entry["seconds_per_slab"] = per_slab
                entry["seconds_per_volume"] = startup_s + max(per_slab - startup_s, 0.0) * scale
                entry["seconds_per_volume_source"] = (
                    f"extrapolated: start-up {startup_s:.1f} s + (slab - start-up) x {settings.slices}/"
                    f"{settings.predict_slices} slices")
            record["predict"][variant.name] = entry
            now = lap(f"predict {trainer} {variant.name}", now)
        record["predict_seconds_per_volume"] = record["predict"]["default"]["seconds_per_volume"]
        record["predict_seconds_per_volume_no_mirroring"] = record["predict"]["disable_tta"]["seconds_per_volume"]
        record["predict_peak_rss_mib"] = max(v["peak_rss_mib"] for v in record["predict"].values())
        if settings.nnunet_benchmark:
            record["nnunet_benchmark_5epochs"] = _nnunet_benchmark(
                NNUNET_BENCHMARK_TRAINERS.get(trainer, f"{trainer}_Benchmark_5epochs"), dataset_id, env, logs,
                settings.device)
            now = lap(f"nnU-Net benchmark {trainer}", now)

    ours, stock = methods[settings.smaformer_trainer], methods[settings.stock_trainer]
    report = {
        "geometry": {
            "slice_size": [settings.size, settings.size],
            "spacing_mm_xyz": list(SYNAPSE_SPACING),
            "slices_per_case": settings.slices,
            "train_cases": settings.train_cases,
            "test_volumes_predicted": len(volumes),
            "predicted_slices_per_volume": settings.predict_slices or settings.slices,
            "synapse_scale": settings.synapse_geometry,
        },
        "settings": asdict(settings),
        "environment": _environment_info(settings.device),
        "methods": methods,
        "smaformer_over_stock": {
            "predict_seconds_per_volume": ours["predict_seconds_per_volume"] / stock["predict_seconds_per_volume"],
            "predict_seconds_per_volume_no_mirroring": ours["predict_seconds_per_volume_no_mirroring"]
            / stock["predict_seconds_per_volume_no_mirroring"],
            "train_samples_per_s": ours["train_samples_per_s"] / stock["train_samples_per_s"],
            "train_megapixels_per_s": ours["train_megapixels_per_s"] / stock["train_megapixels_per_s"],
            "loader_samples_per_s_per_worker": ours["loader_samples_per_s_per_worker"]
            / stock["loader_samples_per_s_per_worker"],
        },
        "stage_seconds": stage_s,
        "total_seconds": time.perf_counter() - started,
    }
    (out / "benchmark_scale.json").write_text(json.dumps(report, indent=2))
    (out / "benchmark_scale.md").write_text(markdown_report(report))
    shutil.rmtree(work, ignore_errors=True)
    return report


def _environment_info(device: str) -> Dict[str, object]:
    import torch

    info: Dict[str, object] = {"torch": torch.__version__, "python": platform.python_version(),
                               "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                               "processor": platform.processor() or platform.machine()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(torch.device(device))
    else:
        info["device"] = f"CPU ({os.cpu_count()} cores)"
    return info


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_report(report: dict) -> str:
    """The report as a Markdown page: geometry, one table per measurement, the ratios."""
    geometry, env = report["geometry"], report["environment"]
    size = geometry["slice_size"]
    lines = [
        "# Synapse-scale benchmark",
        "",
        f"Phantom: {size[0]}x{size[1]} slices, {geometry['spacing_mm_xyz'][0]} mm in-plane, "
        f"{geometry['spacing_mm_xyz'][2]} mm slices, {geometry['slices_per_case']} slices a case, "
        f"{geometry['train_cases']} training case(s), {geometry['test_volumes_predicted']} test volume(s)"
        + ("" if geometry["synapse_scale"] else " (SMALLER than Synapse: a code-path check, not a benchmark)") + ".",
        f"Machine: {env['device']}, torch {env['torch']}, {env['threads']} threads. Both methods measured in this "
        "run; figures from a shared machine are noisy.",
        "",
        "| method | planned batch x patch | loader samples/s per worker | train batch | train it/s "
        "| train samples/s | train Mpx/s | workers to keep up | train peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in report["methods"].items():
        lines.append(
            f"| {name} | {m['batch_size']} x {'x'.join(map(str, m['patch_size']))} "
            f"| {_fmt(m['loader_samples_per_s_per_worker'])} | {m['train_batch_size']} "
            f"| {_fmt(m['train_iterations_per_s'], 3)} "
            f"| {_fmt(m['train_samples_per_s'])} | {_fmt(m['train_megapixels_per_s'], 3)} "
            f"| {_fmt(m['loader_workers_to_keep_up'], 3)} "
            f"| {_fmt(m['train_peak_memory_mib'], 0)} |")
    lines += ["", "`nnUNetv2_predict`, seconds per volume (process start, model loading and export included):", "",
              "| method | variant | patch | tiles/slice | forward passes/slice | s/volume | peak RSS MiB |",
              "|---|---|---|---|---|---|---|"]
    for name, m in report["methods"].items():
        for variant, p in m["predict"].items():
            lines.append(f"| {name} | {variant} | {'x'.join(map(str, p['patch_size']))} | {p['tiles_per_slice']} "
                         f"| {p['forward_passes_per_slice']} | {_fmt(p['seconds_per_volume'], 1)} "
                         f"| {_fmt(p['peak_rss_mib'], 0)} |")
    sources = {(name, p["seconds_per_volume_source"]) for name, m in report["methods"].items()
               for p in m["predict"].values()}
    lines += ["", *sorted(f"Seconds per volume, {name}: {source}." for name, source in sources)]
    ratios = report["smaformer_over_stock"]
    lines += ["", "SMAFormerV2 / stock nnU-Net:", ""]
    lines += [f"- {key}: {_fmt(value)}x" for key, value in ratios.items()]
    slower = ratios["predict_seconds_per_volume"]
    if slower >= 2:
        lines += ["", f"SMAFormerV2 predicts a volume {slower:.1f}x slower than stock nnU-Net with nnU-Net's "
                  "defaults; the variants above show what `--disable_tta`, `-step_size` and a whole-slice patch "
                  "recover."]
    benchmarks = [m["nnunet_benchmark_5epochs"] for m in report["methods"].values() if "nnunet_benchmark_5epochs" in m]
    if benchmarks:
        lines += ["", "nnU-Net's `_Benchmark_5epochs` trainers (`nnUNetv2_train`, all augmentation workers):", ""]
    for bench in benchmarks:
        lines.append(f"- {bench['trainer']}: fastest epoch {bench['fastest_epoch_s']} s, 250 training "
                     f"iterations with data loading and 50 validation iterations "
                     f"({_fmt(bench.get('epoch_train_iterations_per_s'))} training it/s)")
    return "\n".join(lines) + "\n"


def _main(argv: Sequence[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if len(argv) != 2:
        print("usage: python -m nnunetv2_smaformer.benchmark.scale SPEC.json RESULT.json", file=sys.stderr)
        return 2
    record = measure_training(json.loads(Path(argv[0]).read_text()))
    Path(argv[1]).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
