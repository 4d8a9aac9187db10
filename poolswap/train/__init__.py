"""Fine-tuning converted networks: distillation from the original, calibration, evaluation.

* :func:`finetune` and :class:`FinetuneConfig`: the resumable, DDP-ready loop;
* :func:`calibrate`: zero-shot choice of each SoftPool site's beta;
* :func:`evaluate`: top-1/top-5 and agreement between two models.
"""

from ..calibration import CalibrationResult, calibrate
from .config import FinetuneConfig
from .distill import DistillationLoss, distillation_loss
from .evaluate import EvalResult, evaluate
from .loop import FinetuneResult, finetune

__all__ = [
    "CalibrationResult",
    "DistillationLoss",
    "EvalResult",
    "FinetuneConfig",
    "FinetuneResult",
    "calibrate",
    "distillation_loss",
    "evaluate",
    "finetune",
]
