"""``torch.compile`` (inductor) and autocast: the path nnU-Net takes on a GPU, exercised on the CPU.

nnU-Net 2.8 compiles the network by default on CUDA and trains under autocast. Here: one compiled
training step with deep supervision against eager, the switch to evaluation without deep supervision
as nnU-Net's validation makes it, no recompilation on repeated calls; the real ``nnUNetv2_train`` with
compile forced on (test trainer ``nnUNetTrainerSMAFormerV2_compileTest``), its final validation and
``nnUNetv2_predict`` of its checkpoint; forward and backward under bf16 and fp16 autocast against fp32.

Compiling costs minutes on 2 cores, so one compiled model is shared by the module, inputs are 64x64,
and inductor's on-disk caches (FX graphs, AOT autograd) live in one folder for the session: the
``nnUNetv2_train`` subprocess builds the same network on the same shapes and reuses those graphs.
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from ext_trainers.nnUNetTrainerSMAFormerV2_compileTest import COUNTERS_MARKER, nnUNetTrainerSMAFormerV2_compileTest
from nnunet_cli import model_folder, predict, run
from nnunetv2_smaformer.speed.step_timing import deep_supervision_loss

COMPILE_TRAINER = nnUNetTrainerSMAFormerV2_compileTest.__name__
# Dataset501 of the ``ct`` fixture: one CT channel, 3 organs + background, 64x64 slices; nnU-Net's batch 2.
IN_CHANNELS, NUM_CLASSES, SIZE, BATCH = 1, 4, 64, 2


def relative_error(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    """One relative norm over all tensors: ``||a - e|| / ||e||``.

    Per tensor, gradients of conv biases right before a BatchNorm are pure rounding noise (their true
    gradient is zero) and differ by 100 % between any two correct implementations.
    """
    diff = torch.sqrt(sum(((a.double() - e.double()) ** 2).sum() for a, e in zip(actual, expected)))
    norm = torch.sqrt(sum((e.double() ** 2).sum() for e in expected))
    return float(diff / norm)


def inputs(seed: int = 0):
    """A batch and nnU-Net's deep-supervision targets (full, 1/4, 1/8, 1/16 resolution)."""
    generator = torch.Generator().manual_seed(seed)
    data = torch.randn(BATCH, IN_CHANNELS, SIZE, SIZE, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (BATCH, 1, SIZE, SIZE), generator=generator).float()
    targets = [labels] + [labels[..., ::step, ::step] for step in (4, 8, 16)]
    return data, targets


def build_network() -> torch.nn.Module:
    """The network the compile test trainer builds for Dataset501 (same class, same arguments): the shipped one,
    stochastic depth 0.2 included."""
    torch.manual_seed(0)
    network = nnUNetTrainerSMAFormerV2_compileTest.build_network_architecture(
        None, None, IN_CHANNELS, NUM_CLASSES, enable_deep_supervision=True)
    assert any(getattr(m, "drop_prob", 0) > 0 for m in network.modules()), "stochastic depth is on"
    return network


def seeded(seed: int, fn, *args):
    """``fn(*args)`` after seeding torch: eager and compiled steps draw the same stochastic-depth masks."""
    torch.manual_seed(seed)
    return fn(*args)


def training_step(model, runner, loss_fn, data, targets):
    """Forward, nnU-Net's loss, backward: (outputs, loss, {parameter name: gradient})."""
    model.zero_grad(set_to_none=True)
    outputs = runner(data)
    loss = loss_fn(outputs, targets)
    loss.backward()
    return [o.detach() for o in outputs], loss.detach(), gradients(model)


def gradients(model) -> dict[str, torch.Tensor]:
    """{parameter name: gradient}. Without a gradient (None) counts as zero: eager leaves the 1/16 head
    without one (nnU-Net weights its loss 0 and skips it), AOT autograd hands it zeros."""
    return {name: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            for name, p in model.named_parameters()}


def gradient_error(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> float:
    assert actual.keys() == expected.keys()
    assert len(expected) > 100  # the whole network, not a corner of it
    return relative_error([actual[k] for k in expected], list(expected.values()))


@pytest.fixture(scope="session")
def inductor_cache(tmp_path_factory) -> str:
    """A fresh inductor cache folder for this session: compile times are those of a first run, and the
    ``nnUNetv2_train`` subprocess finds what this process compiled."""
    path = str(tmp_path_factory.mktemp("inductor_cache"))
    patch = pytest.MonkeyPatch()
    patch.setenv("TORCHINDUCTOR_CACHE_DIR", path)
    yield path
    patch.undo()


@pytest.fixture(scope="module")
def compiled(inductor_cache, record_figure) -> dict[str, object]:
    """One compiled training step with deep supervision next to eager, with compile times and counters.

    inductor draws its random numbers as eager does (``fallback_random``, as the compile test trainer sets it), so
    that under one seed both steps drop the same paths."""
    import torch._inductor.config as inductor_config

    torch._dynamo.reset()
    counters.clear()
    patch = pytest.MonkeyPatch()
    patch.setattr(inductor_config, "fallback_random", True)
    eager = build_network().train()
    model = copy.deepcopy(eager)
    runner = torch.compile(model)
    loss_fn = deep_supervision_loss(4)
    data, targets = inputs()

    expected = seeded(7, training_step, eager, eager, loss_fn, data, targets)
    start = time.perf_counter()
    actual = seeded(7, training_step, model, runner, loss_fn, data, targets)
    first_s = time.perf_counter() - start
    graphs_after_first = counters["stats"]["unique_graphs"]
    start = time.perf_counter()
    second = training_step(model, runner, loss_fn, *inputs(seed=1))
    second_s = time.perf_counter() - start
    record_figure(f"compiled training step (64x64, batch 2): first {first_s:.1f} s (compile), second {second_s:.2f} s")
    yield {"eager": eager, "model": model, "runner": runner, "expected": expected, "actual": actual,
           "second": second, "first_s": first_s, "graphs_after_first": graphs_after_first,
           "graphs_after_second": counters["stats"]["unique_graphs"]}
    patch.undo()


@pytest.mark.slow
def test_compiled_training_step_matches_eager(compiled):
    (out_e, loss_e, grad_e), (out_c, loss_c, grad_c) = compiled["expected"], compiled["actual"]
    assert len(out_c) == 4 and [o.shape for o in out_c] == [o.shape for o in out_e]
    assert relative_error(out_c, out_e) < 1e-4
    assert abs(float(loss_c) - float(loss_e)) < 1e-4 * abs(float(loss_e))
    assert all(torch.isfinite(g).all() for g in grad_c.values())
    assert gradient_error(grad_c, grad_e) < 2e-2
    # Same shapes, same mode: the second step runs the graphs compiled for the first.
    assert compiled["graphs_after_second"] == compiled["graphs_after_first"] >= 1
    assert not counters["graph_break"], f"graph breaks: {dict(counters['graph_break'])}"


@pytest.mark.slow
def test_compiled_eval_without_deep_supervision(compiled):
    """nnU-Net's validation: eval mode with deep supervision on (validation steps), then off with
    batch-1 tiles (final validation, prediction). Each switch compiles once, repeats do not."""
    eager, model, runner = compiled["eager"], compiled["model"], compiled["runner"]
    eager.load_state_dict(model.state_dict())  # BatchNorm statistics: the compiled copy ran one more step
    data, _ = inputs(seed=2)
    for deep_supervision, batch in ((True, BATCH), (False, 1)):
        for network in (eager, model):
            network.eval()
            network.decoder.deep_supervision = deep_supervision
        with torch.no_grad():
            expected = eager(data[:batch])
            actual = runner(data[:batch])
            graphs = counters["stats"]["unique_graphs"]
            again = runner(data[:batch])
        assert counters["stats"]["unique_graphs"] == graphs, "recompiled on a repeated call"
        if deep_supervision:
            assert isinstance(actual, (list, tuple)) and len(actual) == 4
        else:
            assert isinstance(actual, torch.Tensor) and actual.shape == (batch, NUM_CLASSES, SIZE, SIZE)
            expected, actual, again = [expected], [actual], [again]
        assert relative_error(list(actual), list(expected)) < 1e-4
        assert relative_error(list(again), list(actual)) < 1e-6
    assert not counters["graph_break"], f"graph breaks: {dict(counters['graph_break'])}"


def _log_counters(log_file: Path) -> dict:
    lines = [line for line in log_file.read_text().splitlines() if COUNTERS_MARKER in line]
    assert lines, f"no compile counters in {log_file}"
    return json.loads(lines[-1].split(COUNTERS_MARKER, 1)[1])


@pytest.mark.slow
def test_nnunet_train_and_predict_compiled(ct, compiled, inductor_cache, official_checkpoint, tmp_path, record_figure):
    """``nnUNetv2_train`` with compile on: ImageNet weights loaded into the compiled network, training, final
    validation, then ``nnUNetv2_predict`` with the checkpoint a compiled training saved."""
    env = dict(ct, TORCHINDUCTOR_CACHE_DIR=inductor_cache, TORCH_LOGS="recompiles",
               SMAFORMER_SWIN_WEIGHTS=str(official_checkpoint))
    env.pop("nnUNet_compile", None)  # nnUNetv2_predict then runs as by default (it compiles only on request)
    start = time.perf_counter()
    result = run(["nnUNetv2_train", "501", "2d", "0", "-tr", COMPILE_TRAINER, "-device", "cpu"], env, timeout=1800)
    train_s = time.perf_counter() - start
    fold = model_folder(ct, "Dataset501_TinyCT", COMPILE_TRAINER) / "fold_0"
    assert "Using torch.compile" in result.stdout
    assert (fold / "checkpoint_final.pth").is_file()
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2", "3"}

    log = sorted(fold.glob("training_log_*.txt"))[-1]
    # The weights went through the compile wrapper into the network (unwrap_network before load_pretrained).
    assert "ImageNet initialisation of the encoder" in log.read_text() and "coverage 100.00 %" in log.read_text()
    stats = _log_counters(log)
    assert not stats.get("graph_break"), f"graph breaks: {stats['graph_break']}"
    output = result.stdout + result.stderr
    assert "recompile_limit" not in output and "cache_size_limit" not in output
    # Recompiles only for nnU-Net's mode switches and shapes (train, eval, no deep supervision, batch 1,
    # the Dice loss per deep-supervision resolution), not once per iteration.
    recompiles = output.count("Recompiling function")
    assert recompiles <= 8, f"{recompiles} recompilations:\n{output[-3000:]}"
    hits = (stats.get("aot_autograd", {}).get("autograd_cache_hit", 0)
            + stats.get("inductor", {}).get("fxgraph_cache_hit", 0))
    print(f"compile counters of nnUNetv2_train: {stats}")
    record_figure(f"nnUNetv2_train (compiled, cache of this session): {train_s:.0f} s, {recompiles} recompilations, "
                  f"{hits} cache hits")

    images = tmp_path / "images"
    images.mkdir()
    source = Path(ct["nnUNet_raw"]) / "Dataset501_TinyCT" / "imagesTr" / "case_000_0000.nii.gz"
    shutil.copy(source, images / source.name)
    predictions = tmp_path / "predictions"
    start = time.perf_counter()
    predict(env, images, predictions, 501, COMPILE_TRAINER)  # checkpoint_final.pth
    record_figure(f"nnUNetv2_predict of the compiled training's checkpoint: {time.perf_counter() - start:.0f} s")
    import SimpleITK as sitk

    prediction = sitk.GetArrayFromImage(sitk.ReadImage(str(predictions / "case_000.nii.gz")))
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(source)))
    assert prediction.shape == reference.shape
    assert set(np.unique(prediction)) <= {0, 1, 2, 3}


@pytest.fixture(scope="module")
def fp32_reference():
    # The network itself (no stochastic depth, no autocast policy of a trainer): its numerics under autocast.
    from nnunetv2_smaformer import SMAFormerV2

    torch.manual_seed(0)
    model = SMAFormerV2(IN_CHANNELS, NUM_CLASSES, img_size=SIZE, deep_supervision=True, drop_path_rate=0.0).train()
    data, targets = inputs(seed=3)
    reference = copy.deepcopy(model)
    return model, data, targets, training_step(reference, reference, deep_supervision_loss(4), data, targets)


# Gradients pass through dozens of normalisation layers at batch 2; bf16 keeps 8 mantissa bits, fp16 11.
@pytest.mark.parametrize("dtype, output_tol, grad_tol", [(torch.bfloat16, 5e-2, 0.25), (torch.float16, 1e-2, 0.1)],
                         ids=["bf16", "fp16"])
def test_autocast_forward_backward(fp32_reference, dtype, output_tol, grad_tol):
    """Forward and backward under CPU autocast: finite, outputs and gradients close to fp32."""
    model, data, targets, (out_ref, loss_ref, grad_ref) = fp32_reference
    network = copy.deepcopy(model)
    loss_fn = deep_supervision_loss(4)
    network.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=dtype):
        outputs = network(data)
        loss = loss_fn(outputs, targets)
    loss.backward()
    grads = gradients(network)
    assert torch.isfinite(loss) and all(torch.isfinite(o).all() for o in outputs)
    assert all(torch.isfinite(g).all() for g in grads.values())
    error = relative_error([o.float() for o in outputs], out_ref)
    assert 0 < error < output_tol, f"{dtype}: output error {error:.2e} (0: autocast did not take effect)"
    assert abs(float(loss) - float(loss_ref)) < output_tol * abs(float(loss_ref))
    error = gradient_error(grads, grad_ref)
    print(f"autocast {dtype}: gradient error {error:.2e}")
    assert error < grad_tol, f"{dtype}: gradient error {error:.2e}"
