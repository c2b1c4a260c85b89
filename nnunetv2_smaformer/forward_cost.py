"""A network's forward cost in GMACs, counted as ``smaformer summary``, ``compare`` and the network side-by-side
report it."""
from __future__ import annotations

from collections.abc import Sequence

from nnunetv2_smaformer.nnunet_bridge import set_deep_supervision


def count_gmacs(network, input_shape: Sequence[int]) -> float:
    """Forward cost of ``network`` on one zero input of ``input_shape`` (``[1, C, *spatial]``) in GMACs.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls, attention), in eval mode without
    gradients and without deep supervision; 1 MAC = 2 FLOPs. The network's training mode is restored afterwards.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = network.training
    network.eval()
    set_deep_supervision(network, False)
    device = next(network.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(*input_shape, device=device))
    network.train(was_training)
    return counter.get_total_flops() / 2e9
