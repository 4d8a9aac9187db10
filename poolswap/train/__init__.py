"""Fine-tuning converted networks: distillation from the original, calibration, evaluation.

* :func:`finetune` and :class:`FinetuneConfig`: the resumable, DDP-ready loop;
* :func:`calibrate`: zero-shot choice of each SoftPool site's beta;
* :func:`evaluate`: top-1/top-5 and agreement between two models;
* :func:`shift_consistency`: how often two shifted crops of an image get the same top-1;
* :func:`find_lr`: the range test behind ``lr='auto'``.
"""

from ..calibration import CalibrationResult, calibrate
from .config import FinetuneConfig
from .consistency import ConsistencyResult, shift_consistency
from .distill import DistillationLoss, distillation_loss
from .evaluate import EvalResult, evaluate
from .loop import FinetuneResult, finetune
from .lr_find import LrFindResult, find_lr

__all__ = [
    "CalibrationResult",
    "ConsistencyResult",
    "LrFindResult",
    "find_lr",
    "shift_consistency",
    "DistillationLoss",
    "EvalResult",
    "FinetuneConfig",
    "FinetuneResult",
    "calibrate",
    "distillation_loss",
    "evaluate",
    "finetune",
]
