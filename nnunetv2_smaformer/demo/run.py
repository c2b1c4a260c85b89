"""The one-command demo: phantom -> conversion -> nnU-Net planning -> SMAFormerV2 and stock nnU-Net
training on the same CPU budget -> prediction of the test cases -> Synapse evaluation -> report.

Everything runs through the same console scripts a user types (``nnUNetv2_*`` in subprocesses),
so the demo exercises the real set-up. nnU-Net folders go inside ``out`` unless the user has set
their own; a dataset id that no existing dataset uses is chosen, so user data are never touched.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunetv2_smaformer.conversion.phantom_dataset import write_phantom_dataset
from nnunetv2_smaformer.model_folder import TIMING_FILE
from nnunetv2_smaformer.nnunet_commands import plan_and_preprocess, predict_command, train_command
from nnunetv2_smaformer.nnunet_env import (
    folder_environment,
    free_dataset_id,
    nnunet_variables,
    temporary_environ,
    with_cpu_worker_defaults,
)
from nnunetv2_smaformer.processes import Stages, console_command, run_logged

logger = logging.getLogger(__name__)

SMAFORMER_TRAINER = "nnUNetTrainerSMAFormerV2_demoCPU"
STOCK_TRAINER = "nnUNetTrainerAdam_demoCPU"
# Ids tried for the demo dataset, highest first, so that it stays clear of users' numbering.
CANDIDATE_IDS = range(999, 899, -1)
#: What the demo's inference time per case includes: the same command and flags for every method.
PREDICT_TIMING_SCOPE = ("the whole `nnUNetv2_predict` run (process start-up, model loading, preprocessing, "
                        "sliding window, resampling, writing) divided by the number of cases, same flags for every "
                        "method")
#: How the demo trainers' optimiser and learning rate were chosen (``benchmarks/demo_search.py``).
SETTINGS_CHOSEN_BY = ("Optimiser and learning rate: each method's best mean DSC on this phantom in one search on the "
                      "same budget (`benchmarks/demo_search.py`): AdamW at peak lr 3e-4, 1e-3 and 3e-3 for both "
                      "methods, plus nnU-Net's default SGD at 1x, 3x, 10x and 30x its lr 1e-2 for stock nnU-Net. "
                      "Then SMAFormerV2's one warm-up epoch, chosen by the worst of repeated runs. The search's "
                      "tables are in the project's docs/results/.")
# Training log lines worth showing while a model trains.
_PROGRESS_MARKERS = ("Epoch ", "Pseudo dice", "Epoch time", "train_loss", "Training done")


@dataclass
class DemoConfig:
    """What the demo builds (the defaults are sized for a 2-core CPU)."""

    out: Path
    size: int = 128
    slices: int = 12
    seed: int = 0
    dataset_id: int | None = None
    trainers: Sequence[str] = (SMAFORMER_TRAINER, STOCK_TRAINER)
    overlay_cases: int = 1


@dataclass
class DemoResult:
    out: Path
    dataset_name: str
    report: dict[str, object]
    stage_seconds: dict[str, float] = field(default_factory=dict)


def demo_environment(out: Path) -> dict[str, str]:
    """The environment for the nnU-Net subprocesses: the user's folders if set, else folders in ``out``."""
    return with_cpu_worker_defaults(folder_environment(out, keep_user_folders=True))


def run_demo(config: DemoConfig) -> DemoResult:
    """Run the whole demo; returns the report also written to ``out/report.{md,json}``."""
    out = config.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    env = demo_environment(out)
    dataset_id = free_dataset_id(env, config.dataset_id, CANDIDATE_IDS)
    stages = Stages()
    from nnunetv2_smaformer.comparison.compare import CompareConfig, compare
    from nnunetv2_smaformer.evaluation.overlays import write_overlays

    with stages("phantom+conversion"):
        dataset, raw = write_phantom_dataset(env, dataset_id, out, size=config.size, slices=config.slices,
                                             seed=config.seed)
    with stages("plan+preprocess"):
        plan_and_preprocess(env, dataset_id, logs / "plan_and_preprocess.log")

    methods = []
    cases = len(list((raw / "imagesTs").glob("*_0000.nii.gz")))
    for trainer in config.trainers:
        with stages(f"train {trainer}"):
            run_logged(console_command(train_command(dataset_id, "2d", trainer)), env, logs / f"train_{trainer}.log",
                       label=trainer, show=_PROGRESS_MARKERS)
        predictions = out / "predictions" / trainer
        with stages(f"predict {trainer}"):
            run_logged(console_command(predict_command(raw / "imagesTs", predictions, dataset_id=dataset_id,
                                                       configuration="2d", trainer=trainer)),
                       env, logs / f"predict_{trainer}.log", label=f"predict {trainer}")
        seconds = stages.seconds[f"predict {trainer}"] / max(cases, 1)
        timing = {"seconds_per_case": seconds, "includes": PREDICT_TIMING_SCOPE}
        (predictions / TIMING_FILE).write_text(json.dumps(timing))
        methods.append((Path(env["nnUNet_results"]) / dataset / f"{trainer}__nnUNetPlans__2d", predictions))

    with stages("evaluation+comparison"):
        # Building the trained networks looks the trainers up by name, as nnUNetv2_predict does.
        with temporary_environ(nnunet_variables(env)):
            report = compare(CompareConfig(methods=methods, gt_dir=raw / "labelsTs", out_dir=out,
                                           dataset_json=raw / "dataset.json"))

    with stages("overlays"):
        names = {int(v): k for k, v in json.loads((raw / "dataset.json").read_text())["labels"].items()}
        for image in sorted((raw / "imagesTs").glob("*_0000.nii.gz"))[: config.overlay_cases]:
            case = image.name[: -len("_0000.nii.gz")]
            for trainer in config.trainers:
                write_overlays(image, raw / "labelsTs" / f"{case}.nii.gz",
                               out / "predictions" / trainer / f"{case}.nii.gz",
                               out / "figures" / trainer, auto=3, label_names=names)

    report["setup"] = demo_setup(config.trainers, stages.seconds)
    write_setup(out, report)
    return DemoResult(out=out, dataset_name=dataset, report=report, stage_seconds=stages.seconds)


def demo_setup(trainers: Sequence[str], stage_seconds: dict[str, float]) -> dict[str, object]:
    """What the report says about the demo: synthetic data, the shared budget, each method's settings, stage times."""
    from nnunetv2_smaformer.demo import trainers as demo_trainers

    settings = {}
    for trainer in trainers:
        trainer_class = getattr(demo_trainers, trainer, None)
        summary = getattr(trainer_class, "settings_summary", None)
        settings[trainer] = summary() if summary else "its own trainer's settings"
    return {
        "data": "The data are a synthetic phantom (organ-like ellipsoids with CT-like intensities and noise, "
                "generated by `smaformer make-phantom`), not patient CT: the figures show that training and "
                "inference run and learn, they do not carry over to Synapse.",
        "budget": demo_trainers.DemoBudget.budget_summary(),
        "settings": settings,
        "settings_chosen_by": SETTINGS_CHOSEN_BY,
        "inference_timing": PREDICT_TIMING_SCOPE,
        "stage_seconds": dict(stage_seconds),
    }


def write_setup(out: Path, report: dict[str, object]) -> None:
    """Add the demo's set-up to ``report.json`` and, after the title, to ``report.md``."""
    from nnunetv2_smaformer.comparison.report import REPORT_JSON, REPORT_MD

    (out / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = (out / REPORT_MD).read_text(encoding="utf-8")
    title, rest = markdown.split("\n\n", 1)
    section = "\n".join(render_setup_section(report["setup"]))
    (out / REPORT_MD).write_text(f"{title}\n\n{section}\n{rest}", encoding="utf-8")


def render_setup_section(setup: dict[str, object]) -> list[str]:
    """Markdown lines for a report's ``setup``: the data, each method's budget and settings, stage times."""
    from nnunetv2_smaformer.markdown import table

    lines = ["## Set-up", "", str(setup["data"]), "", f"Budget, the same for every method: {setup['budget']}.", ""]
    lines += [f"- `{trainer}`: {settings}" for trainer, settings in setup["settings"].items()]
    if setup.get("settings_chosen_by"):
        lines += ["", str(setup["settings_chosen_by"])]
    stages = setup.get("stage_seconds") or {}
    if stages:
        lines += ["", *table(["stage", "seconds"], [[name, f"{seconds:.0f}"] for name, seconds in stages.items()]
                             + [["**total**", f"**{sum(stages.values()):.0f}**"]], [":---", "---:"])]
    return lines + [""]
