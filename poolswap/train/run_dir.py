"""The run directory: ``args.yaml``, ``summary.csv``, ``last``/``best`` checkpoints, TensorBoard logs.

Every file is written atomically (temporary file, then rename), so a run killed
at any moment leaves each file either as it was or as it was meant to be. Only
the main rank writes.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

from torch import nn

from .._atomic import atomic_write_text
from ..errors import PoolswapError, first_line
from .resume import RESUME_FILE

__all__ = ["RunDir", "SUMMARY_FIELDS", "save_checkpoint"]

logger = logging.getLogger(__name__)

ARGS_FILE = "args.yaml"
SUMMARY_FILE = "summary.csv"
LAST = "last.safetensors"
BEST = "best.safetensors"
TENSORBOARD_DIR = "tensorboard"
SUMMARY_FIELDS = (
    "epoch", "train_loss", "train_top1", "train_top5", "train_agreement",
    "val_top1", "val_top5", "val_top1_subset", "val_agreement", "lr", "beta_mean", "time_s",
)
_RUN_FILES = (ARGS_FILE, SUMMARY_FILE, LAST, BEST, RESUME_FILE)


def save_checkpoint(model: nn.Module, path: os.PathLike, *, spec: Optional[str] = None) -> None:
    """Save ``model`` in poolswap's model format (``poolswap.save``: atomic; ``poolswap.load`` restores it)."""
    from ..surgery import save

    save(model, path, spec=spec)


class RunDir:
    """A fine-tune's output folder; ``enabled=False`` (ranks other than 0) makes every write a no-op."""

    def __init__(self, path: os.PathLike, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._writer: Any = None

    # files
    @property
    def args_file(self) -> Path:
        return self.path / ARGS_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def resume_file(self) -> Path:
        return self.path / RESUME_FILE

    def holds_run(self) -> bool:
        return any((self.path / name).exists() for name in _RUN_FILES)

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Check the folder may be used: refuse to mix two runs unless resuming or overwriting."""
        if self.path.exists() and not self.path.is_dir():
            raise PoolswapError(f"run directory {self.path} exists and is not a folder")
        if resume:
            if not self.resume_file.is_file():
                raise PoolswapError(f"cannot resume: {self.path} holds no {RESUME_FILE}")
            return
        if self.holds_run() and not overwrite:
            if self.resume_file.is_file():
                raise PoolswapError(f"run directory {self.path} already holds a run; pass --resume {self.path} to "
                                    "continue it or --overwrite to replace it")
            raise PoolswapError(f"run directory {self.path} holds a run that stopped before it saved any resume "
                                "state; pass --overwrite to start it again, or choose another folder")
        if not self.enabled:
            return
        if overwrite:
            for name in _RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            shutil.rmtree(self.path / TENSORBOARD_DIR, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)

    def abandon(self, created: bool) -> None:
        """After a run failed before its first resume state: remove what it wrote (and the folder it made)."""
        if not self.enabled or self.resume_file.exists():
            return
        for name in _RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / TENSORBOARD_DIR, ignore_errors=True)
        if created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def write_args(self, args: dict) -> None:
        if not self.enabled:
            return
        import yaml

        atomic_write_text(self.args_file, yaml.safe_dump(args, sort_keys=False))

    def read_args(self) -> dict:
        import yaml

        try:
            return yaml.safe_load(self.args_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PoolswapError(f"cannot read {self.args_file}: {first_line(exc)}") from None

    def write_summary(self, rows: Sequence[dict]) -> None:
        """Rewrite ``summary.csv`` from the whole history (so a resumed run never duplicates a row)."""
        if not self.enabled:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else _fmt(row.get(k))) for k in SUMMARY_FIELDS})
        atomic_write_text(self.summary_file, buffer.getvalue())

    def save_checkpoint(self, model: nn.Module, which: str, *, spec: Optional[str] = None) -> None:
        if self.enabled:
            save_checkpoint(model, self.last if which == "last" else self.best, spec=spec)

    # TensorBoard, when it is installed
    def log_scalars(self, values: dict, step: int) -> None:
        if not self.enabled:
            return
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._writer = False
            else:
                self._writer = SummaryWriter(str(self.path / TENSORBOARD_DIR))
        if self._writer:
            for key, value in values.items():
                if value is not None:
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer:
            self._writer.close()
        self._writer = None


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
