"""A new classification head: the transfer-learning step of giving a pretrained network the user's classes."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..errors import PoolswapError

__all__ = ["NEW_HEAD", "find_head", "is_new_head", "replace_head"]

#: the attribute that marks a module as a new head, so that a fine-tune may give it its own learning rate
#: (``FinetuneConfig.head_lr``); an attribute of the module, so copies and conversions keep it
NEW_HEAD = "poolswap_new_head"


def is_new_head(module: nn.Module) -> bool:
    """Whether ``module`` is a head made by :func:`replace_head`."""
    return bool(getattr(module, NEW_HEAD, False))


def _outputs(module: nn.Module) -> Optional[int]:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1:
        return module.out_channels
    return None


def find_head(model: nn.Module, num_outputs: int) -> str:
    """The qualified name of ``model``'s classifier: its last ``Linear`` (or 1x1 ``Conv2d``, as in SqueezeNet)
    with ``num_outputs`` outputs, in definition order."""
    found = [name for name, module in model.named_modules() if name and _outputs(module) == num_outputs]
    if not found:
        raise PoolswapError(f"found no Linear or 1x1 Conv2d layer with the model's {num_outputs} outputs to replace "
                            "by a new head; give the model a head for your classes yourself, or use --recipe labels")
    return found[-1]


def replace_head(model: nn.Module, num_classes: int, *, num_outputs: int, seed: int = 0) -> str:
    """Replace ``model``'s classifier (see :func:`find_head`) in place by a freshly initialised one with
    ``num_classes`` outputs, the same kind, inputs and bias; returns its name. ``seed`` fixes the new weights,
    so every model of a comparison starts from the same head. The new module is marked (:func:`is_new_head`)."""
    if num_classes < 1:
        raise PoolswapError(f"a new head needs at least one class, got {num_classes}")
    if hasattr(model, "reset_classifier") and hasattr(model, "num_classes"):  # timm's own way
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model.reset_classifier(num_classes)
        setattr(model.get_classifier(), NEW_HEAD, True)
        return "reset_classifier"
    name = find_head(model, num_outputs)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(old, nn.Linear):
            new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        else:
            new = nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    setattr(new, NEW_HEAD, True)
    setattr(parent, child, new)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return name
