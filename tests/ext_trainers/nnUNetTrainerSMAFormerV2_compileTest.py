"""Test-only trainer: the smoke budget with ``torch.compile`` forced on, as nnU-Net does on a GPU."""
import json

import torch._inductor.config
from torch._dynamo.utils import counters

from nnunetv2_smaformer.training.variants import nnUNetTrainerSMAFormerV2_smoke

#: Log line prefix of the compile counters (read by tests/test_compile_amp.py).
COUNTERS_MARKER = "torch.compile counters: "


class nnUNetTrainerSMAFormerV2_compileTest(nnUNetTrainerSMAFormerV2_smoke):
    """4 training and 2 validation iterations of 64x64 patches (the test dataset's slices), compiled; the shipped
    network (stochastic depth 0.2) initialised from ImageNet weights, as users compile it.

    nnU-Net compiles by default on CUDA only; this trainer compiles on the CPU too so that CI runs the path GPU
    users take. inductor draws random numbers as eager does (``fallback_random``; dynamo's graphs, their breaks and
    recompilations are unchanged by it), so that the test's in-process compiled step equals eager under one seed
    and this run reuses those graphs from inductor's cache. The compile counters go to the training log after the
    final validation.
    """

    training_patch_size = (64, 64)
    use_pretrained = True
    iterations_per_epoch = 4
    val_iterations_per_epoch = 2

    def _do_i_compile(self) -> bool:
        torch._inductor.config.fallback_random = True
        return True

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        super().perform_actual_validation(save_probabilities)
        summary = {group: dict(values) for group, values in counters.items()
                   if group in ("stats", "graph_break", "inductor", "aot_autograd")}
        self.print_to_log_file(COUNTERS_MARKER + json.dumps(summary, default=str))
