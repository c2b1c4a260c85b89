"""The real-data study: SMAFormerV2, its ``_noSMA`` ablation, stock nnU-Net ``2d`` and a ResEnc preset's ``2d`` on ACDC
(cardiac cine MRI, manual labels: RV, myocardium, LV), one budget for all, evaluated on the 40 test volumes.

    python benchmarks/acdc_study.py ACDC_SSL4MIS_FOLDER --out DIR [--epochs 15] [--iterations 50] [--batch 2]
                                    [--resenc-plans nnUNetResEncUNetMPlans] [--device cpu]

Data: the SSL4MIS layout (``smaformer convert-acdc``): 160 training volumes of 80 patients (fold 0 of the
patient-grouped 5-fold split: 128 train, 32 validation), 40 test volumes of 20 patients, an assumed spacing of
10 x 1.5 x 1.5 mm (the layout stores none; HD95 is in mm on it). Planned with ``nnUNetv2_plan_and_preprocess -c 2d``
and ``nnUNetv2_plan_experiment -pl`` for the ResEnc preset (its ``2d`` shares nnUNetPlans' preprocessed data).

Budget, the same for every method: ``--epochs`` x ``--iterations`` training steps of ``--batch`` samples (equal
samples seen, not equal minutes), no mirroring, no ImageNet weights (they cannot be downloaded on the machines this
project runs on, so SMAFormerV2 starts from random weights like the others), fold 0, the final checkpoint.

Learning rates follow one stated rule: each family trains with the optimiser and peak learning rate that the demo's
search chose for it on its short CPU budget (``benchmarks/demo_search.py``, the same AdamW grid for both families;
``nnunetv2_smaformer/demo/trainers.py``): SMAFormerV2 and its ablation AdamW at 1e-3 after one warm-up epoch, then
cosine decay, no stochastic depth; stock nnU-Net and the ResEnc preset nnU-Net's AdamW variant at 3e-3 with poly
decay. No method had its learning rate tuned on ACDC. Each method runs the demo's trainer through a generated thin
subclass that sets the budget (and SMAFormerV2's 256x256 patch).

Every method trains through ``nnUNetv2_train``, predicts ``imagesTs`` with ``nnUNetv2_predict`` (no test-time
mirroring, as trained) and is evaluated per structure (DSC, HD95 in mm); ``smaformer compare``'s code puts the
methods side by side with paired statistics (per-case DSC differences, bootstrap intervals, Wilcoxon p) against stock
nnU-Net, and each model's compute (parameters, GMACs per patch, epoch time, prediction time per case).

Writes ``OUT/study.md`` (the results page: settings, then the comparison report) and ``OUT/compare/``. Finished
trainings and predictions in ``OUT`` are reused, so an interrupted study resumes where it stopped. With a GPU, the
same script at a full budget (e.g. ``--epochs 1000 --iterations 250 --batch`` as planned) is what to run.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from nnunetv2_smaformer.comparison.compare import CompareConfig, compare
from nnunetv2_smaformer.demo.trainers import nnUNetTrainerAdam_demoCPU, nnUNetTrainerSMAFormerV2_demoCPU
from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.model_folder import DEFAULT_CHECKPOINT, TIMING_FILE
from nnunetv2_smaformer.nnunet_commands import plan_and_preprocess, predict_command, train_command
from nnunetv2_smaformer.nnunet_env import (
    folder_environment,
    nnunet_variables,
    temporary_environ,
    with_cpu_worker_defaults,
)
from nnunetv2_smaformer.processes import console_command, run_logged

logger = logging.getLogger("acdc_study")

DATASET_ID = 27
DATASET = "Dataset027_ACDC"


@dataclass(frozen=True)
class Method:
    """A demo trainer (the family's optimiser and learning rate) on a plans file, with network changes."""

    key: str
    base_trainer: type
    plans: str
    network_kwargs: dict | None = None
    patch: tuple[int, int] | None = None


def methods(resenc_plans: str) -> list[Method]:
    """Stock nnU-Net first: the reference of the paired statistics."""
    return [
        Method("nnunet_2d", nnUNetTrainerAdam_demoCPU, "nnUNetPlans"),
        Method("resenc_2d", nnUNetTrainerAdam_demoCPU, resenc_plans),
        Method("smaformer_v2", nnUNetTrainerSMAFormerV2_demoCPU, "nnUNetPlans", {"drop_path_rate": 0.0}, (256, 256)),
        Method("smaformer_v2_noSMA", nnUNetTrainerSMAFormerV2_demoCPU, "nnUNetPlans",
               {"drop_path_rate": 0.0, "encoder_sma": False, "decoder_sma": False}, (256, 256)),
    ]


def trainer_name(method: Method, epochs: int, iterations: int, batch: int) -> str:
    return f"{method.base_trainer.__name__}_acdc_{method.key}_e{epochs}x{iterations}b{batch}"


def write_trainer(folder: Path, method: Method, epochs: int, iterations: int, batch: int) -> str:
    """A generated module holding one thin subclass of the family's demo trainer with the study's budget."""
    name = trainer_name(method, epochs, iterations, batch)
    base = method.base_trainer.__name__
    body = [f"epochs = {epochs}", f"iterations_per_epoch = {iterations}", f"max_batch_size = {batch}"]
    if method.patch is not None:
        body.append(f"training_patch_size = {tuple(method.patch)!r}")
    if method.network_kwargs is not None:
        body.append(f"network_kwargs = {method.network_kwargs!r}")
    if issubclass(method.base_trainer, nnUNetTrainerSMAFormerV2_demoCPU):
        body.append(f"warmup_fraction = 1 / {epochs}  # one warm-up epoch, as in the demo")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text("\n".join([
        '"""Generated by benchmarks/acdc_study.py: a demo trainer on the ACDC study\'s budget."""',
        f"from {method.base_trainer.__module__} import {base}", "", "",
        f"class {name}({base}):", *(f"    {line}" for line in body)]) + "\n")
    return name


def prepare(src: Path, out: Path, env: dict[str, str], resenc_plans: str) -> Path:
    """ACDC converted, planned and preprocessed for 2d, and planned with the ResEnc preset; done once per ``out``."""
    raw = Path(env["nnUNet_raw"]) / DATASET
    marker = out / "prepared.json"
    if marker.is_file() and json.loads(marker.read_text()).get("resenc_plans") == resenc_plans:
        return raw
    logs = out / "logs"
    if not (raw / "dataset.json").is_file():
        run_logged(console_command(["smaformer", "convert-acdc", src, "-d", DATASET_ID, "-np", 2, "--no-progress"]),
                   env, logs / "convert_acdc.log", label="convert-acdc")
    if not (Path(env["nnUNet_preprocessed"]) / DATASET / "nnUNetPlans.json").is_file():
        plan_and_preprocess(env, DATASET_ID, logs / "plan_and_preprocess.log")
    planner = resenc_plans.replace("nnUNetResEncUNet", "nnUNetPlannerResEnc").removesuffix("Plans")
    run_logged(console_command(["nnUNetv2_plan_experiment", "-d", DATASET_ID, "-pl", planner]), env,
               logs / f"plan_{planner}.log", label=planner)
    marker.write_text(json.dumps({"resenc_plans": resenc_plans}))
    return raw


def train_and_predict(out: Path, env: dict[str, str], raw: Path, method: Method, trainer: str,
                      device: str) -> tuple[Path, Path]:
    """The model folder and its test predictions; each step skipped when its result is already in ``out``."""
    model = Path(env["nnUNet_results"]) / DATASET / f"{trainer}__{method.plans}__2d"
    if not (model / "fold_0" / DEFAULT_CHECKPOINT).is_file():
        run_logged(console_command(train_command(DATASET_ID, "2d", trainer, device=device, extra=["-p", method.plans])),
                   env, out / "logs" / f"train_{method.key}.log", label=method.key, show=("Epoch time", "train_loss"))
    predictions = out / "predictions" / method.key
    if not (predictions / TIMING_FILE).is_file():
        cases = len(list((raw / "imagesTs").glob("*_0000.nii.gz")))
        started = time.perf_counter()
        command = predict_command(raw / "imagesTs", predictions, dataset_id=DATASET_ID, configuration="2d",
                                  trainer=trainer, device=device, extra=["-p", method.plans, "--disable_tta"])
        run_logged(console_command(command), env, out / "logs" / f"predict_{method.key}.log",
                   label=f"predict {method.key}")
        (predictions / TIMING_FILE).write_text(json.dumps({
            "seconds_per_case": (time.perf_counter() - started) / cases,
            "includes": "the whole nnUNetv2_predict run (start-up, preprocessing, sliding window, export) divided by "
                        "the number of test volumes, same flags for every method"}))
    return model, predictions


def study_page(report_md: str, settings: dict) -> str:
    env = settings["environment"]
    lines = [
        f"# ACDC study: SMAFormerV2, its _noSMA ablation, nnU-Net 2d and {settings['resenc_plans']} 2d "
        f"({date.today().isoformat()})", "",
        f"Command: `python benchmarks/acdc_study.py {settings['argv']}`", "",
        f"Machine: {env['device']}, {env['threads']} threads, {env['processor']}, torch {env['torch']}, nnU-Net "
        f"{env['nnunetv2']}.", "",
        "Data: ACDC in the SSL4MIS layout, converted by `smaformer convert-acdc` (assumed spacing 10 x 1.5 x 1.5 mm; "
        "HD95 in mm on it). Trained on fold 0 of the patient-grouped 5-fold split of the 80 training patients, "
        "evaluated on the 40 test volumes of 20 patients.", "",
        f"Budget for every method: {settings['epochs']} epochs x {settings['iterations']} iterations x batch "
        f"{settings['batch']} = {settings['epochs'] * settings['iterations'] * settings['batch']} training samples, "
        "no mirroring, no ImageNet weights (none can be downloaded here, so SMAFormerV2 starts from random weights). "
        "Learning rates by one rule: each family's optimiser and peak lr from the demo's search, none tuned on ACDC "
        "(SMAFormerV2 and _noSMA: AdamW 1e-3, one warm-up epoch, cosine; nnU-Net and ResEnc: nnU-Net's AdamW variant "
        "3e-3, poly).", "",
        "What this budget cannot say: which network is better when trained to convergence (nnU-Net trains 1000 "
        "epochs x 250 iterations); a short budget favours whichever network learns fastest from scratch. One run "
        "per method: run-to-run spread is not measured, and the paired intervals are over test volumes only.", "",
        "---", "", report_md]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="ACDC in the SSL4MIS layout (data/, data/slices/, *.list)")
    parser.add_argument("--out", type=Path, default=Path("acdc_study"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--batch", type=int, default=2, help="batch size of every method")
    parser.add_argument("--resenc-plans", default="nnUNetResEncUNetMPlans",
                        choices=("nnUNetResEncUNetMPlans", "nnUNetResEncUNetLPlans", "nnUNetResEncUNetXLPlans"),
                        help="the ResEnc preset (default: M, the one that matches SMAFormerV2; docs/network.md)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.epochs < 2 or args.iterations < 1 or args.batch < 2:
        parser.error("need --epochs >= 2 (one is the warm-up), --iterations >= 1, --batch >= 2")

    out = args.out.resolve()
    env = with_cpu_worker_defaults(folder_environment(out / "nnunet", trainer_dirs=[out / "trainers"]))
    raw = prepare(args.source.resolve(), out, env, args.resenc_plans)
    compared = []
    for method in methods(args.resenc_plans):
        trainer = write_trainer(out / "trainers", method, args.epochs, args.iterations, args.batch)
        compared.append(train_and_predict(out, env, raw, method, trainer, args.device))
        logger.info("%s done", method.key)
    with temporary_environ(nnunet_variables(env)):
        report = compare(CompareConfig(methods=compared, gt_dir=raw / "labelsTs", out_dir=out / "compare",
                                       dataset_json=raw / "dataset.json", hd95_unit="mm", network_benchmark=False,
                                       device=args.device))
    settings = {"epochs": args.epochs, "iterations": args.iterations, "batch": args.batch,
                "resenc_plans": args.resenc_plans, "argv": " ".join(sys.argv[1:]),
                "environment": report["environment"]}
    page = study_page((out / "compare" / "report.md").read_text(), settings)
    (out / "study.md").write_text(page)
    print(page)


if __name__ == "__main__":
    try:
        main()
    except SMAFormerError as err:
        raise SystemExit(str(err)) from None
