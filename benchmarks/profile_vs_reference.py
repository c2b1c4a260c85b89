"""Where a training step's time goes: ours next to the authors' network, profiled in one process.

Builds SMAFormerV2 trained like the authors' network (3 input channels, loss on the one
full-resolution output) and the authors' network from ``--reference FILE`` (window 8 by default: no
padding), runs warm-up steps, then profiles ``--steps`` training steps of each (forward, loss,
backward, clipping, AdamW; the same random batch, loss, optimiser and threads as
``smaformer benchmark-network``) with ``torch.profiler`` and prints two tables:

- operators by self CPU time per step, both networks side by side (top ``--top``); with ``--shapes``
  each operator once per distinct input shapes (e.g. a slow convolution among many);
- forward time per module down to ``--depth`` levels of the module tree (inclusive, per step).

    python benchmarks/profile_vs_reference.py --reference SMAFormerV2.py [--window 8] [--steps 2] [--depth 2] [--shapes]
"""
from __future__ import annotations

import argparse
import contextlib
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from nnunetv2_smaformer.speed.reference import reference_config_name
from nnunetv2_smaformer.speed.step_timing import SINGLE_OUTPUT_CONFIG, BenchmarkSettings, StepRunner, benchmark_configs

FORWARD_PREFIX = "forward::"
WHOLE_NETWORK = "(whole network)"


def label_forwards(model: nn.Module, depth: int) -> None:
    """Wrap the forward of ``model`` and of every module at most ``depth`` levels below it in a profiler range."""
    for name, module in model.named_modules():
        if name.count(".") >= depth:
            continue
        ranges: list[contextlib.AbstractContextManager] = []

        def enter(_module, _inputs, name=name or WHOLE_NETWORK, ranges=ranges):
            ranges.append(record_function(f"{FORWARD_PREFIX}{name} ({type(_module).__name__})"))
            ranges[-1].__enter__()

        def leave(_module, _inputs, _output, ranges=ranges):
            ranges.pop().__exit__(None, None, None)

        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)


def profile_steps(runner: StepRunner, steps: int, shapes: bool = False) -> dict[str, dict[str, float]]:
    """Milliseconds per step: ``ops`` by self CPU time (keyed by operator, or operator and input shapes)
    and ``forward`` by module (inclusive)."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as prof:
        for _ in range(steps):
            runner.train_step(record=False)
    ops: dict[str, float] = defaultdict(float)
    forward: dict[str, float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=shapes):
        if event.key.startswith(FORWARD_PREFIX):
            forward[event.key[len(FORWARD_PREFIX):]] += event.cpu_time_total / 1000 / steps
        else:
            key = f"{event.key} {[s for s in event.input_shapes if s]}" if shapes else event.key
            ops[key] += event.self_cpu_time_total / 1000 / steps
    return {"ops": dict(ops), "forward": dict(forward)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="the authors' SMAFormerV2.py")
    parser.add_argument("--window", type=int, default=8, help="Swin window of the reference (default: 8)")
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2, help="profiled training steps per network")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--depth", type=int, default=2, help="module-tree depth of the forward table")
    parser.add_argument("--top", type=int, default=25, help="operators shown")
    parser.add_argument("--shapes", action="store_true", help="one row per operator and input shapes")
    args = parser.parse_args()

    settings = BenchmarkSettings(img_size=args.img_size, baseline=False, reference=args.reference,
                                 reference_windows=(args.window,))
    wanted = (SINGLE_OUTPUT_CONFIG, reference_config_name(args.window))
    configs = [c for c in benchmark_configs(settings) if c.name in wanted]
    results = {}
    for config in configs:
        runner = StepRunner(config, settings)
        for _ in range(args.warmup):
            runner.train_step(record=False)
        label_forwards(runner.model, args.depth)
        results[config.name] = profile_steps(runner, args.steps, args.shapes)

    ours, theirs = (results[name] for name in wanted)
    print(f"Operators, self CPU ms per training step ({torch.get_num_threads()} threads, batch "
          f"{settings.batch_size}, {settings.img_size}x{settings.img_size}):")
    width = 100 if args.shapes else 58
    print(f"{'operator':<{width}} {'ours':>9} {'theirs':>9} {'diff':>9}")
    names = sorted(set(ours["ops"]) | set(theirs["ops"]),
                   key=lambda k: -max(ours["ops"].get(k, 0.0), theirs["ops"].get(k, 0.0)))
    for name in names[:args.top]:
        a, b = ours["ops"].get(name, 0.0), theirs["ops"].get(name, 0.0)
        print(f"{name[:width]:<{width}} {a:9.1f} {b:9.1f} {a - b:+9.1f}")
    print(f"{'total':<{width}} {sum(ours['ops'].values()):9.1f} {sum(theirs['ops'].values()):9.1f}")
    for name, result in zip(wanted, (ours, theirs)):
        print(f"\nForward per module, inclusive CPU ms per step: {name}")
        for module, ms in sorted(result["forward"].items(), key=lambda item: -item[1]):
            print(f"  {module[:70]:<70} {ms:9.1f}")


if __name__ == "__main__":
    main()
