"""How close SMAFormerV2's activations come to fp16's range during training: the largest magnitudes per stage.

fp16 overflows above 65504; Swin transformers are known to overflow under fp16 autocast when activations grow during
training. This probe builds the demo's phantom dataset (``smaformer demo``'s generator, size, slices and seed),
plans it with nnU-Net, and trains the demo's SMAFormerV2 trainer (``nnUNetTrainerSMAFormerV2_demoCPU``: its budget,
AdamW schedule and augmentation) in this process in fp32, so that the recorded values are the true ones, for
``--steps`` steps. Forward hooks on every module record the largest absolute value of its output; the values are
grouped by stage (input projection, patch embedding, each Swin stage, each SMA module, each decoder stage, the final
upsampling, the head's logits, the deep-supervision heads). Prints and writes ``OUT/overflow_probe.{json,md}``: per
stage the largest magnitude over all steps, the step it occurred at, the largest over the last tenth of the steps,
and the headroom 65504 / largest.

    python benchmarks/overflow_probe.py --out probe [--steps 300]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path

FP16_MAX = 65504.0
_INDEXED = ("encoder.swin.layers", "encoder.sma", "decoder.stages", "decoder.ds_heads")


def stage_of(name: str) -> str:
    """The stage a module belongs to: ``encoder.swin.layers.2``, ``encoder.sma.1``, ``decoder.head``, ..."""
    for prefix in _INDEXED:
        if name.startswith(prefix + "."):
            index = name[len(prefix) + 1:].split(".")[0]
            return f"{prefix}.{index}"
    return ".".join(name.split(".")[:2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("overflow_probe"))
    parser.add_argument("--steps", type=int, default=300, help="training steps (the demo trains 480)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunetv2_smaformer.conversion.phantom_dataset import write_phantom_dataset
    from nnunetv2_smaformer.demo.run import DemoConfig
    from nnunetv2_smaformer.demo.trainers import nnUNetTrainerSMAFormerV2_demoCPU
    from nnunetv2_smaformer.nnunet_commands import plan_and_preprocess
    from nnunetv2_smaformer.nnunet_env import folder_environment, nnunet_variables, temporary_environ
    from nnunetv2_smaformer.training.trainer import unwrap_network

    out = args.out.resolve()
    env = folder_environment(out / "nnunet")
    config = DemoConfig(out=out)
    marker = out / "dataset_name"
    if not marker.is_file():
        dataset, _ = write_phantom_dataset(env, 999, out, size=config.size, slices=config.slices, seed=config.seed,
                                           overwrite=True)
        plan_and_preprocess(env, 999, out / "logs" / "plan_and_preprocess.log")
        marker.write_text(dataset)
    dataset = marker.read_text()

    with temporary_environ(nnunet_variables(env, trainers=False)):
        os.environ["nnUNet_n_proc_DA"] = "0"  # the loader in this process
        torch.manual_seed(0)
        trainer = get_trainer_from_args(dataset, "2d", 0, nnUNetTrainerSMAFormerV2_demoCPU.__name__,
                                        device=torch.device("cpu"))
        trainer.initialize()
        loader, _ = trainer.get_dataloaders()
        network = unwrap_network(trainer.network)
        largest: dict[str, list[float]] = {}
        current: dict[str, float] = {}

        def hook(name: str):
            stage = stage_of(name)

            def record(module, inputs, output) -> None:
                tensors = output if isinstance(output, (list, tuple)) else [output]
                value = max(float(t.detach().abs().max()) for t in tensors if torch.is_tensor(t) and t.numel())
                current[stage] = max(current.get(stage, 0.0), value)
            return record

        for name, module in network.named_modules():
            if name:
                module.register_forward_hook(hook(name))
        losses: list[float] = []
        started = time.perf_counter()
        per_epoch = trainer.num_iterations_per_epoch
        for step in range(args.steps):
            if step % per_epoch == 0:
                trainer.current_epoch = step // per_epoch
                trainer.on_train_epoch_start()
            current.clear()
            losses.append(float(trainer.train_step(next(loader))["loss"]))
            for stage, value in current.items():
                largest.setdefault(stage, []).append(value)
        seconds = time.perf_counter() - started

    tail = max(1, args.steps // 10)
    rows = []
    for stage, values in largest.items():
        peak = max(values)
        rows.append({"stage": stage, "largest": peak, "at_step": values.index(peak) + 1,
                     "largest_last_tenth": max(values[-tail:]), "fp16_headroom": FP16_MAX / peak if peak else math.inf})
    report = {"steps": args.steps, "trainer": type(trainer).__name__, "precision": "fp32 (true magnitudes)",
              "seconds": seconds, "loss_first": losses[0], "loss_last": losses[-1],
              "nonfinite_steps": trainer.nonfinite_guard.total_skipped, "fp16_max": FP16_MAX, "stages": rows}
    lines = ["# Activation magnitudes during training, against fp16's range", "",
             f"`python benchmarks/overflow_probe.py --steps {args.steps}`: {report['trainer']} on the demo phantom, "
             f"{args.steps} training steps in fp32 ({seconds:.0f} s); loss {losses[0]:.3f} -> {losses[-1]:.3f}; "
             f"non-finite steps: {report['nonfinite_steps']}. Largest |output| of any module of the stage.", "",
             "| stage | largest | at step | largest, last tenth of the steps | fp16 headroom (65504 / largest) |",
             "|:---|---:|---:|---:|---:|"]
    lines += [f"| {r['stage']} | {r['largest']:.4g} | {r['at_step']} | {r['largest_last_tenth']:.4g} | "
              f"{r['fp16_headroom']:.3g}x |" for r in rows]
    worst = min(rows, key=lambda r: r["fp16_headroom"])
    lines += ["", f"Smallest headroom: {worst['stage']}, {worst['fp16_headroom']:.3g}x."]
    out.mkdir(parents=True, exist_ok=True)
    (out / "overflow_probe.json").write_text(json.dumps(report, indent=1))
    (out / "overflow_probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
