"""Trainer pieces without nnU-Net's CLI: network builder signatures, schedule, batch cap, DDP."""
from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from torch.nn.parallel import DistributedDataParallel

from nnunetv2_smaformer import SMAFormerV2
from nnunetv2_smaformer.training import nnUNetTrainerSMAFormerV2, nnUNetTrainerSMAFormerV2_noEdge
from nnunetv2_smaformer.training.lr_scheduler import WarmupCosineLRScheduler
from nnunetv2_smaformer.training.trainer import DEEP_SUPERVISION_SCALES, capped_batch_size


def test_batch_size_cap_follows_nnunet():
    # Synapse: 18 training volumes of ~147 x 512 x 512 allow the original's 28.
    assert capped_batch_size(28, 18 * 147 * 512 * 512, (256, 256)) == 28
    # 5 % of 40 slices of 256 x 256 is 2 patches; tiny data never go below 2.
    assert capped_batch_size(28, 40 * 256 * 256, (256, 256)) == 2
    assert capped_batch_size(28, 100 * 256 * 256, (256, 256)) == 5
    assert capped_batch_size(28, 1_000, (256, 256)) == 2


@pytest.mark.parametrize(
    "args,kwargs",
    [
        ((None, None, 2, 5, True), {}),  # nnU-Net 2.8 training call
        ((None, None, 2, 5), {"enable_deep_supervision": False}),  # nnU-Net 2.8 inference call
    ],
)
def test_build_network_architecture_signatures(args, kwargs):
    network = nnUNetTrainerSMAFormerV2.build_network_architecture(*args, **kwargs)
    assert isinstance(network, SMAFormerV2)
    assert network.in_channels == 2 and network.num_classes == 5
    assert network.decoder.deep_supervision == kwargs.get("enable_deep_supervision", True)


def test_variant_network_kwargs():
    network = nnUNetTrainerSMAFormerV2_noEdge.build_network_architecture(None, None, 1, 3, True)
    assert isinstance(network.decoder.head.seg_layers, torch.nn.Conv2d)


def test_deep_supervision_scales_match_network_outputs():
    network = nnUNetTrainerSMAFormerV2.build_network_architecture(None, None, 1, 2, True).eval()
    with torch.no_grad():
        outputs = network(torch.zeros(1, 1, 256, 256))
    assert [[o.shape[-2] / 256, o.shape[-1] / 256] for o in outputs] == [list(s) for s in DEEP_SUPERVISION_SCALES]


def test_warmup_cosine_schedule():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = WarmupCosineLRScheduler(optimizer, initial_lr=3e-4, max_steps=100, warmup_steps=4, min_lr=1e-6)
    rates = []
    for epoch in range(100):
        scheduler.step(epoch)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(3e-4 / 5)
    assert rates[3] == pytest.approx(3e-4 * 4 / 5)
    assert rates[4] == pytest.approx(3e-4)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))
    assert rates[-1] == pytest.approx(1e-6, abs=1e-6)
    assert rates[52] == pytest.approx(1e-6 + 0.5 * (3e-4 - 1e-6), rel=1e-6)  # half-way through the cosine
    with pytest.raises(ValueError):
        WarmupCosineLRScheduler(optimizer, 3e-4, max_steps=5, warmup_steps=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(rank)  # different initialisation per rank: DDP must broadcast rank 0's
        network = DistributedDataParallel(
            SMAFormerV2(in_channels=1, num_classes=3, deep_supervision=True, img_size=64),
            find_unused_parameters=False,
        )
        # nnU-Net's loss under DDP without compile: weights 1/2^i, last one 1e-6, normalised.
        weights = np.array([1 / 2**i for i in range(len(DEEP_SUPERVISION_SCALES))])
        weights[-1] = 1e-6
        loss_fn = DeepSupervisionWrapper(
            DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": True}, {},
                           weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss),
            weights / weights.sum(),
        )
        optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(100 + rank)
        for _ in range(3):  # unused parameters would fail from the second iteration on
            data = torch.randn(2, 1, 64, 64, generator=generator)
            seg = torch.randint(0, 3, (2, 1, 64, 64), generator=generator).float()
            targets = [seg[..., :: int(1 / s[0]), :: int(1 / s[1])] for s in DEEP_SUPERVISION_SCALES]
            optimizer.zero_grad()
            loss = loss_fn(network(data), targets)
            loss.backward()
            optimizer.step()
        checksum = torch.stack([p.detach().double().sum() for p in network.parameters()])
        gathered = [torch.zeros_like(checksum) for _ in range(world_size)]
        dist.all_gather(gathered, checksum)

        # The stock method must reach the flag through DDP and torch.compile wrappers.
        compiled = SimpleNamespace(is_ddp=True, network=DistributedDataParallel(torch.compile(network.module)))
        nnUNetTrainerSMAFormerV2.set_deep_supervision_enabled(compiled, False)
        flag_off = network.module.decoder.deep_supervision is False
        torch.save({"loss": float(loss), "gathered": gathered, "flag_off": flag_off}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_gloo(tmp_path):
    # nnU-Net also converts BatchNorm to SyncBatchNorm under DDP; SyncBatchNorm runs on GPUs only, so this
    # CPU test covers what can fail here: unused parameters, the deep-supervision loss, rank agreement.
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for result in results:
        assert np.isfinite(result["loss"])
        assert result["flag_off"]
        assert torch.equal(result["gathered"][0], result["gathered"][1]), "ranks diverged"
