"""``smaformer summary`` through the installed console script."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def test_summary_reports_parts_gmacs_and_load(smaformer_bin, official_checkpoint):
    result = run([smaformer_bin, "summary", "--num-classes", "9", "--pretrained", str(official_checkpoint)])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for part, count in [("encoder", "27,527,082"), ("sma", "2,454,536"), ("decoder", "12,516,012"),
                        ("input_projection", "30"), ("deep_supervision", "6,075")]:
        assert re.search(rf"^\s+{part}\s+{count}$", out, re.M), (part, out)
    gmacs = float(re.search(r"([\d.]+) GMACs \(torch\.utils\.flop_counter\.FlopCounterMode\)", out).group(1))
    assert 14 < gmacs < 17
    assert "coverage 100.00 %" in out and "missing:           none" in out


def test_summary_rejects_bad_arguments(smaformer_bin, tmp_path):
    bad_size = run([smaformer_bin, "summary", "--img-size", "100"])
    assert bad_size.returncode == 2 and "--img-size" in bad_size.stderr
    missing = run([smaformer_bin, "summary", "--pretrained", str(tmp_path / "nope.pth")])
    assert missing.returncode == 2
    assert "nope.pth does not exist" in missing.stderr and "releases/download" in missing.stderr


def test_summary_options_change_the_network(smaformer_bin):
    result = run([smaformer_bin, "summary", "--in-channels", "2", "--window-size", "7", "--no-edge",
                  "--num-classes", "9"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "SMAFormerV2(in_channels=2, num_classes=9, window_size=7, edge=False)" in out
    for part, count in [("input_projection", "57"),  # 3x3 conv 2 -> 3 with bias: 3 * 2 * 9 + 3
                        ("encoder", "27,519,354"),  # Swin-T with window 7 (13 x 13 bias tables), no classifier
                        ("head", "873")]:  # plain 1x1 conv 96 -> 9 with bias
        assert re.search(rf"^\s+{part}\s+{count}$", out, re.M), (part, out)
    assert "at 1x2x256x256" in out


def test_summary_variants_table_is_the_one_in_the_docs(smaformer_bin):
    result = run([smaformer_bin, "summary", "--variants"])
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(" `"): line for line in result.stdout.splitlines() if line.startswith("| `")}
    assert list(rows) == ["nnUNetTrainerSMAFormerV2", "nnUNetTrainerSMAFormerV2_noEdge",
                          "nnUNetTrainerSMAFormerV2_noEncoderSMA", "nnUNetTrainerSMAFormerV2_noDecoderSMA",
                          "nnUNetTrainerSMAFormerV2_noSMA"]
    params = {name: int(line.split("|")[3].strip().replace(",", "")) for name, line in rows.items()}
    assert params["nnUNetTrainerSMAFormerV2"] == 42_681_824  # the default's total in the per-part summary
    assert params["nnUNetTrainerSMAFormerV2_noSMA"] < params["nnUNetTrainerSMAFormerV2_noDecoderSMA"] < params[
        "nnUNetTrainerSMAFormerV2_noEncoderSMA"] < params["nnUNetTrainerSMAFormerV2"]
    docs = (Path(__file__).resolve().parents[1] / "docs" / "network.md").read_text()
    assert result.stdout.strip() in docs, "docs/network.md's ablation table is not smaformer summary --variants' output"
