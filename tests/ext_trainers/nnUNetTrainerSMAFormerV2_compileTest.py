"""Test-only trainer: the smoke budget with ``torch.compile`` forced on, as nnU-Net does on a GPU."""
import json

from torch._dynamo.utils import counters

from nnunetv2_smaformer.training.variants import nnUNetTrainerSMAFormerV2_smoke

#: Log line prefix of the compile counters (read by tests/test_compile_amp.py).
COUNTERS_MARKER = "torch.compile counters: "


class nnUNetTrainerSMAFormerV2_compileTest(nnUNetTrainerSMAFormerV2_smoke):
    """4 training and 2 validation iterations of 64x64 patches (the test dataset's slices), compiled.

    nnU-Net compiles by default on CUDA only; this trainer compiles on the CPU too so that CI runs the
    path GPU users take. No stochastic depth: the test compares the compiled step with eager on the
    same inputs, and builds the same network in-process so that this run reuses its compiled graphs
    from inductor's cache. The compile counters go to the training log after the final validation.
    """

    training_patch_size = (64, 64)
    network_kwargs = {"drop_path_rate": 0.0}
    iterations_per_epoch = 4
    val_iterations_per_epoch = 2

    def _do_i_compile(self) -> bool:
        return True

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        super().perform_actual_validation(save_probabilities)
        summary = {group: dict(values) for group, values in counters.items()
                   if group in ("stats", "graph_break", "inductor", "aot_autograd")}
        self.print_to_log_file(COUNTERS_MARKER + json.dumps(summary, default=str))
