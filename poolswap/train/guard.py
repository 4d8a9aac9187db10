"""The collapse guard: notice when a fine-tune destroys the network, and say what rate to try.

It watches two things against where the run started: the student's top-1 agreement with
the teacher on the training batches (a short running window against the first batch,
whose logits come before any update), and, at each epoch end, validation top-1 and
agreement against an evaluation made before training. Falling below ``ratio`` (half) of
the start is a collapse: one warning per run, naming a rate ten times lower, and the
epoch does not count for ``best`` (so ``best`` keeps the weights from before it).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Optional

__all__ = ["CollapseGuard"]

logger = logging.getLogger("poolswap.train")


class CollapseGuard:
    """Per-run collapse detection; its state travels in the resume state."""

    def __init__(self, lr: float, *, batch_size: int, ratio: float = 0.5, watch_agreement: bool = True) -> None:
        self.lr = float(lr)
        # a fine-tune on labels alone (alpha 0) is meant to leave the teacher: only its top-1 is watched
        self.watch_agreement = watch_agreement
        self.ratio = float(ratio)
        # about 64 images per window, so one unlucky small batch is not a collapse
        self.window = min(8, max(2, math.ceil(64 / max(1, batch_size))))
        self.reference: Optional[float] = None
        self.recent: deque = deque(maxlen=self.window)
        self.message: Optional[str] = None  # the warning, once given
        self.epoch_collapsed = False

    def advice(self) -> str:
        return f"try --lr {self.lr / 10:g} (or --lr auto)"

    def _warn(self, what: str) -> None:
        self.epoch_collapsed = True
        if self.message is None:
            self.message = (f"the fine-tune is collapsing: {what} at lr {self.lr:g}; {self.advice()}; "
                            "best.safetensors keeps the weights from before the collapse")
            logger.warning("%s", self.message)

    def start_epoch(self) -> None:
        self.epoch_collapsed = False

    def observe_batch(self, agreement: float, *, epoch: int, step: int) -> None:
        """``agreement``: this training batch's student/teacher top-1 agreement (logits before the update)."""
        if not self.watch_agreement:
            return
        if self.reference is None:
            self.reference = float(agreement)
            return
        self.recent.append(float(agreement))
        if len(self.recent) < 2 or self.reference <= 0:
            return
        mean = sum(self.recent) / len(self.recent)
        if mean < self.ratio * self.reference:
            self._warn(f"agreement with the teacher on training batches fell from {self.reference:.2f} to {mean:.2f} "
                       f"by epoch {epoch + 1}, step {step + 1}")

    def observe_validation(self, start: Optional[dict], row: dict, *, epoch: int) -> None:
        """Compare an epoch's validation metrics with those measured before training."""
        if not start:
            return
        for key, name in (("val_agreement", "validation agreement with the teacher"), ("val_top1", "validation top-1")):
            if key == "val_agreement" and not self.watch_agreement:
                continue
            before, now = start.get(key), row.get(key)
            if before is not None and now is not None and before > 0 and now < self.ratio * before:
                self._warn(f"{name} fell from {before:.2f} to {now:.2f} by the end of epoch {epoch + 1}")
                return

    def state_dict(self) -> dict:
        return {"reference": self.reference, "recent": list(self.recent), "message": self.message,
                "epoch_collapsed": self.epoch_collapsed}

    def load_state_dict(self, state: Optional[dict]) -> None:
        if not state:
            return
        self.reference = state.get("reference")
        self.recent.clear()
        self.recent.extend(state.get("recent", []))
        self.message = state.get("message")
        self.epoch_collapsed = bool(state.get("epoch_collapsed", False))
