"""Trainer pieces without nnU-Net's CLI: network builder signatures, schedule, batch cap, the trainer under DDP."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
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


def _checksum(trainer) -> torch.Tensor:
    return torch.stack([p.detach().double().sum() for p in trainer.network.parameters()])


def _ddp_trainer_worker(rank: int, world_size: int, port: int, out_dir: str, env: dict) -> None:
    """One rank: the trainer's own set-up (nnU-Net's initialize with ours, ImageNet weights through the DDP wrapper),
    training steps with the non-finite guard agreed over the ranks, and nnU-Net's epoch-end loss gathering."""
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as nnunet_trainer_module
    from nnunetv2.run.run_training import get_trainer_from_args

    from ext_trainers.nnUNetTrainerSMAFormerV2_testing import nnUNetTrainerSMAFormerV2_smokeImageNet
    from nnunetv2_smaformer.training.trainer import unwrap_network, weight_decay_groups

    os.environ.update(env)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), nnUNet_n_proc_DA="0")
    torch.set_num_threads(1)
    # nnU-Net's DDP set-up is CUDA-only: under an initialised process group its trainer moves itself to cuda:rank,
    # converts BatchNorm to SyncBatchNorm (GPU kernels) and gives DDP device_ids. So the trainer is built before the
    # group (it stays on the CPU) and told it runs under DDP, and the two CUDA-only calls take their CPU form.
    trainer = get_trainer_from_args("Dataset501_TinyCT", "2d", 0, nnUNetTrainerSMAFormerV2_smokeImageNet.__name__,
                                    device=torch.device("cpu"))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    trainer.is_ddp, trainer.local_rank = True, rank
    nnunet_trainer_module.DDP = lambda network, device_ids=None: DistributedDataParallel(network)
    torch.nn.SyncBatchNorm.convert_sync_batchnorm = classmethod(lambda cls, module, process_group=None: module)
    try:
        torch.manual_seed(rank)  # different initialisation per rank: DDP must broadcast rank 0's
        trainer.on_train_start()  # initialize(), loaders, ImageNet weights into the unwrapped network
        network = unwrap_network(trainer.network)
        record = {"wrapped": type(trainer.network).__name__, "unwrapped": type(network).__name__,
                  "patch_embed": network.encoder.swin.patch_embed.proj.weight.detach().clone(),
                  "no_decay": sum(len(g["params"]) for g in trainer.optimizer.param_groups if g["weight_decay"] == 0),
                  "no_decay_rule": len(weight_decay_groups(network, 0.01)[1]["params"])}
        trainer.on_train_epoch_start()
        batch = next(trainer.dataloader_train)
        outputs = [trainer.train_step(batch), trainer.train_step(batch)]
        record["after_steps"] = _checksum(trainer)
        nan_batch = dict(batch, data=torch.full_like(batch["data"], float("nan"))) if rank == 1 else batch
        outputs.append(trainer.train_step(nan_batch))  # one rank's NaN: every rank skips the step
        record["after_skipped"] = _checksum(trainer)
        record["skipped"] = trainer.nonfinite_guard.epoch_skipped
        outputs.append(trainer.train_step(batch))
        record["after_last"] = _checksum(trainer)
        trainer.on_train_epoch_end(outputs)
        record["train_loss"] = float(trainer.logger.get_value("train_losses", step=-1))
        record["losses"] = [float(o["loss"]) for o in outputs]
        trainer.set_deep_supervision_enabled(False)  # nnU-Net's own method, through the DDP wrapper
        record["deep_supervision_off"] = network.decoder.deep_supervision is False
        torch.save(record, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_trainer_under_ddp_two_processes_gloo(ct, official_checkpoint, tmp_path):
    env = {k: v for k, v in ct.items() if k.startswith("nnUNet_")}  # the folders and both trainer folders
    env["SMAFORMER_SWIN_WEIGHTS"] = str(official_checkpoint)
    mp.spawn(_ddp_trainer_worker, args=(2, _free_port(), str(tmp_path), env), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    official = torch.load(official_checkpoint, weights_only=True)["model"]["patch_embed.proj.weight"]
    for record in ranks:
        assert record["wrapped"] == "DistributedDataParallel" and record["unwrapped"] == "SMAFormerV2"
        # ImageNet weights reached the network through the DDP wrapper (rank 0's, broadcast by DDP).
        assert torch.equal(record["patch_embed"], official)
        assert record["no_decay"] == record["no_decay_rule"] > 0
        assert record["skipped"] == 1 and np.isnan(record["losses"][2])
        assert record["deep_supervision_off"]
        assert np.isfinite(record["train_loss"])
        # The skipped step changed nothing; the others changed the weights.
        assert torch.equal(record["after_skipped"], record["after_steps"])
        assert not torch.equal(record["after_last"], record["after_skipped"])
    for key in ("after_steps", "after_skipped", "after_last"):
        assert torch.equal(ranks[0][key], ranks[1][key]), f"ranks diverged ({key})"
    # nnU-Net's epoch loss: the mean over every rank's steps, the skipped one left out on every rank.
    taken = [r["losses"][i] for r in ranks for i in (0, 1, 3)]
    assert ranks[0]["train_loss"] == ranks[1]["train_loss"] == pytest.approx(np.mean(taken), rel=1e-6)


def test_the_benchmark_trainers_build_and_step(ct, monkeypatch, tmp_path):
    """nnU-Net's 5-epoch benchmark trainers with SMAFormerV2 (CUDA-only by nnU-Net's assertion, patched here)."""
    from nnunet_cli import trainer_in_process
    from nnunetv2_smaformer.training.trainer import unwrap_network

    for name in ("nnUNetTrainerSMAFormerV2_Benchmark_5epochs",
                 "nnUNetTrainerSMAFormerV2_Benchmark_5epochs_noDataLoading"):
        with monkeypatch.context() as cuda:  # for the assertion in nnU-Net's constructor only
            cuda.setattr(torch.cuda, "is_available", lambda: True)
            trainer = trainer_in_process(ct, monkeypatch, "Dataset501_TinyCT", name, fold=0)  # nnU-Net's: fold 0
        assert trainer.num_epochs == 5 and trainer.configuration_manager.patch_size == [256, 256]
        trainer.initialize()
        assert isinstance(unwrap_network(trainer.network), SMAFormerV2)
        trainer.save_checkpoint(str(tmp_path / "checkpoint.pth"))  # nnU-Net's benchmark trainers save nothing
        assert not (tmp_path / "checkpoint.pth").exists()
    # The data-free one trains on its fixed batch, shaped for SMAFormerV2's deep supervision.
    batch = trainer.dummy_batch
    assert [t.shape[-1] for t in batch["target"]] == [256, 64, 32, 16]
    trainer.on_train_epoch_start()
    assert np.isfinite(trainer.train_step(batch)["loss"])


def test_the_weights_file_wins_over_the_hugging_face_cache(official_checkpoint, official_state_dict, hf_home,
                                                          offline_hub, monkeypatch, tmp_path):
    from swin_checkpoints import write_hf_cache

    key = "patch_embed.proj.weight"
    cached = dict(hf_home[1], **{key: hf_home[1][key] + 1.0})  # the cache's weights differ from the file's
    offline_hub(write_hf_cache(tmp_path / "hf", cached))
    monkeypatch.setenv("SMAFORMER_SWIN_WEIGHTS", str(official_checkpoint))
    trainer = object.__new__(nnUNetTrainerSMAFormerV2)  # imagenet_weights reads the environment only
    weights = trainer.imagenet_weights()
    assert weights.source == str(official_checkpoint)
    assert torch.equal(weights.state[key], official_state_dict[key])
    monkeypatch.delenv("SMAFORMER_SWIN_WEIGHTS")  # without the variable: the cache
    assert torch.equal(trainer.imagenet_weights().state[key], cached[key])
