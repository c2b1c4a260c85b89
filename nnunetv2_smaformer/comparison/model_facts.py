"""Measuring trained models: parameters and GMACs of the trained network, and inference seconds per case with
nnU-Net's ``nnUNetPredictor``.

Networks are built through :mod:`nnunetv2_smaformer.nnunet_bridge` and counted by
:mod:`nnunetv2_smaformer.forward_cost`; torch and nnU-Net are imported inside the functions.
"""
from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.model_folder import ModelFolder, read_json
from nnunetv2_smaformer.nnunet_bridge import (
    build_trainer_network,
    find_trainer_class,
    input_output_channels,
    patch_size,
)
from nnunetv2_smaformer.paths import PathLike
from nnunetv2_smaformer.quiet import quiet

logger = logging.getLogger(__name__)


def list_images(images_dir: PathLike, file_ending: str, n_cases: int) -> list[list[str]]:
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


def time_inference(model_folder: ModelFolder, fold: int | str, checkpoint_name: str,
                   cases: list[list[str]], device_name: str) -> dict[str, object]:
    """Seconds per case of nnU-Net's ``nnUNetPredictor`` on ``cases`` (model loading excluded).

    Each case is predicted as ``nnUNetv2_predict`` does by default (preprocessing, sliding window with
    step 0.5 and Gaussian weighting, the mirroring the checkpoint allows, resampling back), in this
    process, without writing files.
    """
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    device = torch.device(device_name)
    with quiet("nnUNetPredictor"):
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                    perform_everything_on_device=device.type == "cuda", device=device,
                                    verbose=False, allow_tqdm=False)
        predictor.initialize_from_trained_model_folder(str(model_folder.path), use_folds=(fold,),
                                                       checkpoint_name=checkpoint_name)
    per_case: list[float] = []
    for files in cases:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with quiet("nnUNetPredictor"):
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


def trained_network_facts(folder: ModelFolder, checkpoint: dict, trainer: str, configuration: str) -> dict[str, object]:
    """Parameters and GMACs of the trained network, built the way nnU-Net builds it for inference.

    The trainer class is found by nnU-Net's lookup by name; ``build_network_architecture(...,
    enable_deep_supervision=False)`` builds the network and the checkpoint's weights are loaded
    strictly, so the counted network is the trained one. GMACs: one forward pass of a
    ``[1, C, *patch_size]`` input from the model's plans (1 MAC = 2 FLOPs).
    """
    from nnunetv2_smaformer.forward_cost import count_gmacs
    from nnunetv2_smaformer.training.trainer import nnUNetTrainerSMAFormerV2

    plans = read_json(folder.plans_path, "plans file")
    dataset_json = read_json(folder.dataset_json_path, "dataset.json")
    if configuration not in plans.get("configurations", {}):
        raise SMAFormerError(f"{folder.plans_path} has no configuration '{configuration}' (the checkpoint's)")
    trainer_class = find_trainer_class(trainer)
    n_in, n_out = input_output_channels(plans, configuration, dataset_json)
    network = build_trainer_network(trainer_class, plans, configuration, dataset_json, deep_supervision=False)
    weights = {key[7:] if key.startswith("module.") else key: value
               for key, value in checkpoint["network_weights"].items()}
    try:
        network.load_state_dict(weights)
    except RuntimeError as err:
        raise SMAFormerError(
            f"{folder.checkpoint}: the weights do not fit the network {trainer} builds: "
            f"{str(err).splitlines()[0]}") from err
    patch = patch_size(plans, configuration)
    facts: dict[str, object] = {
        "architecture": type(network).__name__,
        "is_smaformer": issubclass(trainer_class, nnUNetTrainerSMAFormerV2),
        "input_channels": n_in,
        "output_channels": n_out,
        "patch_size": patch,
        "parameters": int(sum(p.numel() for p in network.parameters())),
        "gmacs": count_gmacs(network, (1, n_in, *patch)),
        "gmacs_input_shape": [1, n_in, *patch],
    }
    logger.info("%s: %s, %.2f M parameters, %.2f GMACs at %s", trainer, facts["architecture"],
                facts["parameters"] / 1e6, facts["gmacs"], "x".join(map(str, patch)))
    return facts
