"""``smaformer benchmark-network`` writes its JSON with both configurations measured in one run."""
from __future__ import annotations

import json
import subprocess


def test_benchmark_network_json(smaformer_bin, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [smaformer_bin, "benchmark-network", "-o", str(out), "--img-size", "64", "--steps", "1", "--warmup", "0"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report["configs"]) == {"smaformer_v2", "window7_unfused"}
    for config in report["configs"].values():
        assert len(config["train_step_s"]) == 1 and config["train_step_s"][0] > 0
        assert config["inference_images_per_s"] > 0
    assert report["train_speedup_vs_window7_unfused"] > 0
    # The recorded authors' figure is for batch 2 at 256x256 only.
    assert "train_speedup_vs_authors_recorded" not in report
    assert "train step" in result.stdout and str(out) in result.stdout
