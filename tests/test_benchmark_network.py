"""``smaformer benchmark-network`` times every configuration, the reference file's network included, in one run."""
from __future__ import annotations

import json
import statistics
import subprocess

import pytest

# A stand-in for the authors' SMAFormerV2.py: the same constructor signature, prints while built,
# [B, 3, H, W] -> one [B, num_classes, H, W] tensor. Its forward sleeps SLEEP_S seconds.
STAND_IN = '''
import time
from torch import nn

SLEEP_S = {sleep}


class SMAFormerV2(nn.Module):
    def __init__(self, args, img_size=256, num_classes=9, window_size=7, pretrained_path="weights.pth"):
        super().__init__()
        if args.dataset == "Synapse":
            num_classes = 9
        self.window_size = window_size
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, num_classes, 1))
        print("STAND-IN REPORT: built with window", window_size)

    def forward(self, x):
        time.sleep(SLEEP_S)
        return self.net(x)
'''

SLEEP_S = 0.4


def _stand_in(path, sleep: float = SLEEP_S):
    path.write_text(STAND_IN.format(sleep=sleep))
    return path


def _run(smaformer_bin, out, *extra):
    return subprocess.run(
        [smaformer_bin, "benchmark-network", "-o", str(out), "--img-size", "64", "--steps", "1", "--warmup", "0",
         *extra],
        capture_output=True, text=True, timeout=600,
    )


def test_benchmark_network_json(smaformer_bin, tmp_path):
    out = tmp_path / "bench.json"
    result = _run(smaformer_bin, out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report["configs"]) == {"smaformer_v2", "window7_unfused"}
    for config in report["configs"].values():
        assert len(config["train_step_s"]) == 1 and config["train_step_s"][0] > 0
        assert config["inference_images_per_s"] > 0
    # The speed-up is the ratio of the two configurations' median recorded steps.
    steps = {name: statistics.median(config["train_step_s"]) for name, config in report["configs"].items()}
    assert report["train_speedup_vs_window7_unfused"] == pytest.approx(steps["window7_unfused"] / steps["smaformer_v2"])
    assert "train step" in result.stdout and str(out) in result.stdout


def test_benchmark_network_times_the_reference(smaformer_bin, tmp_path):
    out = tmp_path / "bench.json"
    reference = _stand_in(tmp_path / "SMAFormerV2.py")
    result = _run(smaformer_bin, out, "--no-baseline", "--reference", str(reference), "--reference-window", "7", "8")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    configs = report["configs"]
    assert set(configs) == {"smaformer_v2", "smaformer_v2_single_output", "reference", "reference_window8"}
    # Ours as nnU-Net trains it (4 outputs), and ours trained exactly like the reference.
    assert configs["smaformer_v2"]["deep_supervision"] is True
    assert configs["smaformer_v2_single_output"]["deep_supervision"] is False
    assert configs["smaformer_v2_single_output"]["in_channels"] == configs["reference"]["in_channels"] == 3
    assert set(configs["reference"]) == set(configs["smaformer_v2"])
    # The stand-in's sleep is inside every timed step and inference batch: it is really timed.
    for name in ("reference", "reference_window8"):
        assert configs[name]["train_step_s"][0] >= SLEEP_S
        assert configs[name]["inference_batch_s"][0] >= SLEEP_S
        assert configs[name]["parameters"] == 3 * 4 * 9 + 4 + 4 * 9 + 9
    steps = {name: statistics.median(config["train_step_s"]) for name, config in configs.items()}
    ours = steps["smaformer_v2_single_output"]
    assert report["train_speedup_vs_reference"] == pytest.approx(steps["reference"] / ours)
    assert report["train_speedup_vs_reference_window8"] == pytest.approx(steps["reference_window8"] / ours)
    # Only figures measured in this run: nothing recorded elsewhere.
    assert not [key for key in report if "recorded" in key or "authors" in key]
    assert report["settings"]["reference"] == str(reference)
    # The reference's own prints stay out of our output.
    assert "STAND-IN REPORT" not in result.stdout + result.stderr
    assert "train_speedup_vs_reference:" in result.stdout


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    ("import torch\nraise RuntimeError('broken on purpose')\n", "broken on purpose"),
    ("X = 1\n", "defines no class SMAFormerV2"),
])
def test_benchmark_network_bad_reference(smaformer_bin, tmp_path, content, problem):
    reference = tmp_path / "authors.py"
    if content is not None:
        reference.write_text(content)
    out = tmp_path / "bench.json"
    result = _run(smaformer_bin, out, "--no-baseline", "--reference", str(reference))
    assert result.returncode == 2
    assert str(reference) in result.stderr and problem in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_benchmark_network_reference_without_window_argument(smaformer_bin, tmp_path):
    reference = tmp_path / "authors.py"
    reference.write_text(STAND_IN.format(sleep=0).replace("window_size=7, ", ""))
    out = tmp_path / "bench.json"
    result = _run(smaformer_bin, out, "--no-baseline", "--reference", str(reference), "--reference-window", "8")
    assert result.returncode == 2
    assert str(reference) in result.stderr and "window_size" in result.stderr
    assert not out.exists()


def test_profile_against_the_reference_attributes_its_time(tmp_path):
    # benchmarks/profile_vs_reference.py: the stand-in's 0.4 s sleep in forward appears in its whole-network
    # forward time, our network's top-level modules are listed, and the stand-in's prints stay out.
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_vs_reference.py"
    command = [sys.executable, str(script), "--reference", str(_stand_in(tmp_path / "ref.py")),
               "--img-size", "64", "--steps", "1", "--warmup", "0", "--depth", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    ours, theirs = result.stdout.split("Forward per module")[1:]
    assert "smaformer_v2_single_output" in ours and "reference_window8" in theirs
    assert "encoder (" in ours and "decoder (" in ours
    whole = [line for line in theirs.splitlines() if "(whole network)" in line]
    assert len(whole) == 1 and float(whole[0].split()[-1]) >= 1000 * SLEEP_S
    assert "aten::" in result.stdout.split("Forward per module")[0]
    assert "STAND-IN REPORT" not in result.stdout
    # --shapes: one row per operator and input shapes, e.g. the full-resolution (64x64) convolutions, which need
    # not be among the default top 25 rows (the stand-in's sleep and timing noise reorder them): all rows.
    result = subprocess.run([*command, "--shapes", "--top", "100000"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    operators = result.stdout.split("Forward per module")[0]
    assert "aten::convolution" in operators and "64, 64]" in operators
    assert "STAND-IN REPORT" not in result.stdout


def test_benchmark_network_options_reach_the_measurement(smaformer_bin, tmp_path):
    defaults, options = tmp_path / "defaults.json", tmp_path / "options.json"
    assert _run(smaformer_bin, defaults, "--no-baseline").returncode == 0
    result = _run(smaformer_bin, options, "--no-baseline", "--amp", "bf16", "--batch-size", "1", "--in-channels", "2",
                  "--num-classes", "3")
    assert result.returncode == 0, result.stderr
    base, changed = (json.loads(p.read_text()) for p in (defaults, options))
    settings = changed["settings"]
    assert (settings["batch_size"], settings["in_channels"], settings["num_classes"], settings["amp"]) == (
        1, 2, 3, "bfloat16")
    ours, reference = changed["configs"]["smaformer_v2"], base["configs"]["smaformer_v2"]
    assert ours["batch_size"] == 1 and ours["in_channels"] == 2
    assert ours["inference_output_dtype"] == "bfloat16" and reference["inference_output_dtype"] == "float32"
    # 2 input channels add 3 x 1 x 3 x 3 weights to the input projection; 3 classes instead of 9 take 6 output
    # channels (a weight per input channel and a bias) from the main head (96 in) and the 96-, 192- and 384-channel
    # deep-supervision heads.
    assert ours["parameters"] - reference["parameters"] == 27 - 6 * (97 + 97 + 193 + 385)
    assert ours["nonfinite_steps"] == 0


def test_benchmark_network_compile_option_adds_the_compiled_configuration():
    import torch

    from nnunetv2_smaformer.cli.benchmark_network import settings_from_args
    from nnunetv2_smaformer.cli.main import build_parser
    from nnunetv2_smaformer.speed.step_timing import benchmark_configs

    parser = build_parser()
    plain = settings_from_args(parser.parse_args(["benchmark-network", "--no-baseline"]))
    compiled = settings_from_args(parser.parse_args(["benchmark-network", "--no-baseline", "--compile",
                                                     "--amp", "fp16"]))
    assert [c.name for c in benchmark_configs(plain)] == ["smaformer_v2"]
    configs = benchmark_configs(compiled)
    assert [(c.name, c.compile_model) for c in configs] == [("smaformer_v2", False), ("smaformer_v2_compiled", True)]
    assert compiled.amp_dtype is torch.float16
