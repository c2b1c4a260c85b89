"""The one-command demo: phantom -> conversion -> nnU-Net planning -> SMAFormerV2 and stock nnU-Net
training on the same CPU budget -> prediction of the test cases -> Synapse evaluation -> report.

Everything runs through the same console scripts a user types (``nnUNetv2_*`` in subprocesses),
so the demo exercises the real set-up. nnU-Net folders go inside ``out`` unless the user has set
their own; a dataset id that no existing dataset uses is chosen, so user data are never touched.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from nnunetv2_smaformer.benchmark.model_folder import TIMING_FILE
from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.nnunet_env import (EXT_TRAINER_VARIABLE, NNUNET_FOLDER_VARIABLES, console_script, nnunet_environ,
                                           with_trainer_dir)

logger = logging.getLogger(__name__)

SMAFORMER_TRAINER = "nnUNetTrainerSMAFormerV2_demoCPU"
STOCK_TRAINER = "nnUNetTrainerAdam_demoCPU"
NNUNET_FOLDERS = NNUNET_FOLDER_VARIABLES
# Ids tried for the demo dataset, highest first, so that it stays clear of users' numbering.
CANDIDATE_IDS = range(999, 899, -1)
#: What the demo's inference time per case includes: the same command and flags for every method.
PREDICT_TIMING_SCOPE = ("the whole `nnUNetv2_predict` run (process start-up, model loading, preprocessing, "
                        "sliding window, resampling, writing) divided by the number of cases, same flags for every method")
#: How the demo trainers' optimiser and learning rate were chosen (``benchmarks/demo_search.py``).
SETTINGS_CHOSEN_BY = ("Optimiser and learning rate: each method's best mean DSC on this phantom in one search on the "
                      "same budget (`benchmarks/demo_search.py`): AdamW at peak lr 3e-4, 1e-3 and 3e-3 for both "
                      "methods, plus nnU-Net's default SGD at 1x, 3x, 10x and 30x its lr 1e-2 for stock nnU-Net. "
                      "Then SMAFormerV2's one warm-up epoch, chosen by the worst of repeated runs: at 1e-3 without "
                      "it runs ranged from 75 to 91 %, with it from 85 to 93 %.")
# Training log lines worth showing while a model trains.
_PROGRESS_MARKERS = ("Epoch ", "Pseudo dice", "Epoch time", "train_loss", "Training done")


@dataclass
class DemoConfig:
    """What the demo builds. The defaults take about 14 minutes on 2 CPU cores."""

    out: Path
    size: int = 128
    slices: int = 12
    seed: int = 0
    dataset_id: Optional[int] = None
    trainers: Sequence[str] = (SMAFORMER_TRAINER, STOCK_TRAINER)
    overlay_cases: int = 1


@dataclass
class DemoResult:
    out: Path
    dataset_name: str
    report: Dict[str, object]
    stage_seconds: Dict[str, float] = field(default_factory=dict)


def nnunet_environment(out: Path) -> Dict[str, str]:
    """The environment for the nnU-Net subprocesses: the user's folders if set, else folders in ``out``."""
    env = dict(os.environ)
    for name in NNUNET_FOLDERS:
        if not env.get(name):
            env[name] = str(out / name)
        Path(env[name]).mkdir(parents=True, exist_ok=True)
    env[EXT_TRAINER_VARIABLE] = with_trainer_dir(env.get(EXT_TRAINER_VARIABLE))
    env.setdefault("nnUNet_n_proc_DA", "1")  # two cores: one for augmentation, the rest for the network
    return env


def free_dataset_id(env: Dict[str, str], wanted: Optional[int] = None) -> int:
    """``wanted`` if no dataset uses it (else an error), or the highest unused id in 900-999."""
    def used(dataset_id: int) -> bool:
        prefix = f"Dataset{dataset_id:03d}_"
        return any(
            any(p.name.startswith(prefix) for p in Path(env[name]).iterdir())
            for name in NNUNET_FOLDERS if Path(env[name]).is_dir()
        )

    if wanted is not None:
        if used(wanted):
            raise SMAFormerError(f"dataset id {wanted} is already used in your nnU-Net folders; "
                                 f"the demo never touches existing datasets: choose another --dataset-id")
        return wanted
    for dataset_id in CANDIDATE_IDS:
        if not used(dataset_id):
            return dataset_id
    raise SMAFormerError("no free dataset id between 900 and 999 in your nnU-Net folders")


def _run(stage: str, cmd: List[str], env: Dict[str, str], log_file: Path) -> None:
    """Run a console script, keep its whole output in ``log_file``, show training progress."""
    logger.info("[%s] %s", stage, " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)))
    with open(log_file, "w") as log:
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if any(marker in line for marker in _PROGRESS_MARKERS):
                logger.info("[%s] %s", stage, line.strip()[:160])
        returncode = process.wait()
    if returncode != 0:
        raise SMAFormerError(f"{stage} failed (exit {returncode}); see {log_file}")


def run_demo(config: DemoConfig) -> DemoResult:
    """Run the whole demo; returns the report also written to ``out/report.{md,json}``."""
    from nnunetv2_smaformer.benchmark.compare import CompareConfig, compare
    from nnunetv2_smaformer.conversion.converter import convert_synapse
    from nnunetv2_smaformer.conversion.phantom import make_phantom
    from nnunetv2_smaformer.synapse import dataset_folder_name
    from nnunetv2_smaformer.evaluation.overlays import write_overlays

    out = config.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    env = nnunet_environment(out)
    dataset_id = free_dataset_id(env, config.dataset_id)
    dataset = dataset_folder_name(dataset_id)
    raw = Path(env["nnUNet_raw"]) / dataset
    timings: Dict[str, float] = {}

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - started
        logger.info("[%s] done in %.0f s", name, timings[name])

    with stage("phantom+conversion"):
        phantom_dir = out / "phantom"
        if phantom_dir.exists():
            shutil.rmtree(phantom_dir)
        make_phantom(phantom_dir, "btcv", size=config.size, slices=config.slices, seed=config.seed)
        # The converter reads the nnU-Net folders from the environment, as the CLI does.
        with nnunet_environ({name: env[name] for name in NNUNET_FOLDERS}, register_trainers=False):
            convert_synapse(phantom_dir, dataset_id, fmt="btcv", progress=False)

    with stage("plan+preprocess"):
        _run("plan", [console_script("nnUNetv2_plan_and_preprocess"), "-d", str(dataset_id), "-c", "2d", "-np", "2",
                      "--verify_dataset_integrity"], env, logs / "plan_and_preprocess.log")

    methods = []
    cases = len(list((raw / "imagesTs").glob("*_0000.nii.gz")))
    for trainer in config.trainers:
        with stage(f"train {trainer}"):
            _run(trainer, [console_script("nnUNetv2_train"), str(dataset_id), "2d", "0", "-tr", trainer, "-device", "cpu"],
                 env, logs / f"train_{trainer}.log")

        predictions = out / "predictions" / trainer
        with stage(f"predict {trainer}"):
            _run(f"predict {trainer}", [console_script("nnUNetv2_predict"), "-i", str(raw / "imagesTs"), "-o", str(predictions),
                                        "-d", str(dataset_id), "-c", "2d", "-f", "0", "-tr", trainer, "-device", "cpu",
                                        "-chk", "checkpoint_final.pth", "-npp", "1", "-nps", "1"],
                 env, logs / f"predict_{trainer}.log")
        seconds = timings[f"predict {trainer}"] / max(cases, 1)
        (predictions / TIMING_FILE).write_text(json.dumps({"seconds_per_case": seconds, "includes": PREDICT_TIMING_SCOPE}))
        methods.append((Path(env["nnUNet_results"]) / dataset / f"{trainer}__nnUNetPlans__2d", predictions))

    with stage("evaluation+comparison"):
        # Building the trained networks looks the trainers up by name, as nnUNetv2_predict does.
        with nnunet_environ({name: env[name] for name in (*NNUNET_FOLDERS, EXT_TRAINER_VARIABLE)}):
            report = compare(CompareConfig(methods=methods, gt_dir=raw / "labelsTs", out_dir=out,
                                           dataset_json=raw / "dataset.json"))

    with stage("overlays"):
        names = {int(v): k for k, v in json.loads((raw / "dataset.json").read_text())["labels"].items()}
        for image in sorted((raw / "imagesTs").glob("*_0000.nii.gz"))[: config.overlay_cases]:
            case = image.name[: -len("_0000.nii.gz")]
            for trainer in config.trainers:
                write_overlays(image, raw / "labelsTs" / f"{case}.nii.gz",
                               out / "predictions" / trainer / f"{case}.nii.gz",
                               out / "figures" / trainer, auto=3, label_names=names)

    report["setup"] = demo_setup(config.trainers, timings)
    write_setup(out, report)
    return DemoResult(out=out, dataset_name=dataset, report=report, stage_seconds=timings)


def demo_setup(trainers: Sequence[str], stage_seconds: Dict[str, float]) -> Dict[str, object]:
    """What the report says about the demo: synthetic data, the shared budget, each method's settings, stage times."""
    from nnunetv2_smaformer.training import variants

    settings = {}
    for trainer in trainers:
        trainer_class = getattr(variants, trainer, None)
        summary = getattr(trainer_class, "settings_summary", None)
        settings[trainer] = summary() if summary else "its own trainer's settings"
    return {
        "data": "The data are a synthetic phantom (organ-like ellipsoids with CT-like intensities and noise, "
                "generated by `smaformer make-phantom`), not patient CT: the figures show that training and "
                "inference run and learn, they do not carry over to Synapse.",
        "budget": variants.DemoBudget.budget_summary(),
        "settings": settings,
        "settings_chosen_by": SETTINGS_CHOSEN_BY,
        "inference_timing": PREDICT_TIMING_SCOPE,
        "stage_seconds": dict(stage_seconds),
    }


def write_setup(out: Path, report: Dict[str, object]) -> None:
    """Add the demo's set-up to ``report.json`` and, after the title, to ``report.md``."""
    from nnunetv2_smaformer.benchmark.report import REPORT_JSON, REPORT_MD, render_setup_section

    (out / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = (out / REPORT_MD).read_text(encoding="utf-8")
    title, rest = markdown.split("\n\n", 1)
    section = "\n".join(render_setup_section(report["setup"]))
    (out / REPORT_MD).write_text(f"{title}\n\n{section}\n{rest}", encoding="utf-8")
