"""Running nnU-Net's and this package's console scripts in subprocesses, as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

BIN = Path(sys.executable).parent
EXT_TRAINERS = Path(__file__).parent / "ext_trainers"


def nnunet_env(root: Path) -> Dict[str, str]:
    """Environment with nnU-Net folders under ``root`` and both trainer folders registered."""
    from nnunetv2_smaformer.cli.trainer_path import trainer_dir

    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        path = root / name
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["nnUNet_extTrainer"] = os.pathsep.join([str(trainer_dir()), str(EXT_TRAINERS)])
    # Small CPU budget per run: one augmentation worker, no export pool oversubscription.
    env["nnUNet_n_proc_DA"] = "1"
    env["nnUNet_def_n_proc"] = "1"
    env.pop("SMAFORMER_SWIN_WEIGHTS", None)
    env["HF_HUB_OFFLINE"] = "1"  # timm's pretrained weights come from the Hugging Face cache only, never the network
    return env


def run(args: Sequence[str], env: Dict[str, str], timeout: int = 900, check: bool = True,
        cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    cmd = [str(BIN / args[0]), *map(str, args[1:])]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n"
            f"--- stderr\n{result.stderr[-4000:]}"
        )
    return result


SMOKE = "nnUNetTrainerSMAFormerV2_smoke"


def model_folder(env: Dict[str, str], dataset: str, trainer: str, configuration: str = "2d") -> Path:
    """``$nnUNet_results/<dataset>/<trainer>__nnUNetPlans__<configuration>``."""
    return Path(env["nnUNet_results"]) / dataset / f"{trainer}__nnUNetPlans__{configuration}"


def plan_and_preprocess(env: Dict[str, str], dataset_id: int) -> None:
    run(["nnUNetv2_plan_and_preprocess", "-d", dataset_id, "-c", "2d", "-np", "1", "--verify_dataset_integrity"], env)
