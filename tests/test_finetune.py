"""Fine-tuning across label sets with nnU-Net's -pretrained_weights; dynamic-network-architectures' contract."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from dynamic_network_architectures.architectures import abstract_arch
from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

from nnunet_cli import SMOKE, model_folder, predict, run
from nnunetv2_smaformer import SMAFormerV2
from nnunetv2_smaformer.training import nnUNetTrainerSMAFormerV2

HEAD = ".seg_layers."
# Main head and three deep-supervision heads, weight and bias each.
HEAD_TENSORS = 8


def old_names(state):
    """A state dict as checkpoints wrote it before the class-logit convs were named ``seg_layers``."""
    return {k.replace(HEAD, "."): v for k, v in state.items()}


def old_checkpoint(state):
    """:func:`old_names`, and as checkpoints wrote it before the convolutions directly in front of a
    BatchNorm lost their bias: each gets a random bias, which is added to the BatchNorm's running mean
    too, so the old network computes the same function."""
    old = old_names(state)
    generator = torch.Generator().manual_seed(0)
    for name, module in SMAFormerV2(1, 2).named_modules():
        for conv, norm in getattr(module, "conv_bn_pairs", ()):
            mean_key = f"{name}.{norm}.running_mean"
            if mean_key in old:
                bias = torch.randn(old[mean_key].shape, generator=generator)
                old[f"{name}.{conv}.bias"] = bias
                old[mean_key] = old[mean_key] + bias
    return old


def test_old_checkpoints_compute_the_same_function():
    torch.manual_seed(0)
    model = SMAFormerV2(1, 3).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial running statistics
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    old = old_checkpoint(model.state_dict())
    assert "decoder.final_up.up.bias" in old and "encoder.sma.0.proj.bias" in old
    restored = SMAFormerV2(1, 3).eval()
    restored.load_state_dict(old)  # strict: every old key is accounted for
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("edge", [True, False], ids=["edge-head", "plain-head"])
def test_only_the_class_logit_layers_depend_on_the_label_count(edge):
    four, nine = (SMAFormerV2(1, k, use_edge_enhancement=edge, img_size=64).state_dict() for k in (5, 10))
    assert four.keys() == nine.keys()
    differing = {k for k in four if four[k].shape != nine[k].shape}
    assert differing == {k for k in four if HEAD in k}
    assert len(differing) == HEAD_TENSORS


def test_dynamic_network_architectures_contract():
    model = SMAFormerV2(in_channels=2, num_classes=4, img_size=64)
    assert isinstance(model, abstract_arch.AbstractDynamicNetworkArchitectures)
    abstract_arch.test_submodules_loadable(model)  # the package's own check
    assert model.get_submodule(model.key_to_encoder) is model.encoder
    assert {name for name, _ in model.encoder.named_children()} == {"swin", "sma"}
    assert model.get_submodule(model.key_to_stem) is model.input_proj
    # The input projection holds the only weights whose shape depends on the number of input channels.
    one, three = (SMAFormerV2(c, 4, img_size=64).state_dict() for c in (1, 3))
    assert {k for k in one if one[k].shape != three[k].shape} == {f"{k}.weight" for k in model.keys_to_in_proj}


def _distinct(model: torch.nn.Module, seed: int) -> dict:
    """The model's state with every floating-point tensor (buffers too) moved off its initial value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("saved_names", ["current", "old"])
def test_nnunet_loader_transfers_everything_but_the_heads(tmp_path, saved_names, capsys):
    source = _distinct(SMAFormerV2(1, 5, deep_supervision=True, img_size=64), seed=1)
    checkpoint = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": old_names(source) if saved_names == "old" else source}, checkpoint)

    target = SMAFormerV2(1, 10, deep_supervision=True, img_size=64)
    initial_heads = {k: v.clone() for k, v in target.state_dict().items() if HEAD in k}
    load_pretrained_weights(target, str(checkpoint), verbose=True)

    loaded = target.state_dict()
    transferred = [k for k in loaded if HEAD not in k]
    assert len(transferred) == len(loaded) - HEAD_TENSORS
    for key in transferred:
        assert torch.equal(loaded[key], source[key]), key
    for key, initial in initial_heads.items():
        assert loaded[key].shape[0] == 10 and torch.equal(loaded[key], initial), key
    listed = re.findall(r"^(\S+) shape ", capsys.readouterr().out, re.M)
    assert len(listed) == len(transferred)


def test_other_input_channel_count_is_refused_by_nnunet(tmp_path):
    checkpoint = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": SMAFormerV2(1, 5, img_size=64).state_dict()}, checkpoint)
    with pytest.raises(AssertionError, match=r"The shape of the parameters of key input_proj\.conv\.weight"):
        load_pretrained_weights(SMAFormerV2(2, 10, img_size=64), str(checkpoint))


def test_imagenet_initialisation_only_for_a_fresh_training():
    trainer = object.__new__(nnUNetTrainerSMAFormerV2)  # the decision reads three flags only
    trainer._weights_restored, trainer.was_initialized = False, False
    assert trainer.imagenet_initialisation_due()
    trainer.was_initialized = True  # nnUNetv2_train initialised it to load -pretrained_weights
    assert not trainer.imagenet_initialisation_due()
    trainer._weights_restored, trainer.was_initialized = True, False  # --c / --val
    assert not trainer.imagenet_initialisation_due()


IMAGENET_SMOKE = "nnUNetTrainerSMAFormerV2_smokeImageNet"


def test_finetune_on_nine_labels_from_four(finetuned):
    env, stdout = finetuned["env"], finetuned["finetune_stdout"]
    source = torch.load(finetuned["source"], map_location="cpu", weights_only=False)["network_weights"]
    fold = model_folder(env, "Dataset512_Nine", IMAGENET_SMOKE) / "fold_0"
    tuned = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]

    assert source["decoder.head.classifier.seg_layers.weight"].shape[0] == 5
    assert tuned["decoder.head.classifier.seg_layers.weight"].shape[0] == 10
    assert source["input_proj.conv.weight"].shape == tuned["input_proj.conv.weight"].shape == (3, 2, 3, 3)  # T1, T2
    # nnU-Net's loader lists what it transferred: every tensor but the 8 of the class-logit layers.
    listed = re.findall(r"^(\S+) shape ", stdout, re.M)
    assert sorted(listed) == sorted(k for k in tuned if HEAD not in k)
    assert len(listed) == len(tuned) - HEAD_TENSORS

    # The pre-training took ImageNet weights from the (test) Hugging Face cache; the fine-tuning did not,
    # although its trainer initialises from ImageNet on a fresh start: nnU-Net's weights won.
    source_log = next(finetuned["source"].parent.glob("training_log_*.txt")).read_text()
    assert "ImageNet initialisation" in source_log and "coverage 100.00 %" in source_log
    assert "swin_tiny_patch4_window7_224.ms_in1k" in source_log
    assert "ImageNet initialisation" not in next(fold.glob("training_log_*.txt")).read_text()
    # 10 AdamW steps at lr 3e-4 move a parameter by at most ~1e-2 from where the fine-tuning started.
    parameters = {n for n, _ in SMAFormerV2(2, 10, img_size=64).named_parameters() if HEAD not in n}
    drift = max((tuned[n] - source[n]).abs().max().item() for n in parameters)
    assert drift < 0.02


def _read_prediction(folder: Path, case: str):
    """A prediction's segmentation and class probabilities."""
    segmentation = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}.nii.gz")))
    return segmentation, np.load(folder / f"{case}.npz")["probabilities"]


def test_old_checkpoint_predicts_and_continues(ct, smoke_model, smoke_prediction, tmp_path):
    """A model folder whose checkpoint has the names from before ``seg_layers``: predict and --c still work."""
    results = tmp_path / "results"
    old = results / smoke_model.parent.name / smoke_model.name
    shutil.copytree(smoke_model, old, ignore=shutil.ignore_patterns("validation"))
    checkpoint = torch.load(old / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    checkpoint["network_weights"] = old_checkpoint(checkpoint["network_weights"])
    assert "decoder.head.classifier.weight" in checkpoint["network_weights"]
    torch.save(checkpoint, old / "fold_0" / "checkpoint_final.pth")
    old_env = {**ct, "nnUNet_results": str(results)}

    case = smoke_prediction["case"]
    new_seg, new_prob = _read_prediction(smoke_prediction["out"], case)
    predict(old_env, smoke_prediction["inputs"], tmp_path / "old", 501, SMOKE, "--save_probabilities")
    old_seg, old_prob = _read_prediction(tmp_path / "old", case)
    # The folded biases change float rounding only; a 5-step smoke model has near-ties in its
    # probabilities, where that rounding may flip the arg-max, so labels are compared where the
    # winner leads by more than the rounding.
    assert np.allclose(new_prob, old_prob, atol=1e-4)
    top2 = np.sort(new_prob, axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-3
    assert clear.mean() > 0.5 and np.array_equal(new_seg[clear], old_seg[clear])

    run(["nnUNetv2_train", "501", "2d", "0", "-tr", SMOKE, "-device", "cpu", "--c"], old_env)
    resaved = torch.load(old / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert "decoder.head.classifier.seg_layers.weight" in resaved["network_weights"]
    assert (old / "fold_0" / "validation" / "summary.json").is_file()
