"""nnU-Net's command lines, built in one place: planning, training and prediction as this project runs them.

Each builder returns the command with the console script's name first; :func:`~nnunetv2_smaformer.processes.
console_command` resolves it in this interpreter's environment, the tests' runner does the same.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nnunetv2_smaformer.model_folder import DEFAULT_CHECKPOINT
from nnunetv2_smaformer.processes import RunRecord, console_command, run_logged


def plan_and_preprocess_command(dataset_ids: Sequence[int], num_processes: int = 2,
                                configuration: str = "2d") -> list[str]:
    """``nnUNetv2_plan_and_preprocess -d IDS -c CONFIGURATION --verify_dataset_integrity`` with ``num_processes``
    for the fingerprint as for the preprocessing (nnU-Net's ``-npfp`` is 8 whatever the machine; on 2 cores, 8
    spawned workers cost more start-up than they save)."""
    return ["nnUNetv2_plan_and_preprocess", "-d", *map(str, dataset_ids), "-c", configuration,
            "-np", str(num_processes), "-npfp", str(num_processes), "--verify_dataset_integrity"]


def plan_and_preprocess(env: Mapping[str, str], dataset_id: int, log_file: Path, num_processes: int = 2,
                        configuration: str = "2d") -> RunRecord:
    """:func:`plan_and_preprocess_command` of one dataset, logged into ``log_file``."""
    return run_logged(console_command(plan_and_preprocess_command([dataset_id], num_processes, configuration)), env,
                      log_file, label="plan")


def train_command(dataset_id: int, configuration: str, trainer: str, *, fold: int = 0, device: str = "cpu",
                  extra: Sequence[str] = ()) -> list[str]:
    """``nnUNetv2_train ID CONFIGURATION FOLD -tr TRAINER -device DEVICE [EXTRA]``."""
    return ["nnUNetv2_train", str(dataset_id), configuration, str(fold), "-tr", trainer, "-device", device,
            *map(str, extra)]


def predict_command(images: Path, output: Path, *, dataset_id: int | None = None, configuration: str | None = None,
                    trainer: str | None = None, model_folder: Path | None = None, fold: int = 0, device: str = "cpu",
                    processes: int = 1, extra: Sequence[str] = ()) -> list[str]:
    """``nnUNetv2_predict`` of a trained model named by ``dataset_id``, ``configuration`` and ``trainer``, or
    ``nnUNetv2_predict_from_modelfolder`` of ``model_folder``: fold ``fold``'s final checkpoint on ``device``, with
    ``processes`` preprocessing and as many export workers (0: nnU-Net's sequential path, all in one process).

    nnU-Net's defaults are 3 + 3 workers; on a small CPU machine their start-up (each imports nnU-Net anew) costs
    more than they save, so every prediction here runs 1 + 1 unless it asks for other counts.
    """
    if model_folder is not None:
        model = ["nnUNetv2_predict_from_modelfolder", "-m", str(model_folder)]
    elif None in (dataset_id, configuration, trainer):
        raise ValueError("predict_command needs a model folder, or a dataset id, configuration and trainer")
    else:
        model = ["nnUNetv2_predict", "-d", str(dataset_id), "-c", str(configuration), "-tr", str(trainer)]
    return [*model, "-i", str(images), "-o", str(output), "-f", str(fold), "-chk", DEFAULT_CHECKPOINT,
            "-device", device.split(":")[0], "-npp", str(processes), "-nps", str(processes), *map(str, extra)]
