"""``benchmark_scale.md``, the Synapse-scale benchmark's page: pure formatting of its report dict (nothing is measured
here)."""
from __future__ import annotations

from nnunetv2_smaformer.markdown import fmt, table


def scale_report(report: dict) -> str:
    """``benchmark_scale.md``: geometry, one table for training and one for prediction, the ratios."""
    geometry, env = report["geometry"], report["environment"]
    size = geometry["slice_size"]
    lines = [
        "# Synapse-scale benchmark",
        "",
        f"Phantom: {size[0]}x{size[1]} slices, {geometry['spacing_mm_xyz'][0]} mm in-plane, "
        f"{geometry['spacing_mm_xyz'][2]} mm slices, {geometry['slices_per_case']} slices a case, "
        f"{geometry['train_cases']} training case(s), {geometry['test_volumes_predicted']} test volume(s)"
        + ("" if geometry["synapse_scale"] else " (SMALLER than Synapse: a code-path check, not a benchmark)") + ".",
        f"Machine: {env['device']}, torch {env['torch']}, {env['threads']} threads. Every method measured in this "
        "run; figures from a shared machine are noisy.",
        "",
    ]
    lines += table(
        ["method", "configuration", "spacing (mm)", "planned batch x patch", "loader samples/s per worker",
         "train batch", "train it/s", "train samples/s", "train Mpx/s", "workers to keep up", "train peak MiB"],
        [[name, m["configuration"], " x ".join(f"{v:.3g}" for v in m["spacing"]),
          f"{m['batch_size']} x {'x'.join(map(str, m['patch_size']))}",
          fmt(m["loader_samples_per_s_per_worker"], ".2f"), str(m["train_batch_size"]),
          fmt(m["train_iterations_per_s"], ".3f"), fmt(m["train_samples_per_s"], ".2f"),
          fmt(m["train_megapixels_per_s"], ".3f"), fmt(m["loader_workers_to_keep_up"], ".3f"),
          fmt(m["train_peak_memory_mib"], ".0f")] for name, m in report["methods"].items()],
        ["---"] * 11)
    lines += ["", "`nnUNetv2_predict`, seconds per volume (process start, model loading and export included):", ""]
    lines += table(
        ["method", "variant", "patch", "tiles/slice", "forward passes/slice", "s/volume", "peak RSS MiB"],
        [[name, variant, "x".join(map(str, p["patch_size"])), str(p["tiles_per_slice"]),
          str(p["forward_passes_per_slice"]), fmt(p["seconds_per_volume"], ".1f"), fmt(p["peak_rss_mib"], ".0f")]
         for name, m in report["methods"].items() for variant, p in m["predict"].items()],
        ["---"] * 7)
    lines += ["", *(f"Seconds per volume, {name} {variant}: {p['seconds_per_volume_source']}."
                    for name, m in report["methods"].items() for variant, p in m["predict"].items())]
    reference = report["reference"]
    for name, ratios in report["over_reference"].items():
        lines += ["", f"{name} / {reference}:", ""]
        lines += [f"- {key}: {fmt(value, '.2f')}x" for key, value in ratios.items()]
    for name, ratios in report["over_reference"].items():
        configuration = report["methods"][name]["configuration"]
        share = ratios["predict_seconds_per_volume"]
        other_configuration = configuration != report["methods"][reference]["configuration"]
        if report["methods"][name]["network"] == "SMAFormerV2" and other_configuration:
            goal = report["whole_slice_predict_goal"]
            lines += ["", f"SMAFormerV2 on `{configuration}` predicts a volume in {share:.2f}x the time of {reference} "
                      f"with nnU-Net's defaults (goal: at most {goal:g}x): "
                      + ("met." if share <= goal else "NOT met.")]
        elif share >= 2:
            lines += ["", f"{name} predicts a volume {share:.1f}x slower than {reference} with nnU-Net's defaults; "
                      "the variants above show what `--disable_tta`, `-step_size` and a whole-slice patch recover."]
    benchmarks = [m["nnunet_benchmark_5epochs"] for m in report["methods"].values() if "nnunet_benchmark_5epochs" in m]
    if benchmarks:
        lines += ["", "nnU-Net's `_Benchmark_5epochs` trainers (`nnUNetv2_train`, all augmentation workers):", ""]
    for bench in benchmarks:
        lines.append(f"- {bench['trainer']}: fastest epoch {bench['fastest_epoch_s']} s, 250 training "
                     f"iterations with data loading and 50 validation iterations "
                     f"({fmt(bench.get('epoch_train_iterations_per_s'), '.2f')} training it/s)")
    return "\n".join(lines) + "\n"
