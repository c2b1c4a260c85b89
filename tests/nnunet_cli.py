"""Running nnU-Net's and this package's commands as a user would: console scripts in subprocesses,
or ``smaformer`` in this process through its entry point; and the nnU-Net environment for both."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from nnunetv2_smaformer.nnunet_commands import plan_and_preprocess_command, predict_command
from nnunetv2_smaformer.nnunet_env import EXT_TRAINER_VARIABLE, NNUNET_FOLDER_VARIABLES, folder_environment
from nnunetv2_smaformer.processes import LoggedRun, console_command, run_logged_together

BIN = Path(sys.executable).parent
EXT_TRAINERS = Path(__file__).parent / "ext_trainers"
SMOKE = "nnUNetTrainerSMAFormerV2_smoke"


def nnunet_env(root: Path, create: bool = True) -> dict[str, str]:
    """Environment with the nnU-Net folders under ``root`` (made unless ``create`` is False), this package's
    and the tests' trainer folders registered, a small CPU budget and no ImageNet weights."""
    base = {k: v for k, v in os.environ.items() if k != EXT_TRAINER_VARIABLE}
    env = folder_environment(root, trainer_dirs=[EXT_TRAINERS], create=create, base=base)
    # Small CPU budget per run: one augmentation worker, no export pool oversubscription.
    env["nnUNet_n_proc_DA"] = "1"
    env["nnUNet_def_n_proc"] = "1"
    env.pop("SMAFORMER_SWIN_WEIGHTS", None)
    env["HF_HUB_OFFLINE"] = "1"  # timm's pretrained weights come from the Hugging Face cache only, never the network
    return env


def run(args: Sequence[str], env: dict[str, str] | None = None, timeout: int = 900, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run console script ``args[0]`` with ``args[1:]`` in a subprocess; ``check`` fails the test on a
    non-zero exit, showing the output."""
    cmd = console_command(args)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n"
            f"--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def run_main(args: Sequence[object], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``smaformer ARGS`` in this process through ``nnunetv2_smaformer.cli.main.main``, with ``env`` as
    the whole environment for the call. ``stderr`` holds what the console script would write there
    (log lines, progress bars); an exception other than the package's errors propagates (the test
    fails with it)."""
    from nnunetv2_smaformer.cli.main import main

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved_environ, saved_level = dict(os.environ), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stderr(stream):
            code = main([str(arg) for arg in args])
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        root.removeHandler(handler)
        root.setLevel(saved_level)
    return subprocess.CompletedProcess(["smaformer", *map(str, args)], code, "", stream.getvalue())


def model_folder(env: dict[str, str], dataset: str, trainer: str, configuration: str = "2d") -> Path:
    """``$nnUNet_results/<dataset>/<trainer>__nnUNetPlans__<configuration>``."""
    return Path(env["nnUNet_results"]) / dataset / f"{trainer}__nnUNetPlans__{configuration}"


def predict(env: dict[str, str], images: Path, out: Path, dataset_id: int, trainer: str, *extra: object,
            configuration: str = "2d", workers: bool = False) -> subprocess.CompletedProcess:
    """``nnUNetv2_predict`` of fold 0 on the CPU (:func:`_predict_command`)."""
    return run(_predict_command(images, out, dataset_id, trainer, configuration, extra, workers), env)


def _predict_command(images: Path, out: Path, dataset_id: int, trainer: str, configuration: str,
                     extra: Sequence[object], workers: bool) -> list:
    """With ``workers``, one preprocessing and one export process (nnU-Net's default path, with 1 + 1 instead of its
    3 + 3 worker processes, which on 2 cores cost more start-up than they save); without, nnU-Net's sequential path
    (``-npp 0 -nps 0``: all in one process), which spares the two workers' start-up (each imports nnU-Net anew)."""
    return predict_command(images, out, dataset_id=dataset_id, configuration=configuration, trainer=trainer,
                           processes=1 if workers else 0, extra=extra)


def predict_in_parallel(env: dict[str, str], images: Path, outputs: dict[str, Path], dataset_id: int,
                        *extra: object) -> None:
    """:func:`predict` with workers of ``images`` by several trainers' models at once (``outputs``: trainer ->
    output folder): one nnUNetv2_predict process each, started together, so that one's start-up overlaps another's
    work. Each run's output goes to ``OUTPUT_FOLDER.log``; a failure raises with the log's last lines."""
    runs = {trainer: LoggedRun(console_command(_predict_command(images, out, dataset_id, trainer, "2d", extra, True)),
                               env, out.with_name(f"{out.name}.log"))
            for trainer, out in outputs.items()}
    run_logged_together(runs, timeout_s=900)


def trainer_in_process(env: dict[str, str], monkeypatch, dataset: str, trainer: str, configuration: str = "2d",
                       fold: int = 4):
    """The trainer ``nnUNetv2_train`` would build (nnU-Net's ``get_trainer_from_args``, the trainer looked up by
    name), in this process on the CPU, with ``env``'s nnU-Net folders set for the test (``monkeypatch``) and the
    data loaders in this process too. Fold 4 by default: the folders of the tests' ``nnUNetv2_train`` runs (fold 0)
    stay untouched."""
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    for name in (*NNUNET_FOLDER_VARIABLES, EXT_TRAINER_VARIABLE):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    return get_trainer_from_args(dataset, configuration, fold, trainer, device=torch.device("cpu"))


def plan_and_preprocess(env: dict[str, str], *dataset_ids: int) -> None:
    """``nnUNetv2_plan_and_preprocess`` of ``2d``
    (:func:`~nnunetv2_smaformer.nnunet_commands.plan_and_preprocess_command`)
    with one worker process for the fingerprint and one for the preprocessing."""
    run(plan_and_preprocess_command(dataset_ids, num_processes=1), env)
