"""The optimiser and learning-rate search behind the demo's settings: one AdamW grid for both methods.

Builds the demo's phantom dataset once (same generator, size, slices and seed as ``smaformer demo``),
plans and preprocesses it with nnU-Net, then for each method and each multiplier of that method's
default peak learning rate (``smaformer`` and ``stock_adam``: AdamW from 3e-4, the original
SMAFormerV2's; ``stock``: nnU-Net's default SGD from its 1e-2) trains a thin subclass of the demo
trainer (same budget: epochs x iterations x batch) through ``nnUNetv2_train``, predicts the 12 test
cases with ``nnUNetv2_predict`` and evaluates them with the package's Synapse evaluation. For
SMAFormerV2 the subclass also fixes the number of lr warm-up epochs (``--warmup-epochs``; by default
the demo trainer's own). Everything else (patch, augmentation, loss, schedule shape) is the demo
trainer's. ``--runs N`` trains every setting N times. Prints and writes ``OUT/search.json`` and
``OUT/search.md`` (setting -> mean DSC, times; worst, median and best run per setting).

Runs already finished in ``OUT`` are reused, so an interrupted search resumes where it stopped.

    python benchmarks/demo_search.py --out demo_search
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunetv2_smaformer.conversion.phantom_dataset import write_phantom_dataset
from nnunetv2_smaformer.demo import trainers as demo_trainers
from nnunetv2_smaformer.demo.run import CANDIDATE_IDS, DemoConfig, demo_environment
from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.evaluation.evaluate import evaluate_folders
from nnunetv2_smaformer.model_folder import training_seconds
from nnunetv2_smaformer.nnunet_commands import plan_and_preprocess, predict_command, train_command
from nnunetv2_smaformer.nnunet_env import free_dataset_id
from nnunetv2_smaformer.processes import console_command, run_logged
from nnunetv2_smaformer.synapse import dataset_folder_name


@dataclass(frozen=True)
class Method:
    """A shipped demo trainer and the class attribute that holds its peak learning rate."""

    key: str
    base_trainer: str
    lr_attribute: str
    default_lr: float
    #: Multiples of ``default_lr`` searched unless ``--multipliers`` is given.
    grid: tuple[float, ...]
    #: Class attribute holding the fraction of epochs spent in lr warm-up; None: the trainer has none.
    warmup_attribute: str | None = None

    def trainer_class(self) -> type:
        return getattr(demo_trainers, self.base_trainer)

    def default_warmup_epochs(self) -> int:
        """The shipped demo trainer's own warm-up epochs (0 for trainers without warm-up)."""
        if self.warmup_attribute is None:
            return 0
        trainer = self.trainer_class()
        return trainer.warmup_epochs_of(trainer.epochs)


#: AdamW peak learning rates 3e-4 (the original SMAFormerV2's), 1e-3 and 3e-3, for every AdamW method alike.
ADAMW_GRID = (1.0, 3.33, 10.0)

METHODS = {
    "smaformer": Method("smaformer", "nnUNetTrainerSMAFormerV2_demoCPU", "initial_lr_adamw", 3e-4, ADAMW_GRID,
                        "warmup_fraction"),
    "stock": Method("stock", "nnUNetTrainer_demoCPU", "peak_lr", 1e-2, (1.0, 3.0, 10.0, 30.0)),
    # nnU-Net's own AdamW variant, on SMAFormerV2's grid (nnU-Net ships it at 3e-4 and 1e-3).
    "stock_adam": Method("stock_adam", "nnUNetTrainerAdam_demoCPU", "peak_lr", 3e-4, ADAMW_GRID),
}


@dataclass(frozen=True)
class Setting:
    """One searched setting and one training run of it (runs differ only in their random draws)."""

    method: Method
    multiplier: float
    warmup_epochs: int = 0
    run: int = 1

    @property
    def trainer(self) -> str:
        name = f"{self.method.base_trainer}_search_x{self.multiplier:g}".replace(".", "p")
        if self.warmup_epochs:
            name += f"_warmup{self.warmup_epochs}"
        return name + (f"_run{self.run}" if self.run > 1 else "")


@dataclass
class Row:
    method: str
    trainer: str
    multiplier: float
    lr: float
    mean_dice: float
    per_label_dice: dict[str, float]
    train_s: float
    predict_s: float
    warmup_epochs: int = 0
    run: int = 1


def peak_lr(method: Method, multiplier: float) -> float:
    # Rounded to 2 significant digits so that 3e-4 x 10 reads 0.003, not 0.0029999999999999996, and
    # 3e-4 x 3.33 reads 0.001.
    return float(f"{method.default_lr * multiplier:.2g}")


def write_search_trainer(folder: Path, setting: Setting) -> None:
    """A generated module with one thin subclass that changes the peak learning rate (and warm-up) only.

    One module per setting and run, so that searches of other settings running at the same time in the
    same ``OUT`` never rewrite a module that a running ``nnUNetv2_train``/``predict`` imports.
    """
    folder.mkdir(parents=True, exist_ok=True)
    method, name = setting.method, setting.trainer
    lines = ['"""Generated by benchmarks/demo_search.py: a demo trainer with another peak learning rate."""',
             f"from nnunetv2_smaformer.demo.trainers import {method.base_trainer}", "", "",
             f"class {name}({method.base_trainer}):",
             f"    {method.lr_attribute} = {peak_lr(method, setting.multiplier)!r}"]
    if method.warmup_attribute is not None:
        # The trainer rounds fraction x epochs to whole warm-up epochs.
        lines.append(f"    {method.warmup_attribute} = {setting.warmup_epochs} / {method.base_trainer}.epochs")
    (folder / f"{name}.py").write_text("\n".join(lines) + "\n")


def prepare_dataset(out: Path, env: dict[str, str], config: DemoConfig) -> int:
    """The demo's phantom, converted, planned and preprocessed once; its id is kept in ``OUT/dataset_id``."""
    marker = out / "dataset_id"
    if marker.is_file():
        return int(marker.read_text())
    dataset_id = free_dataset_id(env, config.dataset_id, CANDIDATE_IDS)
    write_phantom_dataset(env, dataset_id, out, size=config.size, slices=config.slices, seed=config.seed)
    plan_and_preprocess(env, dataset_id, out / "logs" / "plan_and_preprocess.log")
    marker.write_text(str(dataset_id))
    return dataset_id


def run_setting(out: Path, env: dict[str, str], dataset_id: int, setting: Setting) -> Row:
    method, multiplier, trainer = setting.method, setting.multiplier, setting.trainer
    dataset = dataset_folder_name(dataset_id)
    raw = Path(env["nnUNet_raw"]) / dataset
    done = out / "runs" / f"{trainer}.json"
    if done.is_file():
        return Row(**json.loads(done.read_text()))
    fold = Path(env["nnUNet_results"]) / dataset / f"{trainer}__nnUNetPlans__2d" / "fold_0"
    # A training that finished while its search process was stopped is not repeated.
    if not (fold / "checkpoint_final.pth").is_file():
        run_logged(console_command(train_command(dataset_id, "2d", trainer)), env,
                   out / "logs" / f"train_{trainer}.log")
    train_s = training_seconds(fold)
    predictions = out / "predictions" / trainer
    predict = predict_command(raw / "imagesTs", predictions, dataset_id=dataset_id, configuration="2d", trainer=trainer)
    predict_s = run_logged(console_command(predict), env, out / "logs" / f"predict_{trainer}.log").seconds
    result = evaluate_folders(predictions, raw / "labelsTs", dataset_json=raw / "dataset.json", progress=False)
    row = Row(method=method.key, trainer=trainer, multiplier=multiplier, lr=peak_lr(method, multiplier),
              mean_dice=result.mean[0], per_label_dice={result.name(k): v[0] for k, v in result.per_label.items()},
              train_s=train_s, predict_s=predict_s, warmup_epochs=setting.warmup_epochs, run=setting.run)
    done.parent.mkdir(exist_ok=True)
    done.write_text(json.dumps(asdict(row), indent=1))
    return row


def table(rows: Sequence[Row]) -> str:
    lines = ["| method | lr multiplier | peak lr | warm-up epochs | run | mean DSC (%) | lowest organ DSC (%) "
             "| training (s) | prediction (s) |",
             "|:---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lowest = min(row.per_label_dice.items(), key=lambda item: item[1])
        lines.append(f"| {METHODS[row.method].base_trainer} | x{row.multiplier:g} | {row.lr:.2g} | "
                     f"{row.warmup_epochs} | {row.run} | {100 * row.mean_dice:.1f} | "
                     f"{100 * lowest[1]:.1f} ({lowest[0]}) | {row.train_s:.0f} | {row.predict_s:.0f} |")
    return "\n".join(lines) + "\n"


def summary(rows: Sequence[Row]) -> str:
    """Per setting over its runs: worst, median and best mean DSC (settings are chosen by the worst run)."""
    groups: dict[tuple[str, float, int], list[float]] = {}
    for row in rows:
        groups.setdefault((row.method, row.lr, row.warmup_epochs), []).append(100 * row.mean_dice)
    lines = ["| method | peak lr | warm-up epochs | runs | worst | median | best mean DSC (%) |",
             "|:---|---:|---:|---:|---:|---:|---:|"]
    for (method, lr, warmup), dice in groups.items():
        lines.append(f"| {METHODS[method].base_trainer} | {lr:.2g} | {warmup} | {len(dice)} | {min(dice):.1f} | "
                     f"{statistics.median(dice):.1f} | {max(dice):.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo_search"))
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=list(METHODS))
    parser.add_argument("--multipliers", nargs="+", type=float, default=None,
                        help="multiples of each method's default peak learning rate (default: the method's grid: "
                             "x1, x3.33, x10 for AdamW, x1, x3, x10, x30 for stock nnU-Net's SGD)")
    parser.add_argument("--warmup-epochs", nargs="+", type=int, default=None,
                        help="lr warm-up epochs searched for methods that have a warm-up (SMAFormerV2); "
                             "default: the demo trainer's own")
    parser.add_argument("--runs", type=int, default=1,
                        help="training runs per setting (they differ in initial weights and augmentation draws)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (the demo's default: 0)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = demo_environment(out)
    generated = out / "search_trainers"
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    settings: list[Setting] = []
    for key in args.methods:
        method = METHODS[key]
        warmups = [method.default_warmup_epochs()]
        if method.warmup_attribute is not None and args.warmup_epochs is not None:
            epochs = method.trainer_class().epochs
            if not all(0 <= w < epochs for w in args.warmup_epochs):
                parser.error(f"--warmup-epochs must lie in 0..{epochs - 1} (the demo trains {epochs} epochs), "
                             f"got {args.warmup_epochs}")
            warmups = list(dict.fromkeys(args.warmup_epochs))
        settings += [Setting(method, multiplier, warmup, run)
                     for multiplier in dict.fromkeys(args.multipliers or method.grid)
                     for warmup in warmups
                     for run in range(1, args.runs + 1)]
    for setting in settings:
        write_search_trainer(generated, setting)
    env["nnUNet_extTrainer"] = os.pathsep.join([str(generated), env["nnUNet_extTrainer"]])
    dataset_id = prepare_dataset(out, env, DemoConfig(out=out, seed=args.seed))

    rows: list[Row] = []
    for setting in settings:
        rows.append(run_setting(out, env, dataset_id, setting))
        print(f"{rows[-1].trainer}: mean DSC {100 * rows[-1].mean_dice:.1f} %, "
              f"training {rows[-1].train_s:.0f} s, prediction {rows[-1].predict_s:.0f} s", flush=True)
    (out / "search.json").write_text(json.dumps([asdict(row) for row in rows], indent=1))
    (out / "search.md").write_text(table(rows) + "\n" + summary(rows))
    print(table(rows) + "\n" + summary(rows))


if __name__ == "__main__":
    try:
        main()
    except SMAFormerError as err:
        raise SystemExit(str(err)) from None
