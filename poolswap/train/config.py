"""``FinetuneConfig``: every knob of a fine-tune, validated once, written to ``args.yaml``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..errors import PoolswapError
from ..options import OptionError, check_choice, check_fraction, check_int, check_number, option

__all__ = ["FinetuneConfig", "OPTIMIZERS", "AMP_MODES", "DEFAULT_LR"]

OPTIMIZERS = ("sgd", "adamw")
DEFAULT_LR = 1e-5
AMP_MODES = ("bf16", "fp16")


@dataclass
class FinetuneConfig:
    """How to fine-tune a converted network against its original (the teacher).

    Distillation: ``loss = alpha * T^2 * KL(student/T || teacher/T) + (1 - alpha) * CE``;
    on unlabelled data (or ``alpha=1``) it is pure distillation. Each setting is
    also a ``poolswap finetune`` flag and a key of a recipe's ``finetune:`` section.
    """

    # schedule
    epochs: int = option(1, "passes over the training data", group="optimisation")
    batch_size: int = option(32, "images per step (per process)", group="data")
    max_steps_per_epoch: Optional[int] = option(None, "stop each epoch after N steps (default: the whole epoch)",
                                                flag="--max-steps", metavar="N", group="data")
    # optimiser
    # The defaults are safe for a pretrained network: AdamW at 1e-5 (about 1% of a from-scratch rate) with a
    # warmup keeps agreement with the teacher, where SGD at 1e-3 destroyed a pretrained SqueezeNet in 4 steps.
    optimizer: str = option("adamw", "optimiser", choices=OPTIMIZERS, group="optimisation")
    lr: Union[float, str] = option(DEFAULT_LR, "peak learning rate (cosine schedule), or 'auto': a short range test "
                                   "picks the largest rate that keeps agreement with the teacher",
                                   metavar="LR|auto", group="optimisation")
    beta_lr: Optional[float] = option(None, "learning rate of learnt betas (default: --lr)", group="optimisation")
    head_lr: Optional[float] = option(None, "learning rate of a new head made by poolswap (study --recipe head, "
                                      "poolswap.model.head.replace_head) (default: --lr)", group="optimisation")
    momentum: float = option(0.9, "SGD momentum (Nesterov)", group="optimisation")
    weight_decay: float = option(1e-4, "weight decay, never on norms, biases or betas", group="optimisation")
    warmup_steps: Optional[int] = option(None, "linear warmup steps (default: 5 percent of the run's steps)",
                                         group="optimisation")
    min_lr_ratio: float = option(0.0, "final lr as a fraction of --lr", group="optimisation")
    clip_grad: Optional[float] = option(None, "clip the gradients' global L2 norm (default: off)", group="optimisation")
    # The student trains in its teacher's (eval) mode by default: with BatchNorm on batch statistics or dropout on,
    # a student equal to its teacher is pushed away from it at every step; without them, distilling an unchanged
    # network changes nothing. Training on labels (a new head, from scratch) wants both back.
    freeze_bn: bool = option(True, "BatchNorm layers normalise with their running statistics and keep them (default: "
                             "on; --update-bn normalises with batch statistics and updates them)",
                             off_flag="--update-bn", group="optimisation")
    dropout: bool = option(False, "keep the student's dropout (and drop-path) active while training (default: off)",
                           group="optimisation")
    only_betas: bool = option(False, "train the learnt SoftPool betas alone, the weights frozen for the run "
                                     "(default: off; a student whose weights are all frozen is refused without it)",
                              group="optimisation")
    amp: Optional[str] = option(None, "mixed precision on CUDA (default: off)", choices=AMP_MODES, group="optimisation")
    # distillation
    # 1 by default: the labels of a folder that holds a few of a pretrained network's classes pull its predictions
    # towards them (alpha 0.5 took the shared SqueezeNet to 0.75 agreement with its original on Imagenette).
    alpha: float = option(1.0, "weight of the distillation term; below 1 mixes in cross-entropy on the data's labels "
                               "(default: 1, pure distillation)", group="distillation")
    temperature: float = option(2.0, "distillation temperature T", group="distillation")
    calibrate: int = option(0, "choose each site's beta on N batches before training (default: 0, off)",
                            metavar="N", group="distillation")
    # run
    seed: int = option(0, "random seed", group="run")
    workers: int = option(0, "data-loading worker processes", group="data")
    device: str = option("auto", "cpu, cuda, cuda:N or auto (this rank's GPU where there is one)", group="data")
    checkpoint_every: int = option(0, "also save the resume state every N steps (default: 0, at epoch ends)",
                                   metavar="N", group="run")
    log_every: int = option(20, "log a progress line every N steps off a terminal", group="run")
    hflip: bool = option(False, "random horizontal flips of training images (default: off)", group="data")
    skip_bad_images: bool = option(False, "skip image files that cannot be decoded, with a warning (default: stop "
                                   "at the first)", group="data")
    data_config: dict = option(help="overrides of the model's data config", default_factory=dict, cli=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        if self.max_steps_per_epoch is not None:
            check_int("max_steps_per_epoch", self.max_steps_per_epoch)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        self.lr = _parse_lr(self.lr)
        if self.lr != "auto":
            check_number("lr", self.lr)
        if self.beta_lr is not None:
            check_number("beta_lr", self.beta_lr, allow_zero=True)
        if self.head_lr is not None:
            check_number("head_lr", self.head_lr)
        check_number("momentum", self.momentum, allow_zero=True)
        check_number("weight_decay", self.weight_decay, allow_zero=True)
        if self.warmup_steps is not None:
            check_int("warmup_steps", self.warmup_steps, 0)
        check_fraction("min_lr_ratio", self.min_lr_ratio)
        if self.clip_grad is not None:
            check_number("clip_grad", self.clip_grad)
        if self.amp is not None:
            check_choice("amp", self.amp, AMP_MODES)
        check_fraction("alpha", self.alpha)
        check_number("temperature", self.temperature)
        check_int("calibrate", self.calibrate, 0)
        check_int("seed", self.seed, 0)
        check_int("workers", self.workers, 0)
        check_int("checkpoint_every", self.checkpoint_every, 0)
        check_int("log_every", self.log_every, 1)
        if not isinstance(self.data_config, dict):
            raise OptionError("data_config", "must be a dict of data-config overrides")

    @property
    def effective_beta_lr(self) -> float:
        if self.lr == "auto" and self.beta_lr is None:
            raise PoolswapError("lr is 'auto': find the rate first (poolswap.train.lr_find.find_lr)")
        return self.lr if self.beta_lr is None else self.beta_lr

    def warmup_for(self, total_steps: int) -> int:
        """Warmup steps for a run of ``total_steps``: the setting, or 5% of the run (at least 1 from 2 steps)."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return max(1 if total_steps >= 2 else 0, round(0.05 * total_steps))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FinetuneConfig":
        """The settings of a saved run (its ``args.yaml``), to resume it as it ran."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise PoolswapError(f"unknown fine-tune settings: {', '.join(unknown)}")
        # a run saved before the setting existed trained with its dropout on: resuming it keeps that
        return cls(**{"dropout": True, **values})


def _parse_lr(value: Any) -> Any:
    """``'auto'``, or a number (a string from the command line is parsed); anything else is left to the checks."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        try:
            return float(text)
        except ValueError:
            raise OptionError("lr", f"must be a number > 0 or 'auto', got {value!r}") from None
    return value
