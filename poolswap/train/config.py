"""``FinetuneConfig``: every knob of a fine-tune, validated once, written to ``args.yaml``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from ..errors import PoolswapError

__all__ = ["FinetuneConfig", "OPTIMIZERS", "AMP_MODES"]

OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("bf16", "fp16")


@dataclass
class FinetuneConfig:
    """How to fine-tune a converted network against its original (the teacher).

    Distillation: ``loss = alpha * T^2 * KL(student/T || teacher/T) + (1 - alpha) * CE``;
    on unlabelled data (or ``alpha=1``) it is pure distillation.
    """

    # schedule
    epochs: int = 1
    batch_size: int = 32
    max_steps_per_epoch: Optional[int] = None  # stop an epoch early (quick runs, smoke tests)
    # optimiser
    optimizer: str = "sgd"
    lr: float = 1e-3
    beta_lr: Optional[float] = None  # learning rate of SoftPool's log-betas; None: same as lr
    momentum: float = 0.9
    weight_decay: float = 1e-4  # never applied to norms, biases or betas
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    clip_grad: Optional[float] = None  # max global L2 norm of the gradients
    freeze_bn: bool = False  # keep BatchNorm running statistics as they are
    only_betas: bool = False  # train the SoftPool betas alone (weights frozen for the run)
    amp: Optional[str] = None  # "bf16" or "fp16", CUDA only
    # distillation
    alpha: float = 0.5
    temperature: float = 2.0
    # zero-shot calibration of the betas before training (number of batches; 0: off)
    calibrate: int = 0
    # run
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    checkpoint_every: int = 0  # also save the resume state every N steps (0: at epoch ends only)
    log_every: int = 20
    hflip: bool = False  # random horizontal flips of training images (seeded per sample)
    data_config: dict = field(default_factory=dict)  # overrides of the model's data config

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def positive_int(name: str, value: Any, minimum: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise PoolswapError(f"{name} must be an integer >= {minimum}, got {value!r}")

        def positive(name: str, value: Any, allow_zero: bool = False) -> None:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (value == 0 and not allow_zero):
                raise PoolswapError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")

        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        if self.max_steps_per_epoch is not None:
            positive_int("max_steps_per_epoch", self.max_steps_per_epoch)
        if self.optimizer not in OPTIMIZERS:
            raise PoolswapError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        positive("lr", self.lr)
        if self.beta_lr is not None:
            positive("beta_lr", self.beta_lr, allow_zero=True)
        positive("momentum", self.momentum, allow_zero=True)
        positive("weight_decay", self.weight_decay, allow_zero=True)
        positive_int("warmup_steps", self.warmup_steps, 0)
        positive("min_lr_ratio", self.min_lr_ratio, allow_zero=True)
        if self.min_lr_ratio > 1:
            raise PoolswapError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.clip_grad is not None:
            positive("clip_grad", self.clip_grad)
        if self.amp is not None and self.amp not in AMP_MODES:
            raise PoolswapError(f"amp must be one of {', '.join(AMP_MODES)} (or off), got {self.amp!r}")
        positive("alpha", self.alpha, allow_zero=True)
        if self.alpha > 1:
            raise PoolswapError(f"alpha must be in [0, 1], got {self.alpha}")
        positive("temperature", self.temperature)
        positive_int("calibrate", self.calibrate, 0)
        positive_int("seed", self.seed, 0)
        positive_int("workers", self.workers, 0)
        positive_int("checkpoint_every", self.checkpoint_every, 0)
        positive_int("log_every", self.log_every, 1)
        if not isinstance(self.data_config, dict):
            raise PoolswapError("data_config must be a dict of data-config overrides")

    @property
    def effective_beta_lr(self) -> float:
        return self.lr if self.beta_lr is None else self.beta_lr

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FinetuneConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise PoolswapError(f"unknown fine-tune settings: {', '.join(unknown)}")
        return cls(**values)
