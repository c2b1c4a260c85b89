"""Learning-rate schedule stepped once per epoch, the way nnU-Net steps its schedulers."""
from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler


class WarmupCosineLRScheduler(_LRScheduler):
    """Linear warm-up from ``initial_lr / (warmup_steps + 1)``, then cosine annealing to ``min_lr``.

    nnU-Net calls ``step(current_epoch)`` at every epoch start, so a resumed training lands
    on the right learning rate without scheduler state.

    Args:
        optimizer: Optimizer whose groups all get the same rate.
        initial_lr: Peak learning rate, reached after the warm-up.
        max_steps: Total steps (epochs) of the schedule.
        warmup_steps: Steps of linear warm-up (0 disables it).
        min_lr: Rate at the end of the cosine.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        initial_lr: float,
        max_steps: int,
        warmup_steps: int = 0,
        min_lr: float = 1e-6,
        current_step: int | None = None,
    ) -> None:
        if max_steps < 1 or not 0 <= warmup_steps < max(max_steps, 1):
            raise ValueError(f"need 0 <= warmup_steps < max_steps, got {warmup_steps} and {max_steps}")
        self.initial_lr = initial_lr
        self.max_steps = max_steps
        self.warmup_steps = warmup_steps
        self.min_lr = min(min_lr, initial_lr)
        self.ctr = 0
        super().__init__(optimizer, current_step if current_step is not None else -1)

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial_lr * (step + 1) / (self.warmup_steps + 1)
        span = max(self.max_steps - self.warmup_steps, 1)
        progress = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return self.min_lr + 0.5 * (self.initial_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def step(self, current_step: int | None = None) -> None:  # type: ignore[override]
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        lr = self.lr_at(current_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return self._last_lr
