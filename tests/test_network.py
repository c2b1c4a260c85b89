"""SMAFormerV2 network: shapes, parameter counts per part, gradients, determinism."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nnunetv2_smaformer import SMAFormerV2
from nnunetv2_smaformer.network.attention import SMA
from nnunetv2_smaformer.network.decoder import DecoderStage, EdgeEnhancementHead

# Figures of the authors' implementation (their parameter counts): 9 classes, 3 input channels.
ORIGINAL_TOTAL = 42_661_643
ORIGINAL_ENCODER = 27_519_354  # Swin-T without its classifier, window 7
ORIGINAL_SMA = 2_455_976
ORIGINAL_DECODER = 12_518_028
# Swin-T has 138 attention heads; window 8 grows each bias table from 13x13 to 15x15.
WINDOW8_EXTRA = 138 * (15 * 15 - 13 * 13)
# Convolutions directly before a BatchNorm carry no bias (the norm cancels it): SMA's output projection
# (4 encoder + 6 decoder modules) and each decoder stage's skip fusion.
SMA_CHANNELS = (96, 192, 384, 768)
DECODER_CHANNELS = (384, 192, 96)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def model_ds() -> SMAFormerV2:
    torch.manual_seed(0)
    return SMAFormerV2(in_channels=1, num_classes=9, deep_supervision=True)


@pytest.mark.parametrize("dim,expected", [(96, 29_666), (192, 116_066), (384, 462_434), (768, 1_846_370)])
def test_sma_parameter_count(dim, expected):
    assert n_params(SMA(dim)) == expected


@pytest.mark.parametrize(
    "c_in,c_out,expected", [(768, 384, 9_519_940), (384, 192, 2_391_556), (192, 96, 604_516)]
)
def test_decoder_stage_parameter_count(c_in, c_out, expected):
    assert n_params(DecoderStage(c_in, c_out)) == expected


def test_parameter_counts_per_part_match_original():
    counts = SMAFormerV2(in_channels=3, num_classes=9, window_size=7).parameter_counts()
    assert counts["encoder"] == ORIGINAL_ENCODER
    assert counts["sma"] == ORIGINAL_SMA - sum(SMA_CHANNELS)
    assert counts["decoder"] == ORIGINAL_DECODER - 3 * sum(DECODER_CHANNELS)
    assert counts["input_projection"] == 3 * 3 * 3 * 3 + 3
    assert counts["final_upsampling"] == 96 * 96 * 16 + 2 * 96
    # Sobel x and y per channel (2 * 96 * 9), fuse 3*96 -> 96 (no bias) + BN, classifier 96 -> 9.
    assert counts["head"] == 2 * 96 * 9 + 3 * 96 * 96 + 2 * 96 + (96 * 9 + 9)
    assert counts["deep_supervision"] == (96 + 192 + 384) * 9 + 3 * 9
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")

    default = SMAFormerV2(in_channels=3, num_classes=9).parameter_counts()
    assert default["encoder"] == ORIGINAL_ENCODER + WINDOW8_EXTRA
    assert abs(default["total"] - ORIGINAL_TOTAL) / ORIGINAL_TOTAL < 0.01


def test_plain_head_without_edge_enhancement():
    model = SMAFormerV2(in_channels=1, num_classes=4, use_edge_enhancement=False)
    assert isinstance(model.decoder.head.seg_layers, torch.nn.Conv2d)
    assert model.parameter_counts()["head"] == 96 * 4 + 4


def test_edge_head_starts_as_sobel():
    head = EdgeEnhancementHead(channels=5, num_classes=2)
    weight = head.edge.weight.detach()
    assert weight.shape == (10, 1, 3, 3)
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    sobel_y = torch.tensor([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
    for c in range(5):
        assert torch.equal(weight[2 * c, 0], sobel_x)
        assert torch.equal(weight[2 * c + 1, 0], sobel_y)
    # A vertical step edge excites Sobel-x, not Sobel-y.
    image = torch.zeros(1, 5, 8, 8)
    image[..., 4:] = 1.0
    edges = head.edge(image)
    assert edges[0, 0].abs().sum() > 0 and edges[0, 1, 1:-1].abs().sum() == 0


def test_edge_head_equals_its_definition():
    # The forward splits the edge conv and the 3C -> C fuse for speed; it must compute exactly
    # classifier(ReLU(BN(fuse(cat(x, edge(x)))))) with trained (non-Sobel) weights too.
    torch.manual_seed(0)
    head = EdgeEnhancementHead(channels=6, num_classes=3).eval()

    def definition(t: torch.Tensor) -> torch.Tensor:
        return head.classifier(head.fuse(torch.cat((t, head.edge(t)), dim=1)))

    with torch.no_grad():
        for parameter in head.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        head.fuse[1].running_mean.normal_()
        x = torch.randn(2, 6, 16, 24)
        expected = definition(x)
        assert torch.allclose(head(x), expected, atol=1e-5)
        channels_last = x.contiguous(memory_format=torch.channels_last)
        assert torch.allclose(head(channels_last), expected, atol=1e-5)
    # Training mode (batch statistics): the same output and the same gradients for every parameter.
    head.train()
    gradients = []
    for forward in (head, definition):
        head.zero_grad()
        inputs = x.clone().requires_grad_()
        out = forward(inputs)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        gradients.append([out.detach(), inputs.grad, *(p.grad for p in head.parameters())])
    for ours, defined in zip(*gradients):
        assert torch.allclose(ours, defined, atol=1e-4)


def test_deep_supervision_outputs_and_flag(model_ds):
    model_ds.eval()
    x = torch.randn(1, 1, 256, 256)
    with torch.no_grad():
        outputs = model_ds(x)
        assert [tuple(o.shape) for o in outputs] == [(1, 9, 256, 256), (1, 9, 64, 64), (1, 9, 32, 32), (1, 9, 16, 16)]
        model_ds.decoder.deep_supervision = False
        single = model_ds(x)
    model_ds.decoder.deep_supervision = True
    assert isinstance(single, torch.Tensor) and single.shape == (1, 9, 256, 256)
    assert torch.allclose(single, outputs[0], atol=1e-5)


@pytest.mark.parametrize("in_channels,num_classes,size", [(2, 3, (128, 160)), (5, 14, (64, 96)), (3, 1, (96, 64))])
def test_any_channels_and_multiple_of_32_sizes(in_channels, num_classes, size):
    model = SMAFormerV2(in_channels=in_channels, num_classes=num_classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, *size))
    assert out.shape == (2, num_classes, *size)
    assert torch.isfinite(out).all()


def test_window7_runs_without_input_padding():
    # Window 7 does not tile the 64/32/16/8 feature maps of a 256 input. The authors padded the image to
    # 280 (19.0 GMACs); here the encoder sees it as it is and only attention pads its windows.
    torch.manual_seed(0)
    model = SMAFormerV2(in_channels=1, num_classes=2, window_size=7).eval()
    first_attention = model.encoder.swin_blocks()[0].attn
    assert first_attention.relative_position_bias_table.shape[0] == (2 * 7 - 1) ** 2
    seen = {}

    def record(module, args, out):  # returns None: the forward pass is left as it is
        seen["input"], seen["features"] = tuple(args[0].shape), [tuple(f.shape[-2:]) for f in out]

    model.encoder.register_forward_hook(record)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(torch.randn(1, 1, 256, 256))
    assert out.shape == (1, 2, 256, 256) and torch.isfinite(out).all()
    assert seen["input"] == (1, 3, 256, 256)
    assert seen["features"] == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert counter.get_total_flops() / 2e9 < 17.0


@pytest.mark.parametrize("shape,match", [((1, 1, 100, 128), "multiples of 32"), ((1, 3, 64, 64), r"\[B, 1, H, W\]")])
def test_bad_inputs_raise_value_error(shape, match):
    model = SMAFormerV2(in_channels=1, num_classes=2)
    with pytest.raises(ValueError, match=match):
        model(torch.randn(*shape))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError):
        SMAFormerV2(in_channels=0, num_classes=2)
    with pytest.raises(ValueError, match="img_size"):
        SMAFormerV2(in_channels=1, num_classes=2, img_size=250)


def test_every_parameter_receives_a_gradient():
    # DDP (no find_unused_parameters) needs every parameter in the graph of the training loss.
    torch.manual_seed(0)
    model = SMAFormerV2(in_channels=2, num_classes=3, deep_supervision=True, drop_path_rate=0.0).train()
    outputs = model(torch.randn(2, 2, 64, 64))
    sum(o.float().pow(2).mean() for o in outputs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert no_grad == []


def test_eval_mode_is_deterministic(model_ds):
    model_ds.eval()
    x = torch.randn(2, 1, 128, 128)
    with torch.no_grad():
        first = model_ds(x)
        second = model_ds(x)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_forward_cost_without_padding_is_about_16_gmacs():
    model = SMAFormerV2(in_channels=1, num_classes=9).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 1, 256, 256))
    gmacs = counter.get_total_flops() / 2e9
    assert 14.0 < gmacs < 17.0, gmacs


def test_shifted_window_masks_are_cached_per_feature_size():
    from timm.models.swin_transformer import SwinTransformerBlock

    block = SMAFormerV2(in_channels=1, num_classes=2).encoder.swin_blocks()[1]  # shifted, 64x64 at 256 input
    for size in (16, 32):
        x = torch.zeros(1, size, size, 96)
        mask = block.get_attn_mask(x)
        assert block.get_attn_mask(x) is mask
        assert torch.equal(mask, SwinTransformerBlock.get_attn_mask(block, x))
        assert mask.shape == ((size // 8) ** 2, 64, 64)


@pytest.mark.parametrize("encoder_sma,decoder_sma", [(False, False), (False, True), (True, False)])
def test_sma_ablations_remove_exactly_the_sma_parts(encoder_sma, decoder_sma):
    from nnunetv2_smaformer.network.decoder import SMATransformerBlock

    full = SMAFormerV2(in_channels=1, num_classes=4, deep_supervision=True)
    ablated = SMAFormerV2(in_channels=1, num_classes=4, deep_supervision=True, encoder_sma=encoder_sma,
                          decoder_sma=decoder_sma)
    # The SMA parts, counted from the full network's module tree: SMA modules outside the decoder's blocks (the
    # encoder's four) and the decoder's SMA transformer blocks (their SMA, E-MLP and norms).
    in_blocks = {id(m) for block in full.modules() if isinstance(block, SMATransformerBlock) for m in block.modules()}
    encoder_parts = [m for m in full.modules() if isinstance(m, SMA) and id(m) not in in_blocks]
    decoder_parts = [m for m in full.modules() if isinstance(m, SMATransformerBlock)]
    assert len(encoder_parts) == 4 and len(decoder_parts) == 6
    removed = (0 if encoder_sma else sum(map(n_params, encoder_parts))) + (
        0 if decoder_sma else sum(map(n_params, decoder_parts)))
    assert n_params(full) - n_params(ablated) == removed > 0
    # What stays is the full network's, key for key: the ablated state dict loads into the full network's subset.
    full_keys = set(full.state_dict())
    assert set(ablated.state_dict()) <= full_keys
    assert any(isinstance(m, SMA) for m in ablated.encoder.modules()) == encoder_sma
    outputs = ablated(torch.randn(2, 1, 64, 64))
    assert [tuple(o.shape) for o in outputs] == [(2, 4, 64, 64), (2, 4, 16, 16), (2, 4, 8, 8), (2, 4, 4, 4)]
    sum(o.float().mean() for o in outputs).backward()
    assert all(p.grad is not None for p in ablated.parameters())


def test_ablation_trainers_build_the_ablated_networks():
    from nnunetv2_smaformer.training import (
        nnUNetTrainerSMAFormerV2_noDecoderSMA,
        nnUNetTrainerSMAFormerV2_noEncoderSMA,
        nnUNetTrainerSMAFormerV2_noSMA,
    )

    def built(trainer):
        return trainer.build_network_architecture(None, None, 1, 3, enable_deep_supervision=False)

    no_sma, no_encoder, no_decoder = map(built, (nnUNetTrainerSMAFormerV2_noSMA, nnUNetTrainerSMAFormerV2_noEncoderSMA,
                                                 nnUNetTrainerSMAFormerV2_noDecoderSMA))
    assert n_params(no_sma.encoder.sma) == n_params(no_encoder.encoder.sma) == 0 < n_params(no_decoder.encoder.sma)
    assert all(len(stage.blocks) == 0 for stage in [*no_sma.decoder.stages, *no_decoder.decoder.stages])
    assert all(len(stage.blocks) == 2 for stage in no_encoder.decoder.stages)
