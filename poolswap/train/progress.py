"""Progress of a fine-tune epoch: a tqdm bar on a terminal, a log line every N steps elsewhere."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["Progress"]

logger = logging.getLogger("poolswap.train")


class Progress:
    """A tqdm bar on a terminal; a log line every ``log_every`` steps elsewhere (files, CI)."""

    def __init__(self, *, total: int, initial: int, epoch: int, epochs: int, enabled: bool, log_every: int) -> None:
        self.total, self.step, self.enabled, self.log_every = total, initial, enabled, log_every
        self.desc = f"epoch {epoch + 1}/{epochs}"
        self.start, self.start_step = time.perf_counter(), initial
        self.bar = None
        self._redirect = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.bar = tqdm(total=total, initial=initial, desc=self.desc, dynamic_ncols=True, leave=True)
            self._redirect = logging_redirect_tqdm()  # log lines print above the bar, not through it
            self._redirect.__enter__()

    def update(self, **stats: float) -> None:
        self.step += 1
        text = {k: f"{v:.4g}" for k, v in stats.items() if v is not None}
        if self.bar is not None:
            self.bar.set_postfix(text, refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.step % self.log_every == 0 or self.step == self.total):
            elapsed = time.perf_counter() - self.start
            done = self.step - self.start_step
            eta = elapsed / done * (self.total - self.step) if done else float("nan")
            details = " ".join(f"{k} {v}" for k, v in text.items())
            logger.info("%s step %d/%d %s eta %.0fs", self.desc, self.step, self.total, details, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self._redirect.__exit__(None, None, None)
