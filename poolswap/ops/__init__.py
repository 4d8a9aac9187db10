"""The SoftPool operator: functional API, modules (local, 'same'-padded, global), reference, registration."""

from ._geometry import PoolGeometry, pooled_size
from ._library import SOFT_POOL, SOFT_POOL_BACKWARD, empty_soft_pool_output
from .functional import soft_pool, soft_pool1d, soft_pool2d, soft_pool3d
from .global_pool import GlobalSoftPool, global_soft_pool
from .modules import SoftPool1d, SoftPool2d, SoftPool3d, SoftPoolNd
from .reference import soft_pool_backward_reference, soft_pool_reference
from .same_pool import SoftPool2dSame, same_padding_plan, soft_pool2d_same
from .temperature import SoftPoolBase, fixed_betas, restore_fixed_betas, softpool_modules

__all__ = [
    "GlobalSoftPool",
    "PoolGeometry",
    "SOFT_POOL",
    "SOFT_POOL_BACKWARD",
    "SoftPool1d",
    "SoftPool2d",
    "SoftPool2dSame",
    "SoftPool3d",
    "SoftPoolBase",
    "SoftPoolNd",
    "empty_soft_pool_output",
    "fixed_betas",
    "global_soft_pool",
    "pooled_size",
    "restore_fixed_betas",
    "same_padding_plan",
    "soft_pool",
    "soft_pool1d",
    "soft_pool2d",
    "soft_pool2d_same",
    "soft_pool3d",
    "soft_pool_backward_reference",
    "soft_pool_reference",
    "softpool_modules",
]
