"""Network-level side-by-side: SMAFormerV2 against the 2D network stock nnU-Net plans for a dataset.

Both networks get the same input (``batch x channels x 256 x 256`` by default), the same number of
timed training steps and inference batches (:func:`nnunetv2_smaformer.speed.step_timing.measure`),
and their forward cost is counted at one sample. Each network is measured in its own fresh Python
process, back to back within one call, so that the peak memory of one cannot hide in the other's:
on CUDA it is ``torch.cuda.max_memory_allocated``, on CPU the peak resident set size of that process
(which includes the Python, torch and nnU-Net imports, reported separately as ``baseline_rss_mib``).

Run as ``python -m nnunetv2_smaformer.speed.side_by_side WORKER.json RESULT.json`` for one
network (that is how :func:`network_side_by_side` runs its workers, through
:func:`nnunetv2_smaformer.processes.run_worker`). Networks are built through
:mod:`nnunetv2_smaformer.nnunet_bridge`.
"""
from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.nnunet_bridge import (
    build_plans_network,
    build_trainer_network,
    find_trainer_class,
    input_output_channels,
)
from nnunetv2_smaformer.nnunet_env import temporary_environ
from nnunetv2_smaformer.paths import PathLike
from nnunetv2_smaformer.processes import peak_rss_mib, run_worker, worker_main

logger = logging.getLogger(__name__)


#: Keys of the two networks in the result.
SMAFORMER_KEY = "smaformer_v2"
NNUNET_KEY = "nnunet_2d"

WORKER_MODULE = "nnunetv2_smaformer.speed.side_by_side"
# Seconds a worker may take: building, FLOP counting and the timed repetitions on a slow CPU.
_WORKER_TIMEOUT_S = 3600


def build_network(spec: dict, deep_supervision: bool):
    """The network a worker spec describes.

    ``spec["builder"]``: ``"trainer"`` -> ``build_network_architecture`` of the trainer class named
    ``spec["trainer"]`` (how nnU-Net builds it for training and inference); ``"plans"`` -> nnU-Net's
    ``get_network_from_plans`` with the architecture of the plans' configuration (the stock network).
    """
    plans, dataset_json = _read_spec_files(spec)
    if spec["builder"] == "trainer":
        return build_trainer_network(find_trainer_class(spec["trainer"]), plans, spec["configuration"], dataset_json,
                                     deep_supervision)
    if spec["builder"] == "plans":
        return build_plans_network(plans, spec["configuration"], dataset_json, deep_supervision)
    raise ValueError(f"unknown builder {spec['builder']!r}")


def _read_spec_files(spec: dict) -> tuple[dict, dict]:
    """``(plans, dataset.json)`` named by a worker spec."""
    return (json.loads(Path(spec["plans"]).read_text(encoding="utf-8")),
            json.loads(Path(spec["dataset_json"]).read_text(encoding="utf-8")))


def run_worker_spec(spec: dict) -> dict:
    """Measure one network in this process (a fresh one, see module doc) and return its JSON record."""
    import torch

    from nnunetv2_smaformer.forward_cost import count_gmacs
    from nnunetv2_smaformer.speed.step_timing import measure

    device = torch.device(spec["device"])
    plans, dataset_json = _read_spec_files(spec)
    n_in, n_out = input_output_channels(plans, spec["configuration"], dataset_json)
    if spec["builder"] == "trainer":
        find_trainer_class(spec["trainer"])  # imports nnU-Net's trainer and timm before the baseline
    baseline_rss = peak_rss_mib()
    size = int(spec["img_size"])
    # Timed first, so that the peak memory is the training step's and not the FLOP count's.
    measurement = measure(
        spec["name"], lambda: build_network(spec, deep_supervision=True), in_channels=n_in, num_classes=n_out,
        batch_size=int(spec["batch_size"]), img_size=size, steps=int(spec["steps"]), warmup=int(spec["warmup"]),
        device=device,
    )
    peak_rss = peak_rss_mib()
    network = build_network(spec, deep_supervision=False)
    architecture = type(network).__name__
    gmacs = count_gmacs(network, (1, n_in, size, size))
    record = measurement.to_json()
    record.update({
        "architecture": architecture,
        "builder": spec["builder"],
        "trainer": spec.get("trainer"),
        "gmacs_per_image": gmacs,
        "baseline_rss_mib": baseline_rss,
        "peak_rss_mib": peak_rss,
    })
    if device.type == "cuda":
        record["peak_memory_source"] = "torch.cuda.max_memory_allocated"
    else:
        record["peak_memory_mib"] = record["peak_rss_mib"]
        record["peak_memory_source"] = "peak RSS of a fresh process (includes Python/torch/nnU-Net imports)"
    return record


def _ratios(ours: dict, stock: dict) -> dict[str, float | None]:
    """SMAFormerV2's figures over the stock network's (peak memory only where both have one)."""
    return {
        "parameters": ours["parameters"] / stock["parameters"],
        "gmacs_per_image": ours["gmacs_per_image"] / stock["gmacs_per_image"],
        "train_step_median_s": ours["train_step_median_s"] / stock["train_step_median_s"],
        "inference_images_per_s": ours["inference_images_per_s"] / stock["inference_images_per_s"],
        "peak_memory_mib": (ours["peak_memory_mib"] / stock["peak_memory_mib"]
                            if ours.get("peak_memory_mib") and stock.get("peak_memory_mib") else None),
    }


def network_side_by_side(
    smaformer_trainer: str,
    plans_path: PathLike,
    dataset_json_path: PathLike,
    configuration: str = "2d",
    batch_size: int = 2,
    img_size: int = 256,
    steps: int = 5,
    warmup: int = 2,
    device: str = "cpu",
) -> dict:
    """SMAFormerV2 (built by ``smaformer_trainer``) and the stock network of ``configuration`` in the
    plans at ``plans_path``, measured back to back with the same settings.

    Args:
        smaformer_trainer: name of a SMAFormerV2 trainer (its ``build_network_architecture`` is used).
        plans_path: an nnU-Net plans file (``nnUNetPlans.json`` or a model folder's ``plans.json``)
            whose ``configuration`` holds the stock architecture.
        dataset_json_path: the dataset's ``dataset.json`` (input channels, labels).
        img_size: square patch side in pixels, a multiple of 32 for SMAFormerV2.
        steps, warmup: timed and untimed repetitions (medians are reported).
        device: ``"cpu"`` or ``"cuda[:N]"``.

    Returns:
        ``{"settings": {...}, "networks": {"smaformer_v2": rec, "nnunet_2d": rec},
        "ratios_smaformer_over_nnunet": {...}}``; a record holds ``parameters``, ``gmacs_per_image``,
        ``train_step_s`` (list, s), ``train_step_median_s``, ``inference_images_per_s``,
        ``peak_memory_mib`` and ``peak_memory_source``.
    """
    plans_path, dataset_json_path = Path(plans_path).resolve(), Path(dataset_json_path).resolve()
    plans = json.loads(plans_path.read_text(encoding="utf-8"))
    if configuration not in plans.get("configurations", {}):
        raise SMAFormerError(f"{plans_path} has no '{configuration}' configuration for the network side-by-side")
    common = dict(plans=str(plans_path), dataset_json=str(dataset_json_path), configuration=configuration,
                  batch_size=batch_size, img_size=img_size, steps=steps, warmup=warmup, device=device)
    specs: list[dict] = [
        dict(name=SMAFORMER_KEY, builder="trainer", trainer=smaformer_trainer, **common),
        dict(name=NNUNET_KEY, builder="plans", **common),
    ]
    # The workers look the SMAFormerV2 trainer up by name, in the environment they inherit.
    with temporary_environ(), tempfile.TemporaryDirectory(prefix="smaformer_side_by_side_") as tmp:
        networks: dict[str, dict] = {
            spec["name"]: run_worker(WORKER_MODULE, spec, Path(tmp), name=spec["name"], timeout_s=_WORKER_TIMEOUT_S)
            for spec in specs}
    return {
        "settings": {"batch_size": batch_size, "img_size": img_size, "steps": steps, "warmup": warmup,
                     "device": device, "configuration": configuration, "plans": str(plans_path),
                     "smaformer_trainer": smaformer_trainer,
                     "optimizer": "AdamW (both networks)", "loss": "nnU-Net Dice+CE with deep supervision"},
        "networks": networks,
        "ratios_smaformer_over_nnunet": _ratios(networks[SMAFORMER_KEY], networks[NNUNET_KEY]),
    }


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:], run_worker_spec, WORKER_MODULE))
