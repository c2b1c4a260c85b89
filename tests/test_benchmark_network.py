"""``smaformer benchmark-network`` times every configuration, the reference file's network included, in one run."""
from __future__ import annotations

import json
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
    assert report["train_speedup_vs_window7_unfused"] == pytest.approx(
        report["configs"]["window7_unfused"]["train_step_median_s"]
        / report["configs"]["smaformer_v2"]["train_step_median_s"])
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
    ours = configs["smaformer_v2_single_output"]["train_step_median_s"]
    assert report["train_speedup_vs_reference"] == pytest.approx(configs["reference"]["train_step_median_s"] / ours)
    assert report["train_speedup_vs_reference_window8"] == pytest.approx(
        configs["reference_window8"]["train_step_median_s"] / ours)
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
    # --shapes: one row per operator and input shapes, e.g. the full-resolution (64x64) convolutions.
    result = subprocess.run([*command, "--shapes"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    operators = result.stdout.split("Forward per module")[0]
    assert "aten::convolution" in operators and "64, 64]" in operators
    assert "STAND-IN REPORT" not in result.stdout
