"""Two CPU trainings side by side, with OpenMP's default waiting and with ``OMP_WAIT_POLICY=PASSIVE``, against one
alone: the question behind ``make test``'s two workers on a small machine.

nnU-Net gives a CPU training as many torch threads as the machine has cores, so two trainings on the same cores
oversubscribe them; GNU OpenMP's idle threads spin for a while before sleeping, which burns the cores the other
process needs. This script builds a small phantom dataset (the demo's generator), plans it with nnU-Net, then times
``nnUNetv2_train`` of the smoke trainer on fold 0 (each run with a results folder of its own):

1. one training alone, OpenMP's default;
2. two at once, OpenMP's default;
3. two at once, ``OMP_WAIT_POLICY=PASSIVE``.

Prints and writes ``OUT/parallel_trainings.md``: wall seconds of each set-up, and per set-up the seconds per
training (the set-up's wall time over its trainings). The runs inherit this process's environment except
``OMP_WAIT_POLICY``, which each set-up sets (or removes) itself.

    python benchmarks/parallel_trainings.py --out parallel [--size 64] [--slices 8]
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

TRAINER = "nnUNetTrainerSMAFormerV2_smoke"
DATASET_ID = 998
#: (name, OMP_WAIT_POLICY or None for OpenMP's default, trainings at once)
SETUPS = (("one alone, OpenMP default", None, 1),
          ("two at once, OpenMP default", None, 2),
          ("two at once, OMP_WAIT_POLICY=PASSIVE", "PASSIVE", 2))


def _train_together(env: dict[str, str], count: int, out: Path, name: str) -> float:
    """Wall seconds until ``count`` trainings have finished, their ``nnUNetv2_train`` runs started together."""
    from nnunetv2_smaformer.nnunet_commands import train_command
    from nnunetv2_smaformer.processes import LoggedRun, console_command, run_logged_together

    runs = {f"{name} #{run}": LoggedRun(console_command(train_command(DATASET_ID, "2d", TRAINER)),
                                        {**env, "nnUNet_results": str(out / "results" / f"{name}_{run}")},
                                        out / "logs" / f"{name}_{run}.log")
            for run in range(count)}
    start = time.perf_counter()
    run_logged_together(runs)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (nnU-Net folders, logs, the table)")
    parser.add_argument("--size", type=int, default=64, help="phantom slice size (default 64)")
    parser.add_argument("--slices", type=int, default=8, help="phantom slices per case (default 8)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from nnunetv2_smaformer.conversion.phantom_dataset import write_phantom_dataset
    from nnunetv2_smaformer.nnunet_commands import plan_and_preprocess
    from nnunetv2_smaformer.nnunet_env import folder_environment
    from nnunetv2_smaformer.synapse import TEST_CASES, TRAIN_CASES

    out = args.out.resolve()
    env = folder_environment(out / "nnunet")
    env["nnUNet_n_proc_DA"] = "1"
    env["nnUNet_def_n_proc"] = "1"
    write_phantom_dataset(env, DATASET_ID, out, size=args.size, slices=args.slices, seed=0,
                          cases=TRAIN_CASES[:4] + TEST_CASES[:1])  # fold 0 of the converter's split: 4 train, 1 val
    plan_and_preprocess(env, DATASET_ID, out / "logs" / "plan_and_preprocess.log", num_processes=1)

    rows = []
    for name, policy, count in SETUPS:
        run_env = {k: v for k, v in env.items() if k != "OMP_WAIT_POLICY"}
        if policy:
            run_env["OMP_WAIT_POLICY"] = policy
        seconds = _train_together(run_env, count, out, name.replace(" ", "_").replace(",", ""))
        rows.append(f"| {name} | {count} | {seconds:.1f} | {seconds / count:.1f} |")

    table = "\n".join([f"`nnUNetv2_train` of `{TRAINER}` on a {args.size}x{args.size}x{args.slices} phantom, "
                       f"{os.cpu_count()} CPUs:", "",
                       "| set-up | trainings | wall (s) | s per training |", "|---|---:|---:|---:|", *rows, ""])
    (out / "parallel_trainings.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
