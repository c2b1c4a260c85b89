"""The worker of ``smaformer benchmark-scale``: one method's data loading and training, measured in a fresh process.

``python -m nnunetv2_smaformer.speed.scale_worker SPEC.json RESULT.json`` (how
:func:`nnunetv2_smaformer.speed.scale.run_scale_benchmark` runs it, through
:func:`nnunetv2_smaformer.processes.run_worker`): nnU-Net's training data loader with its real augmentation at
the trainer's planned batch size, in the measuring process itself (``nnUNet_n_proc_DA=0``), so samples/s is what
one augmentation worker delivers; then training iterations (the trainer's ``train_step``) on batches already
loaded, so that the figure is the network's and not the loader's; the weights are saved as a checkpoint that
``nnUNetv2_predict`` reads next.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.processes import peak_rss_mib, worker_main

WORKER_MODULE = "nnunetv2_smaformer.speed.scale_worker"


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _first_samples(batch: dict, count: int) -> dict:
    """The first ``count`` samples of an nnU-Net batch (``data`` and each deep-supervision target)."""
    target = batch["target"]
    target = [t[:count] for t in target] if isinstance(target, (list, tuple)) else target[:count]
    return dict(batch, data=batch["data"][:count], target=target)


def _load_batches(loader, count: int) -> tuple[list[dict], float]:
    """``count`` batches of nnU-Net's training loader and the seconds they took."""
    start = time.perf_counter()
    batches = [next(loader) for _ in range(count)]
    return batches, time.perf_counter() - start


def _time_steps(trainer, batches: list[dict], train_batch: int, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` training steps (the trainer's ``train_step``) after ``warmup`` untimed ones, on
    the first ``train_batch`` samples of batches already loaded."""
    trainer.network.train()
    step_s: list[float] = []
    for i in range(warmup + steps):
        batch = _first_samples(batches[i % len(batches)], train_batch)
        _sync(trainer.device)
        start = time.perf_counter()
        trainer.train_step(batch)
        _sync(trainer.device)
        if i >= warmup:
            step_s.append(time.perf_counter() - start)
    return step_s


def _save_model_folder(trainer, preprocessed: Path) -> None:
    """The model folder ``nnUNetv2_predict`` reads, laid out as ``nnUNetv2_train`` leaves it, with the trainer's
    current weights as ``checkpoint_final.pth``."""
    base = Path(trainer.output_folder_base)
    base.mkdir(parents=True, exist_ok=True)
    (base / "plans.json").write_text(json.dumps(trainer.plans_manager.plans, indent=2))
    (base / "dataset.json").write_text(json.dumps(trainer.dataset_json, indent=2))
    shutil.copy(preprocessed / "dataset_fingerprint.json", base / "dataset_fingerprint.json")
    Path(trainer.output_folder).mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(str(Path(trainer.output_folder) / "checkpoint_final.pth"))


def _record(spec: dict, trainer, batches: int, loader_s: float, loader_rss: float, train_batch: int,
            step_s: list[float]) -> dict:
    """The JSON record of one method: the loader's and the training steps' figures, and peak memory."""
    import torch

    batch_size = int(trainer.batch_size)
    step_median = sorted(step_s)[len(step_s) // 2]
    patch = [int(v) for v in trainer.configuration_manager.patch_size]
    record = {
        "trainer": spec["trainer"],
        "configuration": spec["configuration"],
        "network": type(trainer.network).__name__,
        "parameters": sum(p.numel() for p in trainer.network.parameters()),
        "batch_size": batch_size,
        "patch_size": patch,
        "spacing": [float(v) for v in trainer.configuration_manager.spacing],
        "loader_batches": batches,
        "loader_samples_per_s_per_worker": batches * batch_size / loader_s,
        "train_batch_size": train_batch,
        "train_step_s": step_s,
        "train_step_median_s": step_median,
        "train_iterations_per_s": 1.0 / step_median,
        "train_samples_per_s": train_batch / step_median,
        # The methods' patches differ in area (256x256 vs 512x512 at Synapse scale): pixels compare fairly.
        "train_megapixels_per_s": train_batch * math.prod(patch) / step_median / 1e6,
        "loader_peak_rss_mib": loader_rss,
        "peak_rss_mib": peak_rss_mib(),
    }
    # Augmentation workers needed so that loading keeps up with the training steps.
    record["loader_workers_to_keep_up"] = record["train_samples_per_s"] / record["loader_samples_per_s_per_worker"]
    if trainer.device.type == "cuda":
        record["train_peak_memory_mib"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        record["train_peak_memory_source"] = "torch.cuda.max_memory_allocated"
    else:
        record["train_peak_memory_mib"] = record["peak_rss_mib"]
        record["train_peak_memory_source"] = "peak RSS of the measuring process (imports and loader included)"
    return record


def measure_training(spec: dict) -> dict:
    """Loader throughput and training iterations of the trainer ``spec["trainer"]``, then a checkpoint.

    ``spec``: ``trainer``, ``dataset`` (folder name), ``configuration``, ``device``, ``loader_batches``,
    ``train_warmup``, ``train_steps``, ``train_batch_size`` (``None``: the planned batch). Reads
    ``$nnUNet_preprocessed``; writes the model folder under ``$nnUNet_results`` the way ``nnUNetv2_train`` lays
    it out, with ``checkpoint_final.pth`` holding the weights after the measured iterations. Must run with
    ``nnUNet_n_proc_DA=0`` (one loader in this process).
    """
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    if os.environ.get("nnUNet_n_proc_DA") != "0":
        raise SMAFormerError("measure_training needs nnUNet_n_proc_DA=0 (the loader in the measuring process)")
    device = torch.device(spec["device"])
    # Built as nnUNetv2_train builds it (the trainer looked up by name in nnUNet_extTrainer too).
    trainer = get_trainer_from_args(spec["dataset"], spec["configuration"], 0, spec["trainer"], device=device)
    trainer.initialize()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    loader, _ = trainer.get_dataloaders()
    batches, loader_s = _load_batches(loader, int(spec["loader_batches"]))
    loader_rss = peak_rss_mib()
    train_batch = min(int(spec.get("train_batch_size") or trainer.batch_size), int(trainer.batch_size))
    step_s = _time_steps(trainer, batches, train_batch, int(spec["train_warmup"]), int(spec["train_steps"]))
    _save_model_folder(trainer, Path(os.environ["nnUNet_preprocessed"]) / spec["dataset"])
    if hasattr(loader, "_finish"):
        loader._finish()
    return _record(spec, trainer, len(batches), loader_s, loader_rss, train_batch, step_s)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:], measure_training, WORKER_MODULE))
