"""Rendering a comparison report: ``report.md`` (segmentation, trained models, networks side by side,
environment) and the per-organ DSC chart. Pure formatting of the report dict and evaluation results;
nothing is measured here.
"""
from __future__ import annotations

from pathlib import Path

from nnunetv2_smaformer.evaluation.evaluate import EvaluationResult, organ_table
from nnunetv2_smaformer.markdown import fmt, table
from nnunetv2_smaformer.model_folder import TIMING_FILE

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
DSC_PNG = "dsc_per_organ.png"
EVALUATION_JSON = "synapse_eval.json"


def _benchmark_cell(records: list[dict[str, object]]) -> str:
    if not records:
        return "—"
    best = min(records, key=lambda r: r["fastest_epoch_s"])
    return f"{best['fastest_epoch_s']:.1f} s ({best['gpu_name']}, {best['benchmark_trainer']})"


def _inference_cell(inference: dict[str, object]) -> str:
    seconds = inference.get("seconds_per_case")
    if seconds is None:
        return "not measured"
    if "per_case_s" in inference:
        return f"{seconds:.2f} (nnUNetPredictor, {len(inference['per_case_s'])} case(s), {inference['device']})"
    return f"{seconds:.2f} ({TIMING_FILE})"


def inference_timing_scope(inference: dict[str, object]) -> str:
    """What an inference time per case includes, in words, from how it was obtained."""
    if inference.get("seconds_per_case") is None:
        return "not measured"
    if "per_case_s" in inference:
        return ("nnUNetPredictor in the comparing process: preprocessing, sliding window, resampling; "
                "model loading and process start-up excluded")
    return str(inference.get("includes") or f"as recorded in the prediction folder's {TIMING_FILE}, scope not stated")


def _inference_sentence(models: dict[str, dict[str, object]]) -> str:
    scopes = {key: inference_timing_scope(facts["inference"]) for key, facts in models.items()}
    if len(set(scopes.values())) == 1:
        return f"Inference time per case, for every method: {next(iter(scopes.values()))}."
    return "Inference time per case: " + "; ".join(f"{key}: {scope}" for key, scope in scopes.items()) + "."


def _models_table(models: dict[str, dict[str, object]]) -> list[str]:
    keys = list(models)
    rows_spec = [
        ("network", lambda m: str(m["architecture"])),
        ("plans / configuration", lambda m: f"{m['plans']} / {m['configuration']}"),
        ("patch size", lambda m: "×".join(map(str, m["patch_size"]))),
        ("parameters (M)", lambda m: f"{m['parameters'] / 1e6:.2f}"),
        ("GMACs (one patch)", lambda m: f"{m['gmacs']:.2f}"),
        ("epochs trained", lambda m: str(m["epochs"])),
        ("epoch time, median (s)", lambda m: fmt(m["epoch_time_median_s"], ".1f")),
        ("fastest benchmark epoch", lambda m: _benchmark_cell(m["benchmark_epochs"])),
        ("inference (s / case)", lambda m: _inference_cell(m["inference"])),
    ]
    rows = [[name, *(fn(models[k]) for k in keys)] for name, fn in rows_spec]
    return table(["", *keys], rows, [":---", *[":---"] * len(keys)])


def _network_table(network: dict[str, object]) -> list[str]:
    from nnunetv2_smaformer.speed.side_by_side import NNUNET_KEY, SMAFORMER_KEY

    ours, stock = network["networks"][SMAFORMER_KEY], network["networks"][NNUNET_KEY]
    ratios = network["ratios_smaformer_over_nnunet"]
    settings = network["settings"]
    rows_spec = [
        ("network", lambda n: str(n["architecture"]), None),
        ("parameters (M)", lambda n: f"{n['parameters'] / 1e6:.2f}", "parameters"),
        ("GMACs per image", lambda n: f"{n['gmacs_per_image']:.2f}", "gmacs_per_image"),
        (f"training step, median of {settings['steps']} (s)", lambda n: f"{n['train_step_median_s']:.3f}",
         "train_step_median_s"),
        ("inference (images / s)", lambda n: f"{n['inference_images_per_s']:.2f}", "inference_images_per_s"),
        ("peak memory (MiB)", lambda n: fmt(n.get("peak_memory_mib"), ".0f"), "peak_memory_mib"),
    ]
    if settings["device"].startswith("cpu"):
        # The peak RSS includes the interpreter and its imports: show that share next to it.
        rows_spec.append(("of which process before building (MiB)", lambda n: f"{n['baseline_rss_mib']:.0f}", None))
    rows = [[name, fn(ours), fn(stock), fmt(ratios.get(key), ".2f", "×") if key else ""]
            for name, fn, key in rows_spec]
    return table(["", "SMAFormerV2", "nnU-Net 2d", "SMAFormerV2 / nnU-Net"], rows, [":---", "---:", "---:", "---:"])


def _paired_section(paired: list[dict[str, object]], evaluations: dict[str, EvaluationResult]) -> list[str]:
    """Per method against the reference: per organ and the mean, the paired DSC difference, its bootstrap CI and
    the Wilcoxon p, then in words which differences are not significant."""
    from nnunetv2_smaformer.comparison.paired import BOOTSTRAP_RESAMPLES, SIGNIFICANCE_LEVEL, significant

    if not paired:
        return []
    reference = evaluations[str(paired[0]["reference"])]
    n = int(paired[0]["n"])

    def organ(label: str) -> str:
        return "**mean**" if label == "mean" else reference.name(int(label))

    lines = ["## Paired differences", "",
             f"Per case, method minus `{paired[0]['reference']}` (the first method), in DSC percentage points; a "
             f"case's mean is its mean DSC over the organs. n = {n} cases; 95 % CI: percentile bootstrap of the mean "
             f"difference ({BOOTSTRAP_RESAMPLES} resamples of the cases); p: two-sided Wilcoxon signed-rank test.", ""]
    for method in dict.fromkeys(str(row["method"]) for row in paired):
        rows = [row for row in paired if row["method"] == method]
        lines += [f"`{method}`:", ""]
        lines += table(["organ", "mean difference (pp)", "95 % CI (pp)", "Wilcoxon p", f"p < {SIGNIFICANCE_LEVEL:g}"],
                       [[organ(str(r["label"])), f"{100 * float(r['mean_difference']):+.2f}",
                         f"[{100 * r['ci95'][0]:+.2f}, {100 * r['ci95'][1]:+.2f}]", f"{float(r['wilcoxon_p']):.3g}",
                         "yes" if significant(r) else "no"] for r in rows],
                       [":---", "---:", "---:", "---:", ":---:"])
        not_significant = [organ(str(r["label"])).strip("*") for r in rows if not significant(r)]
        if not_significant:
            lines += ["", f"Not significant at {SIGNIFICANCE_LEVEL:g}: {', '.join(not_significant)}."]
        else:
            lines += ["", f"Every difference is significant at {SIGNIFICANCE_LEVEL:g}."]
        lines.append("")
    lines += [f"With {n} cases a paired test rarely reaches significance for differences of a few DSC points (a "
              "Synapse test split has 12): read a non-significant difference as \"not shown\", not as \"equal\".", ""]
    return lines


def _cross_validation_section(report: dict) -> list[str]:
    """Per fold, each method's mean DSC and HD95 over the fold's validation cases, then the pooled figures."""
    cv = report.get("cross_validation")
    if not cv:
        return []
    keys = list(report["methods"])
    unit = "voxels" if report["hd95_unit"] == "voxel" else "mm"
    rows = []
    for fold in map(str, cv["folds"]):
        entries = [cv["per_fold"][key][fold] for key in keys]
        rows.append([fold, str(entries[0]["n_cases"]), *(f"{100 * e['mean']['dice']:.2f}" for e in entries),
                     *(f"{e['mean']['hd95']:.2f}" for e in entries)])
    pooled = [report["methods"][key] for key in keys]
    rows.append(["**pooled**", str(pooled[0]["n_cases"]), *(f"**{100 * e['mean']['dice']:.2f}**" for e in pooled),
                 *(f"**{e['mean']['hd95']:.2f}**" for e in pooled)])
    return ["## Cross-validation folds", "",
            "Per fold: the mean over its validation cases per organ, then over organs. Pooled: all folds' cases as "
            "one set (the tables above and the paired statistics).", "",
            *table(["fold", "cases", *(f"DSC (%) {k}" for k in keys), *(f"HD95 ({unit}) {k}" for k in keys)], rows,
                   [":---", "---:", *["---:"] * (2 * len(keys))]), ""]


def render_markdown(report: dict, evaluations: dict[str, EvaluationResult]) -> str:
    """``report.md``: segmentation table, model facts, network side-by-side, environment."""
    env = report["environment"]
    n_cases = next(iter(report["methods"].values()))["n_cases"]
    folds = report.get("folds")
    source = (f"{n_cases} case(s): the validation predictions of folds {', '.join(map(str, folds))} pooled "
              "(each case predicted by the fold that did not train on it),"
              if folds else f"{n_cases} case(s)")
    lines = [
        f"# Side-by-side: {', '.join(report['methods'])} on {report['dataset']}",
        "",
        f"Environment: {env['device']}, {env['threads']} CPU threads, {env['processor']}, "
        f"torch {env['torch']}, nnU-Net {env['nnunetv2']}, Python {env['python']}.",
        "",
        "## Segmentation (Synapse protocol)",
        "",
        f"{source} against `{report['ground_truth']}`; mean over cases per organ, then over organs. "
        f"Per-method files: `<method>/{EVALUATION_JSON}` (+ .csv, .md).",
        "",
        *organ_table(evaluations),
        "",
        f"![DSC per organ]({DSC_PNG})",
        "",
        *_paired_section(report["paired"], evaluations),
        *_cross_validation_section(report),
        "## Trained models",
        "",
        f"Fold {report['fold']}{' (the first of the cross-validation)' if folds else ''}. Parameters and GMACs of "
        "the trained network (checkpoint weights loaded) at one patch of its plans; epoch time from the checkpoint's "
        "training log; fastest epoch of nnU-Net's "
        "benchmark trainers where their `benchmark_result.json` exists (GPU only). "
        + _inference_sentence(report["models"]),
        "",
        *_models_table(report["models"]),
        "",
        "## Networks side by side",
        "",
    ]
    network = report["network"]
    if "networks" in network:
        settings = network["settings"]
        memory = next(iter(network["networks"].values()))["peak_memory_source"]
        lines += [
            f"One run, back to back, each network in a fresh process: batch {settings['batch_size']} of "
            f"{settings['img_size']}×{settings['img_size']} on {settings['device']}, {settings['warmup']} untimed + "
            f"{settings['steps']} timed repetitions. Training step: forward with deep supervision, nnU-Net's "
            f"Dice+CE loss, backward, clipping, AdamW. nnU-Net 2d is the network of the '2d' configuration in "
            f"`{settings['plans']}`; SMAFormerV2 as `{settings['smaformer_trainer']}` builds it. "
            f"GMACs for one image. Peak memory: {memory}.",
            "",
            *_network_table(network),
        ]
    else:
        lines.append(f"Not run: {network.get('skipped', 'unknown reason')}.")
    return "\n".join(lines) + "\n"


def write_dsc_chart(evaluations: dict[str, EvaluationResult], path: Path, title: str = "DSC per organ") -> Path:
    """Grouped bar chart (PNG): DSC in % per organ and the mean, one bar colour per method, each case's value a dot
    over its bar."""
    import numpy as np
    from matplotlib.figure import Figure

    from nnunetv2_smaformer.comparison.paired import case_values

    keys = list(evaluations)
    first = evaluations[keys[0]]
    groups = [first.name(label) for label in first.labels] + ["mean"]
    width = 0.8 / len(keys)
    figure = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(groups) * max(1, len(keys)) / 2), 4.5), dpi=120)
    axes = figure.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(keys))]
    cases = sorted(first.per_case)
    for i, key in enumerate(keys):
        result = evaluations[key]
        values = [100 * result.per_label[label][0] for label in first.labels] + [100 * result.mean[0]]
        positions = [g + (i - (len(keys) - 1) / 2) * width for g in range(len(groups))]
        axes.bar(positions, values, width=width, color=colours[i], label=key)
        # Each case's value over its bar: the spread behind the mean.
        per_case = [case_values(result, label, cases) for label in first.labels] + [case_values(result, None, cases)]
        spread = np.linspace(-0.3, 0.3, len(cases)) * width if len(cases) > 1 else np.zeros(1)
        for position, case_dsc in zip(positions, per_case):
            axes.scatter(position + spread, 100 * case_dsc, s=6, color="black", alpha=0.6, linewidths=0, zorder=3)
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=30, ha="right")
    axes.set_ylabel("DSC (%)")
    # Headroom above 100 % keeps the legend off the bars.
    axes.set_ylim(0, 118)
    axes.set_yticks(range(0, 101, 20))
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper center", ncol=len(keys), fontsize="small", frameon=False)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
