"""Architecture specs: ``timm:NAME``, ``torchvision:NAME`` or ``package.module:factory``, plus kwargs.

A spec builds the model without pretrained weights (the checkpoint brings them).
Users' checkpoints are often fine-tuned on their own classes, so
:func:`infer_kwargs` reads ``num_classes`` (and timm's ``in_chans``) off a
checkpoint's head and stem shapes. Unknown names get close-match suggestions.
"""

from __future__ import annotations

import difflib
import importlib
import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import torch
from torch import nn

from ..errors import PoolswapError, first_line

__all__ = ["ModelSpec", "parse_spec", "create_model", "infer_kwargs", "spec_of", "SPEC_ATTR"]

SPEC_ATTR = "poolswap_spec"


@dataclass(frozen=True)
class ModelSpec:
    source: str  # "timm", "torchvision" or "python"
    name: str  # model name, or "package.module:factory" for python
    kwargs: dict = field(default_factory=dict)

    def __str__(self) -> str:
        text = self.name if self.source == "python" else f"{self.source}:{self.name}"
        return text if not self.kwargs else f"{text} {json.dumps(self.kwargs, sort_keys=True)}"

    @property
    def text(self) -> str:
        return self.name if self.source == "python" else f"{self.source}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "name": self.name, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        return cls(str(d["source"]), str(d["name"]), dict(d.get("kwargs") or {}))

    def with_kwargs(self, **kwargs: Any) -> "ModelSpec":
        return ModelSpec(self.source, self.name, {**self.kwargs, **kwargs})

    def build(self) -> nn.Module:
        """The model, freshly initialised (no pretrained weights)."""
        factory = _factory(self)
        try:
            if self.source == "timm":
                model = factory(self.name, pretrained=False, **self.kwargs)
            elif self.source == "torchvision":
                with warnings.catch_warnings():
                    # GoogLeNet and Inception v3 announce a future change of their random init: poolswap
                    # loads weights over it, so the notice only clutters every command's output.
                    warnings.filterwarnings("ignore", "The default weight initialization", FutureWarning)
                    model = factory(self.name, weights=None, **{**_no_backbone_weights(self.name), **self.kwargs})
            else:
                model = factory(**self.kwargs)
        except TypeError as exc:
            raise PoolswapError(f"cannot build {self.text} with kwargs {self.kwargs}: {first_line(exc)}") from exc
        if not isinstance(model, nn.Module):
            raise PoolswapError(f"{self.text} returned a {type(model).__name__}, not a torch.nn.Module")
        setattr(model, SPEC_ATTR, self.to_dict())
        return model


def _no_backbone_weights(name: str) -> dict[str, Any]:
    """``weights_backbone=None`` for the torchvision builders that take it (detection, segmentation).

    Their default is an ImageNet backbone, which torchvision downloads (or reads from the hub cache)
    even with ``weights=None``; a spec builds the architecture only, the checkpoint brings the weights.
    """
    import inspect

    import torchvision

    builder = torchvision.models.get_model_builder(name)
    return {"weights_backbone": None} if "weights_backbone" in inspect.signature(builder).parameters else {}


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=5, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _factory(spec: ModelSpec):
    if spec.source == "timm":
        import timm

        if not timm.is_model(spec.name):
            raise PoolswapError(f"unknown timm model {spec.name!r}{_suggest(spec.name, timm.list_models())}")
        return timm.create_model
    if spec.source == "torchvision":
        import torchvision

        names = torchvision.models.list_models()
        if spec.name not in names:
            raise PoolswapError(f"unknown torchvision model {spec.name!r}{_suggest(spec.name, names)}")
        return torchvision.models.get_model
    module_name, _, attr = spec.name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PoolswapError(f"cannot import {module_name!r} for model {spec.name!r}: {first_line(exc)}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
        raise PoolswapError(f"{module_name!r} has no model factory {attr!r}{_suggest(attr, public)}")
    return factory


def parse_spec(text: Union[str, ModelSpec, Mapping[str, Any]], kwargs: Optional[Mapping[str, Any]] = None) -> ModelSpec:
    """``timm:resnet50``, ``torchvision:resnet50`` or ``package.module:factory`` (plus kwargs) as a spec."""
    if isinstance(text, ModelSpec):
        spec = text
    elif isinstance(text, Mapping):
        spec = ModelSpec.from_dict(text)
    else:
        text = str(text).strip()
        prefix, sep, rest = text.partition(":")
        if not sep or not rest or not prefix:
            raise PoolswapError(
                f"model {text!r} is not a spec; write timm:NAME, torchvision:NAME or package.module:factory"
            )
        if prefix in ("timm", "torchvision"):
            spec = ModelSpec(prefix, rest)
        else:
            spec = ModelSpec("python", text)
    if kwargs:
        spec = spec.with_kwargs(**dict(kwargs))
    return spec


def create_model(spec: Union[str, ModelSpec], **kwargs: Any) -> nn.Module:
    """Build a model from a spec (kwargs add to the spec's); it remembers its spec for ``save``."""
    return parse_spec(spec, kwargs).build()


def spec_of(model: nn.Module) -> Optional[ModelSpec]:
    """The spec a model was built from, or one read off a timm model's ``pretrained_cfg``."""
    data = getattr(model, SPEC_ATTR, None)
    if data:
        return ModelSpec.from_dict(data)
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and cfg.get("architecture"):
        kwargs = {}
        if isinstance(getattr(model, "num_classes", None), int):
            kwargs["num_classes"] = model.num_classes
        return ModelSpec("timm", cfg["architecture"], kwargs)
    return None


def _num_classes(model: nn.Module) -> Optional[int]:
    n = getattr(model, "num_classes", None)
    if isinstance(n, int):
        return n
    for m in reversed(list(model.modules())):
        if isinstance(m, nn.Linear):
            return m.out_features
    return None


def infer_kwargs(spec: ModelSpec, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``num_classes`` / ``in_chans`` the checkpoint needs, from its head and stem shapes ({} if none)."""
    model = spec.build()
    own = model.state_dict()
    default_nc = _num_classes(model)
    found: dict[str, Any] = {}
    head_keys = [k for k, v in own.items() if default_nc and v.dim() >= 1 and v.shape[0] == default_nc
                 and (k.endswith(".weight") or k.endswith(".bias"))]
    # Only the last layers that produce default_nc outputs are heads.
    classes = {state_dict[k].shape[0] for k in head_keys if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)}
    if "num_classes" not in spec.kwargs and len(classes) == 1:
        found["num_classes"] = int(classes.pop())
    elif "num_classes" not in spec.kwargs and spec.source == "timm" and head_keys:
        last = head_keys[-2:]
        if all(k not in state_dict for k in last) and not any(k not in own for k in state_dict):
            found["num_classes"] = 0
    if spec.source == "timm" and "in_chans" not in spec.kwargs:
        for k, v in own.items():
            if v.dim() == 4 and k in state_dict and state_dict[k].dim() == 4:
                if state_dict[k].shape[1] != v.shape[1] and v.shape[1] == 3 and state_dict[k].shape[0] == v.shape[0]:
                    found["in_chans"] = int(state_dict[k].shape[1])
                break
    return found
