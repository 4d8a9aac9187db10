"""CUDA kernels: they compile and link everywhere nvcc exists; on a GPU they keep the contract.

The `cuda`-marked tests skip on machines without a GPU (see conftest.py).
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings

import poolswap
from poolswap.ops import SOFT_POOL, soft_pool_reference
from poolswap.kernels import build_cuda, nvcc_path

from .contract import soft_pool_brute_force, soft_pool_grad_brute_force
from .strategies import problems

needs_nvcc = pytest.mark.skipif(
    nvcc_path() is None and os.environ.get("CI") != "true", reason="no nvcc on this machine"
)


@needs_nvcc
def test_cuda_kernels_compile_link_and_register():
    """CI has nvcc but no GPU: the CUDA front-end must still build, load and register its kernels."""
    library = build_cuda()
    assert library.exists()
    for op in ("poolswap::soft_pool", "poolswap::soft_pool_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA")


@pytest.mark.cuda
@settings(max_examples=150)
@given(p=problems(dtype=torch.float64))
def test_cuda_matches_the_contract(p):
    x = p.x.cuda().detach().requires_grad_(True)
    beta = None if p.beta_tensor is None else p.beta_tensor.cuda().requires_grad_(True)
    y = SOFT_POOL(x, *p.args, p.beta, beta)
    xb = p.batched_x
    expected = soft_pool_brute_force(xb, p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode, p.effective_beta)
    unbatched = p.x.dim() == len(p.kernel) + 1
    got = y.unsqueeze(0) if unbatched else y
    torch.testing.assert_close(got.cpu(), expected, atol=1e-10, rtol=1e-9)
    g = torch.randn(expected.shape, dtype=torch.float64)
    y.backward((g[0] if unbatched else g).cuda())
    gx, gbeta = soft_pool_grad_brute_force(xb, g, p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode, p.effective_beta)
    torch.testing.assert_close((x.grad.unsqueeze(0) if unbatched else x.grad).cpu(), gx, atol=1e-10, rtol=1e-9)
    if beta is not None:
        expected_beta = gbeta.sum() if beta.numel() == 1 else gbeta.sum(0)
        torch.testing.assert_close(beta.grad.cpu(), expected_beta.reshape(beta.shape), atol=1e-9, rtol=1e-8)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cuda_dtypes_and_layouts_match_the_cpu_kernel(dtype, tol, channels_last):
    x = torch.randn(4, 8, 17, 19).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    xc = x.cuda().requires_grad_(True)
    y = poolswap.soft_pool2d(xc, 3, 2, 1, ceil_mode=True)
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last) == channels_last
    expected = soft_pool_reference(x.float(), [3, 3], [2, 2], [1, 1], [1, 1], True)
    torch.testing.assert_close(y.float().cpu(), expected, atol=tol * 4, rtol=tol)
    y.float().sum().backward()
    assert torch.isfinite(xc.grad.float()).all()


@pytest.mark.cuda
@pytest.mark.parametrize("seed", [0, 1])
def test_cuda_gradcheck_and_opcheck(seed):
    torch.manual_seed(seed)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64, device="cuda", requires_grad=True)
    beta = torch.rand(3, dtype=torch.float64, device="cuda").add(0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, b: poolswap.soft_pool2d(x, 3, 2, 1, beta=b), (x, beta))
    torch.library.opcheck(SOFT_POOL, (x, [3, 3], [2, 2], [1, 1], [1, 1], True, 1.0, beta))


@pytest.mark.cuda
def test_cuda_backward_is_bitwise_deterministic():
    x = torch.randn(8, 32, 65, 63, device="cuda", requires_grad=True)
    beta = torch.rand(32, device="cuda").add(0.5).requires_grad_(True)
    grad = torch.randn(8, 32, 65, 63, device="cuda")
    results = []
    for _ in range(3):
        x.grad = beta.grad = None
        poolswap.soft_pool2d(x, 3, 1, 1, beta=beta).backward(grad)
        results.append((x.grad.clone(), beta.grad.clone()))
    for gx, gb in results[1:]:
        assert torch.equal(gx, results[0][0]) and torch.equal(gb, results[0][1])


@pytest.mark.cuda
def test_cuda_huge_inputs_stay_finite():
    x = torch.randn(2, 4, 33, 33, device="cuda") * 1e30
    y = poolswap.soft_pool2d(x, 3, 2, 1)
    hi = torch.nn.functional.max_pool2d(x, 3, 2, 1)
    assert torch.isfinite(y).all() and (y <= hi).all()
