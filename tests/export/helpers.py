"""Models and runners shared by the export tests.

Until poolswap.convert lands, converted models are assembled by hand here: the
torchvision models get their pools replaced by SoftPool modules (or, for
inception_v3's functional pools, by the functional SoftPool through torch.fx).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from poolswap.ops import SoftPool2d, soft_pool2d


def small_cnn(learn_beta=None, channels: int = 8) -> nn.Module:
    """Conv, ReLU, an overlapping ceil_mode SoftPool with padding, conv, a 2x2 SoftPool, linear head."""
    torch.manual_seed(0)
    kwargs = {} if learn_beta is None else {"learn_beta": learn_beta, "num_channels": channels}
    model = nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        nn.ReLU(),
        SoftPool2d(3, 2, padding=1, ceil_mode=True),
        nn.Conv2d(channels, channels, 3),
        SoftPool2d(2, beta=2.0, **kwargs),
        nn.Flatten(),
        nn.Linear(channels * 3 * 3, 10),
    )
    return model.eval()


def _swap_pool_modules(model: nn.Module) -> nn.Module:
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.MaxPool2d):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(
                parent,
                attr,
                SoftPool2d(module.kernel_size, module.stride, module.padding, module.dilation, ceil_mode=module.ceil_mode),
            )
    return model


def calibrate_batchnorm(model: nn.Module, size: int, batches: int = 2) -> nn.Module:
    """Give a randomly initialised model realistic BatchNorm statistics (activations of order 1), then eval mode.

    Without it, eval-mode BatchNorm (mean 0, var 1) lets deep random networks explode (inception_v3
    reaches 1e8) or vanish (GoogLeNet), and an absolute tolerance means nothing.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batches
    generator = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(8, 3, size, size, generator=generator))
    return model.eval()


def resnet18_soft(size: int = 64) -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return calibrate_batchnorm(_swap_pool_modules(torchvision.models.resnet18(weights=None)), size)


def googlenet_soft(size: int = 64) -> nn.Module:
    """GoogLeNet: every MaxPool2d is ceil_mode=True; branch 4 of each Inception block is 3x3 stride 1 pad 1."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    return calibrate_batchnorm(_swap_pool_modules(model), size)


_FUNCTIONAL_POOLS = (F.max_pool2d, F.avg_pool2d, torch.max_pool2d, torch._C._nn.avg_pool2d)
_KEEP = ("kernel_size", "stride", "padding", "ceil_mode")


def _swap_functional_pools(block: nn.Module) -> nn.Module:
    graph_module = fx.symbolic_trace(block)
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and node.target in _FUNCTIONAL_POOLS:
            node.target = soft_pool2d
            node.kwargs = {k: v for k, v in node.kwargs.items() if k in _KEEP}
    graph_module.graph.lint()
    graph_module.recompile()
    return graph_module


def inception_v3_soft(size: int = 75) -> nn.Module:
    """Inception-v3: module pools swapped, and the functional pools inside its Inception blocks."""
    import torchvision
    from torchvision.models import inception as tv_inception

    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    _swap_pool_modules(model)
    block_types = tuple(
        getattr(tv_inception, n) for n in ("InceptionA", "InceptionB", "InceptionC", "InceptionD", "InceptionE")
    )
    for name, module in list(model.named_children()):
        if isinstance(module, block_types):
            setattr(model, name, _swap_functional_pools(module))
    return calibrate_batchnorm(model, size)


def run_body(path, x: np.ndarray) -> np.ndarray:
    from poolswap.deploy import session

    sess = session(path, "cpu", library=False)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def run_library(path, x: np.ndarray) -> np.ndarray:
    from poolswap.deploy import session

    sess = session(path, "cpu", strict=True)
    assert sess.poolswap_library is not None
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def torch_out(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def softpool_model(
    input_shape,
    attributes: dict,
    *,
    body: Optional[str] = "exact",
    elem_type: int = onnx.TensorProto.FLOAT,
    opset: int = 20,
) -> onnx.ModelProto:
    """A one-node model ``Y = poolswap::SoftPool(X)``; ``body=None`` leaves the function out (library only)."""
    from poolswap.export import attach_function

    node = onnx.helper.make_node("SoftPool", ["X"], ["Y"], domain="poolswap", **attributes)
    graph = onnx.helper.make_graph(
        [node],
        "softpool",
        [onnx.helper.make_tensor_value_info("X", elem_type, list(input_shape))],
        [onnx.helper.make_tensor_value_info("Y", elem_type, [f"y{i}" for i in range(len(input_shape))])],
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", opset), onnx.helper.make_opsetid("poolswap", 1)]
    )
    model.ir_version = 10
    if body is not None:
        attach_function(model, body)
    return model


def geometry_attributes(kernel, stride, padding, dilation, ceil_mode, beta=1.0, betas=None) -> dict:
    attrs = {
        "kernel_shape": list(kernel),
        "strides": list(stride),
        "pads": list(padding) * 2,
        "dilations": list(dilation),
        "ceil_mode": int(ceil_mode),
        "beta": float(beta),
    }
    if betas is not None:
        attrs["betas"] = [float(b) for b in betas]
    return attrs
