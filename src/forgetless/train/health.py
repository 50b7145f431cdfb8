"""Numerical health of the training loop: non-finite steps are skipped and counted, and loss spikes
are logged. The loop rolls back when `consecutive_bad` reaches `reliability.max_bad_steps`.

No host sync per step. `guard_step` makes the optimizer step a no-op on the device when the step's
loss or gradient norm is not finite: fused AdamW takes a `found_inf` tensor (the mechanism of
`torch.amp.GradScaler`) and then leaves parameters, moments and its step count untouched inside
the kernel. Only an optimizer without that support needs the flag on the host, one sync per step.
Each step's loss and gradient norm stay on the device until the next log interval or checkpoint,
where `drain` reads them all in one transfer and writes one `event` line per skipped step and per
loss spike. A skipped step still consumes its batch and its place in the LR schedule.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

import torch

from forgetless.config import ReliabilityConfig
from forgetless.train.metrics_log import MetricsLog


class StepHealth:
    """The numerical record of one stage's steps since its start (or since a rollback)."""

    def __init__(self, config: ReliabilityConfig, log: MetricsLog, stage: str, display: Any = None) -> None:
        self.config = config
        self.log = log
        self.stage = stage
        self.display = display
        self.consecutive_bad = 0  # non-finite steps in a row, up to the last drained step
        self._pending: list[tuple[int, torch.Tensor]] = []  # (step, [loss, grad_norm]) on the device
        self._recent: deque[float] = deque(maxlen=config.spike_window)
        self._window_loss = 0.0
        self._window_good = 0
        self._window_skipped = 0

    @staticmethod
    def guard_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, grad_norm: torch.Tensor) -> bool:
        """Make `optimizer.step()` change nothing if `loss` or `grad_norm` is not finite.

        Returns whether to call `optimizer.step()` at all: always for fused AdamW (the skip happens on
        the device), else the finiteness read on the host.
        """
        finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
        if optimizer.defaults.get("fused"):
            optimizer.found_inf = (~finite).to(torch.float32)  # type: ignore[attr-defined]
            return True
        return bool(finite)

    def record(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Keep step `step`'s mean loss and gradient norm (device tensors) for the next `drain`."""
        self._pending.append((step, torch.stack((loss.detach().float(), grad_norm.detach().float()))))

    def drain(self) -> int:
        """Read the recorded steps from the device, log their faults; return how many were skipped."""
        if not self._pending:
            return 0
        values = torch.stack([v for _, v in self._pending]).tolist()  # the one host transfer
        skipped = 0
        for (step, _), (loss, grad_norm) in zip(self._pending, values, strict=True):
            if math.isfinite(loss) and math.isfinite(grad_norm):
                self.consecutive_bad = 0
                self._window_loss += loss
                self._window_good += 1
                self._check_spike(step, loss)
                continue
            skipped += 1
            self.consecutive_bad += 1
            bad = [name for name, v in (("loss", loss), ("grad_norm", grad_norm)) if not math.isfinite(v)]
            self.log.write(
                {
                    "kind": "event",
                    "event": "nonfinite_step",
                    "step": step,
                    "stage": self.stage,
                    "nonfinite": bad,
                    "loss": loss,
                    "grad_norm": grad_norm,
                    "consecutive": self.consecutive_bad,
                    "action": "skipped",
                }
            )
            if self.display is not None:
                self.display.message(
                    f"step {step:,}: {' and '.join(bad)} not finite (loss {loss}, gradient norm {grad_norm}); "
                    f"update skipped ({self.consecutive_bad} in a row)"
                )
        self._pending.clear()
        self._window_skipped += skipped
        return skipped

    def take_window(self) -> tuple[float, int]:
        """The mean loss of the finite steps drained since the last call (NaN if none) and the
        number of skipped steps; starts a new window."""
        mean = self._window_loss / self._window_good if self._window_good else math.nan
        skipped = self._window_skipped
        self._window_loss, self._window_good, self._window_skipped = 0.0, 0, 0
        return mean, skipped

    def _check_spike(self, step: int, loss: float) -> None:
        recent = self._recent
        if len(recent) == recent.maxlen:
            median = statistics.median(recent)
            if median > 0 and loss > self.config.spike_factor * median:
                self.log.write(
                    {
                        "kind": "event",
                        "event": "loss_spike",
                        "step": step,
                        "stage": self.stage,
                        "loss": loss,
                        "median": median,
                        "ratio": loss / median,
                        "window": len(recent),
                    }
                )
                if self.display is not None:
                    self.display.message(
                        f"step {step:,}: loss spike {loss:.4g}, {loss / median:.1f}x the median of the last "
                        f"{len(recent)} steps"
                    )
        recent.append(loss)
