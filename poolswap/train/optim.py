"""Optimiser and schedule: SGD/AdamW with clean parameter groups, warmup + cosine; the student's training mode."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import torch
from torch import nn

from .config import FinetuneConfig

__all__ = [
    "ParameterCount", "WarmupCosine", "build_optimizer", "build_scheduler", "count_parameters", "freeze_bn_stats",
    "is_softpool", "is_stochastic", "param_groups", "train_mode",
]

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
# Random layers beside torch's dropouts, by class name: timm's DropPath and DropBlock2d, torchvision's StochasticDepth
_STOCHASTIC_NAMES = frozenset({"DropPath", "DropBlock2d", "StochasticDepth"})


def is_softpool(module: nn.Module) -> bool:
    """A SoftPool layer: ``SoftPool1d/2d/3d`` or one of the swap's variants ('same' padding, global)."""
    from ..ops.temperature import SoftPoolBase

    return isinstance(module, SoftPoolBase)


@dataclass(frozen=True)
class ParameterCount:
    """How many parameter values (elements) a model would train: weights and SoftPool betas, and how many are frozen."""

    weights: int
    betas: int
    frozen: int

    @property
    def trainable(self) -> int:
        return self.weights + self.betas

    def summary(self) -> str:
        return (f"training {self.trainable:,} parameters ({self.weights:,} weights, {self.betas:,} betas); "
                f"{self.frozen:,} frozen")


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count ``model``'s parameter elements by what the optimiser would do with them (shared ones once)."""
    weights = betas = frozen = 0
    seen: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            if not param.requires_grad:
                frozen += param.numel()
            elif is_softpool(module):
                betas += param.numel()
            else:
                weights += param.numel()
    return ParameterCount(weights=weights, betas=betas, frozen=frozen)


def param_groups(model: nn.Module, *, lr: float, beta_lr: float, weight_decay: float,
                 head_lr: Optional[float] = None) -> list[dict]:
    """Three groups: decayed weights; norms and biases (no decay); SoftPool log-betas (own lr, no decay); and,
    with ``head_lr``, a fourth: the parameters of a new head (:func:`poolswap.model.head.replace_head`)."""
    from ..model.head import is_new_head

    decay, no_decay, betas, head = [], [], [], []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if head_lr is not None and is_new_head(module):
                head.append(param)
            elif is_softpool(module):
                betas.append(param)
            elif isinstance(module, _NORMS) or name.endswith("bias") or param.ndim <= 1:
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": "no_decay"},
        {"params": betas, "lr": beta_lr, "weight_decay": 0.0, "name": "beta"},
        {"params": head, "lr": head_lr, "weight_decay": weight_decay, "name": "head"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, lr=config.lr, beta_lr=config.effective_beta_lr, weight_decay=config.weight_decay,
                          head_lr=config.head_lr)
    if not groups:
        from ..errors import PoolswapError

        raise PoolswapError("the model has no trainable parameters")
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    return torch.optim.AdamW(groups, lr=config.lr)


class WarmupCosine:
    """LR factor at a step: linear warmup from ~0 to 1, then cosine from 1 to ``min_ratio``.

    A plain callable object, so ``LambdaLR.state_dict()`` carries it and a resumed
    run continues the same curve.
    """

    def __init__(self, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> None:
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps - 1))
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int, config: FinetuneConfig):
    """A per-step ``LambdaLR`` following :class:`WarmupCosine`."""
    factor = WarmupCosine(total_steps, config.warmup_for(total_steps), config.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


def freeze_bn_stats(modules: Iterable[nn.Module]) -> int:
    """Put every BatchNorm in eval mode (running statistics frozen, affine still learnt); returns the count."""
    count = 0
    for module in modules:
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            count += 1
    return count


def is_stochastic(module: nn.Module) -> bool:
    """A layer that is random in training mode: dropout of any kind, drop-path, drop-block, stochastic depth."""
    return isinstance(module, nn.modules.dropout._DropoutNd) or type(module).__name__ in _STOCHASTIC_NAMES


def train_mode(model: nn.Module, config: FinetuneConfig) -> None:
    """Put the student in training mode as ``config`` asks: BatchNorm statistics frozen with ``freeze_bn``, and
    dropout-like layers off unless ``dropout`` (a student without dropout matches its eval-mode teacher exactly,
    so pure distillation of an unchanged network is a fixed point)."""
    model.train()
    if config.freeze_bn:
        freeze_bn_stats(model.modules())
    if not config.dropout:
        for module in model.modules():
            if is_stochastic(module):
                module.eval()
