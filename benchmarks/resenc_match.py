"""Which of nnU-Net's Residual Encoder presets matches SMAFormerV2's compute and memory in 2D, measured on a dataset's
plans: ``python benchmarks/resenc_match.py PREPROCESSED_DATASET_FOLDER [--batches 2 6] [--device cpu] [--out FILE]``.

nnU-Net advises comparing a new network against "the ResEnc variant that most closely matches the GPU memory and
compute requirements" of the method. The folder must hold the plans of stock nnU-Net and of the three presets
(``nnUNetv2_plan_experiment -d ID -pl nnUNetPlannerResEncM``, then ``...L``, ``...XL``). For each plans file's ``2d``
and for SMAFormerV2 (``nnUNetTrainerSMAFormerV2`` at its 256x256 patch and batch of 28):

* parameters, and GMACs of one image at 256x256 and at the planned patch (``torch.utils.flop_counter``);
* the planned batch and patch, and the forward GMACs of one training step (batch x GMACs at the patch);
* the peak memory of a training step (forward with deep supervision, nnU-Net's Dice+CE, backward, AdamW) measured at
  two batch sizes at 256x256, each network in a fresh process (:func:`~nnunetv2_smaformer.speed.side_by_side.
  network_side_by_side`, SMAFormerV2 and the plans' network back to back); the difference per image, and the step
  memory at the planned batch extrapolated linearly from the two measured points (labelled as such).

Networks with the same architecture entry are measured once. On a CPU, memory is the peak resident set size of the
measuring process, which is not a GPU's allocation but grows with the same activations.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from pathlib import Path

from nnunetv2_smaformer.errors import SMAFormerError
from nnunetv2_smaformer.forward_cost import count_gmacs
from nnunetv2_smaformer.machine import machine_info
from nnunetv2_smaformer.markdown import table
from nnunetv2_smaformer.nnunet_bridge import build_plans_network, input_output_channels, patch_size
from nnunetv2_smaformer.speed.side_by_side import NNUNET_KEY, SMAFORMER_KEY, network_side_by_side
from nnunetv2_smaformer.training.trainer import PATCH_SIZE, nnUNetTrainerSMAFormerV2

logger = logging.getLogger("resenc_match")

PLANS = ("nnUNetPlans", "nnUNetResEncUNetMPlans", "nnUNetResEncUNetLPlans", "nnUNetResEncUNetXLPlans")
PLANNER = {"nnUNetPlans": "ExperimentPlanner", "nnUNetResEncUNetMPlans": "nnUNetPlannerResEncM",
           "nnUNetResEncUNetLPlans": "nnUNetPlannerResEncL", "nnUNetResEncUNetXLPlans": "nnUNetPlannerResEncXL"}
SIDE = PATCH_SIZE[0]


def _memory_line(records: dict[int, dict]) -> tuple[float, float]:
    """``(MiB at the first batch, MiB per extra image)`` from peak memories measured at two batch sizes."""
    (b1, r1), (b2, r2) = sorted(records.items())
    return r1["peak_memory_mib"], (r2["peak_memory_mib"] - r1["peak_memory_mib"]) / (b2 - b1)


def measure(folder: Path, batches: list[int], device: str) -> dict:
    dataset_json_path = folder / "dataset.json"
    dataset_json = json.loads(dataset_json_path.read_text())
    missing = [name for name in PLANS if not (folder / f"{name}.json").is_file()]
    if missing or not dataset_json_path.is_file():
        raise SMAFormerError(f"{folder} lacks {', '.join(f'{m}.json' for m in missing) or 'dataset.json'}: plan the "
                             "dataset with " + ", ".join(f"nnUNetv2_plan_experiment -d ID -pl {PLANNER[m]}"
                                                         for m in missing))
    rows: dict[str, dict] = {}
    measured: dict[str, dict[int, dict]] = {}  # architecture entry -> batch -> record of the plans network
    smaformer: dict[int, dict] = {}
    for name in PLANS:
        plans = json.loads((folder / f"{name}.json").read_text())
        configuration = plans["configurations"]["2d"]
        key = json.dumps(configuration["architecture"], sort_keys=True)
        if key not in measured:
            measured[key] = {}
            for batch in batches:
                result = network_side_by_side("nnUNetTrainerSMAFormerV2", folder / f"{name}.json", dataset_json_path,
                                              batch_size=batch, img_size=SIDE, steps=2, warmup=1, device=device)
                measured[key][batch] = result["networks"][NNUNET_KEY]
                smaformer.setdefault(batch, result["networks"][SMAFORMER_KEY])
                logger.info("%s batch %d: peak %.0f MiB (SMAFormerV2 %.0f MiB)", name, batch,
                            measured[key][batch]["peak_memory_mib"], smaformer[batch]["peak_memory_mib"])
        n_in, _ = input_output_channels(plans, "2d", dataset_json)
        patch = patch_size(plans, "2d")
        network = build_plans_network(plans, "2d", dataset_json, deep_supervision=False).eval()
        at_first, per_image = _memory_line(measured[key])
        rows[name] = {
            "planner": PLANNER[name],
            "architecture": configuration["architecture"]["network_class_name"].rsplit(".", 1)[-1],
            "blocks_per_stage": configuration["architecture"]["arch_kwargs"].get("n_blocks_per_stage")
            or configuration["architecture"]["arch_kwargs"].get("n_conv_per_stage"),
            "patch": patch, "batch": int(configuration["batch_size"]),
            "parameters": int(sum(p.numel() for p in network.parameters())),
            "gmacs_256": measured[key][batches[0]]["gmacs_per_image"],
            "gmacs_patch": count_gmacs(network, (1, n_in, *patch)),
            "memory_mib": {str(b): r["peak_memory_mib"] for b, r in measured[key].items()},
            "mib_per_image": per_image, "memory_at_first_batch": at_first,
        }
    at_first, per_image = _memory_line(smaformer)
    first = smaformer[batches[0]]
    ours_batch = nnUNetTrainerSMAFormerV2.max_batch_size
    rows["SMAFormerV2"] = {
        "planner": "nnUNetTrainerSMAFormerV2", "architecture": first["architecture"], "blocks_per_stage": None,
        "patch": list(PATCH_SIZE), "batch": ours_batch, "parameters": first["parameters"],
        "gmacs_256": first["gmacs_per_image"], "gmacs_patch": first["gmacs_per_image"],
        "memory_mib": {str(b): r["peak_memory_mib"] for b, r in smaformer.items()},
        "mib_per_image": per_image, "memory_at_first_batch": at_first,
    }
    for row in rows.values():
        row["step_gmacs"] = row["batch"] * row["gmacs_patch"]
        pixels = row["patch"][0] * row["patch"][1] / SIDE ** 2  # activations grow with the patch's pixels
        row["memory_at_batch_mib"] = row["memory_at_first_batch"] + row["mib_per_image"] * (
            row["batch"] * pixels - batches[0])
    ours = rows["SMAFormerV2"]
    presets = [name for name in PLANS if name != "nnUNetPlans"]
    match = min(presets, key=lambda n: abs(rows[n]["memory_at_batch_mib"] - ours["memory_at_batch_mib"]))
    return {"folder": str(folder), "batches": batches, "device": device, "rows": rows, "match": match,
            "environment": machine_info(device)}


def markdown(result: dict, argv: str) -> str:
    rows, batches = result["rows"], result["batches"]
    ours = rows["SMAFormerV2"]
    env = result["environment"]
    b1, b2 = batches
    lines = ["# SMAFormerV2 against nnU-Net's ResEnc presets in 2D: compute and memory", "",
             f"Command: `python benchmarks/resenc_match.py {argv}`", "",
             f"Date {date.today().isoformat()}; {env['device']}, {env['threads']} threads, torch {env['torch']}, "
             f"nnU-Net {env['nnunetv2']}. Plans of `{result['folder']}`.", "",
             f"Memory: peak of one training step at {SIDE}x{SIDE} (forward with deep supervision, Dice+CE, backward, "
             f"AdamW), each network in a fresh process, measured at batch {b1} and {b2}; on a CPU the peak resident "
             "set size. \"Per image\" is the difference between the two over the images added; the memory at the "
             "planned batch is extrapolated linearly from the two measured points (scaled by the patch's pixels), "
             "not measured.", ""]
    names = list(rows)
    lines += table(
        ["", "planner / trainer", "network", "parameters (M)", f"GMACs {SIDE}x{SIDE}", "patch", "batch",
         "GMACs per step (fwd)", f"peak MiB b{b1} / b{b2} (measured)", "MiB per image", "MiB at batch (extrap.)"],
        [[f"`{n}`", f"`{r['planner']}`", r["architecture"], f"{r['parameters'] / 1e6:.2f}", f"{r['gmacs_256']:.2f}",
          "x".join(map(str, r["patch"])), str(r["batch"]), f"{r['step_gmacs']:.0f}",
          f"{r['memory_mib'][str(b1)]:.0f} / {r['memory_mib'][str(b2)]:.0f}", f"{r['mib_per_image']:.0f}",
          f"{r['memory_at_batch_mib']:.0f}"] for n, r in ((n, rows[n]) for n in names)],
        [":---", ":---", ":---", *["---:"] * 8])
    match = rows[result["match"]]
    lines += ["", f"Closest in training-step memory at the planned batch: **`{result['match']}`** "
              f"({match['memory_at_batch_mib']:.0f} MiB extrapolated, against SMAFormerV2's "
              f"{ours['memory_at_batch_mib']:.0f} MiB at batch {ours['batch']}); its step costs "
              f"{match['step_gmacs'] / ours['step_gmacs']:.2f}x SMAFormerV2's forward GMACs."]
    same = [n for n in PLANS[1:] if rows[n]["parameters"] == rows[PLANS[1]]["parameters"]
            and rows[n]["gmacs_256"] == rows[PLANS[1]]["gmacs_256"]]
    if len(same) == 3:
        lines.append("In 2D the three presets plan the same network here; they differ only in the batch size their "
                     "memory target allows, so the match is decided by memory.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="nnU-Net_preprocessed/DatasetXXX_Name with the four plans files")
    parser.add_argument("--batches", type=int, nargs=2, default=[2, 6], metavar=("B1", "B2"),
                        help="the two batch sizes whose peak memories are measured (default: 2 6)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    args = parser.parse_args()
    if not 0 < args.batches[0] < args.batches[1]:
        parser.error("--batches B1 B2 needs 0 < B1 < B2")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = measure(args.folder.resolve(), args.batches, args.device)
    text = markdown(result, " ".join(sys.argv[1:]))
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    try:
        main()
    except SMAFormerError as err:
        raise SystemExit(str(err)) from None
