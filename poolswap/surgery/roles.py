"""What a pooling site does in its network: stem, downsample, in-block, head, SE, token mixer."""

from __future__ import annotations

import re
from typing import Optional, Sequence

from torch import nn

from .sites import Site

__all__ = ["assign_role", "owner_classes"]

_SE = re.compile(r"(^|[._])(se|ese|eca|gc|cbam|attn_gate|gate|squeeze|excit\w*|se_module|se_layer|attention)([._]|$)|"
                 r"SqueezeExcit|SEModule|SELayer|SEBlock|EffectiveSE|EcaModule|CecaModule|GatherExcite|GlobalContext|CbamModule|SqueezeExcite",
                 re.IGNORECASE)
_TOKEN_MIXER = re.compile(r"token_mixer|^Pooling$|PoolFormer|PoolMixer", re.IGNORECASE)
_STEM = re.compile(r"(^|\.)(stem|pool0|maxpool|maxpool1|pool1)(\.|$)|^features\.[0-3]$", re.IGNORECASE)


def owner_classes(model: nn.Module, name: str) -> list[str]:
    """Class names of the modules along ``name``'s path (root first)."""
    out = [type(model).__name__]
    module = model
    for part in name.split(".")[:-1] if name else []:
        module = getattr(module, part, None)
        if module is None:
            break
        out.append(type(module).__name__)
    return out


def assign_role(site: Site, model: nn.Module, image_size: Optional[Sequence[int]], first_local: bool) -> str:
    """A role for ``site`` from its kind, path, owner classes and (when known) its input size."""
    classes = owner_classes(model, site.name)
    text = site.name + " " + " ".join(classes[1:])
    if site.kind not in ("max", "avg"):
        if site.geometry.get("dims") == (1,) or "token" in site.blocked:
            return "token-pool"
        if _SE.search(site.name) or any(_SE.search(c) for c in classes[1:]):
            return "squeeze-excitation"
        return "head"
    g = site.geometry
    if _TOKEN_MIXER.search(text) or any(_TOKEN_MIXER.search(c) for c in classes[1:]):
        return "token-mixer"
    if site.input_shape and site.output_shape and all(o == 1 for o in site.output_shape[-site.ndim:]) \
            and g.get("kernel_size") and all(k >= s for k, s in zip(g["kernel_size"], site.input_shape[-site.ndim:])):
        return "head"
    stride = g.get("stride") or (1,)
    if _STEM.search(site.name) and "stages" not in site.name and "layer" not in site.name:
        return "stem"
    if first_local and image_size and site.input_shape and site.name.count(".") <= 1:
        spatial = site.input_shape[-site.ndim:]
        if all(s * 4 >= i for s, i in zip(spatial, image_size[-site.ndim:])) and max(stride) > 1:
            return "stem"
    if max(stride) > 1:
        return "downsample"
    return "in-block"
