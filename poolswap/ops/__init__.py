"""The SoftPool operator: functional API, modules, reference and registration."""

from ._extension import KernelStatus, active_backend, build_cpu, cpu_parallel_backend, cpu_threads_last_call, kernel_status
from ._geometry import PoolGeometry, pooled_size
from ._library import SOFT_POOL, SOFT_POOL_BACKWARD, soft_pool_op
from .functional import soft_pool, soft_pool1d, soft_pool2d, soft_pool3d
from .modules import SoftPool1d, SoftPool2d, SoftPool3d
from .reference import soft_pool_backward_reference, soft_pool_reference

__all__ = [
    "KernelStatus",
    "PoolGeometry",
    "SOFT_POOL",
    "SOFT_POOL_BACKWARD",
    "SoftPool1d",
    "SoftPool2d",
    "SoftPool3d",
    "active_backend",
    "build_cpu",
    "cpu_parallel_backend",
    "cpu_threads_last_call",
    "kernel_status",
    "pooled_size",
    "soft_pool",
    "soft_pool1d",
    "soft_pool2d",
    "soft_pool3d",
    "soft_pool_backward_reference",
    "soft_pool_op",
    "soft_pool_reference",
]
