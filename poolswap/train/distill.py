"""Knowledge distillation: ``alpha * T^2 * KL(teacher/T || student/T) + (1 - alpha) * CE``."""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["distillation_loss", "DistillationLoss", "frozen_teacher", "original_of", "shared_parameters",
           "teacher_logits"]

logger = logging.getLogger(__name__)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: Optional[torch.Tensor] = None,
    *,
    alpha: float = 0.5,
    temperature: float = 2.0,
) -> torch.Tensor:
    """Hinton's distillation loss, averaged over the batch.

    ``targets`` of -1 (unlabelled samples) or ``None`` drop the cross-entropy
    term for those samples; a batch with no labels is pure distillation
    (the KL term then has weight 1, whatever ``alpha`` is).
    """
    t = float(temperature)
    student = student_logits.float()
    teacher = teacher_logits.detach().float()
    kl = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                  reduction="batchmean", log_target=True) * (t * t)
    if targets is None or alpha >= 1.0:
        return kl
    labelled = targets >= 0
    if not bool(labelled.any()):
        return kl
    ce = F.cross_entropy(student, targets, ignore_index=-1)
    if alpha <= 0.0:
        return ce
    return alpha * kl + (1.0 - alpha) * ce


class DistillationLoss(nn.Module):
    """:func:`distillation_loss` as a module holding ``alpha`` and ``temperature``."""

    def __init__(self, alpha: float = 0.5, temperature: float = 2.0) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.temperature = float(temperature)

    def forward(self, student_logits, teacher_logits, targets=None):
        return distillation_loss(student_logits, teacher_logits, targets, alpha=self.alpha,
                                 temperature=self.temperature)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}, temperature={self.temperature:g}"


@torch.no_grad()
def teacher_logits(teacher: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The frozen teacher's logits: eval mode, no gradient, computed once per batch."""
    if teacher.training:
        teacher.eval()
    return teacher(images)


def _on_device(module: nn.Module, device: torch.device) -> bool:
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    tensors = list(module.parameters()) + list(module.buffers())
    return all(t.device == device for t in tensors)


@contextlib.contextmanager
def frozen_teacher(teacher: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """The teacher to run on ``device`` in eval mode, leaving the caller's module exactly as it was.

    Used in place when it already lives on ``device``: eval mode for the duration,
    every sub-module's mode restored afterwards. Elsewhere, a copy is moved to
    ``device`` (the caller's stays where it is). ``requires_grad`` flags are never
    touched: the teacher runs under ``torch.no_grad``.
    """
    if not _on_device(teacher, device):
        logger.info("running a copy of the teacher on %s (the one passed in stays where it is)", device)
        copied = copy.deepcopy(teacher).to(device).eval()
        yield copied
        return
    modes = [(module, module.training) for module in teacher.modules()]
    teacher.eval()
    try:
        yield teacher
    finally:
        for module, training in modes:
            module.training = training


def shared_parameters(a: nn.Module, b: nn.Module) -> int:
    """How many parameter tensors two models share (the same object or the same memory)."""

    def keys(model: nn.Module) -> set:
        return {key for p in model.parameters() if p.numel()
                for key in (("id", id(p)), ("memory", str(p.device), p.data_ptr()))}

    mine = keys(a)
    return sum(1 for p in b.parameters() if p.numel()
               and (("id", id(p)) in mine or ("memory", str(p.device), p.data_ptr()) in mine))


def original_of(model: nn.Module) -> nn.Module:
    """The unconverted original of a converted model: its architecture spec, rebuilt without the swap,
    holding the same weights (a swap leaves the state_dict as it was, except learnt ``log_beta``s).

    The model must know its spec (models built or loaded by poolswap do); returns it in eval mode.
    """
    from ..errors import PoolswapError
    from ..model import load_weights, spec_of
    from ..ops import softpool_modules

    spec = spec_of(model)
    if spec is None:
        raise PoolswapError("the original model cannot be rebuilt: this model has no architecture spec; pass the teacher")
    if not softpool_modules(model):
        raise PoolswapError("this model has no SoftPool: it is not a converted model, so its original is the model "
                            "itself; compare it with another model instead")
    betas = {f"{name}.log_beta" if name else "log_beta" for name in softpool_modules(model)}
    state = {k: v for k, v in model.state_dict().items() if k not in betas}
    original = spec.build()
    load_weights(original, state, what=f"the converted {spec.text}'s weights")
    original.to(next((p.device for p in model.parameters()), torch.device("cpu")))
    return original.eval()
