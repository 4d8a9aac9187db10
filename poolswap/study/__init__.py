"""A fair A/B study: does SoftPool help *this* model on *this* data?

The original and each conversion are fine-tuned with the same recipe, images and seeds,
then measured on images held out by a deterministic, class-balanced split: top-1,
agreement with the untouched original, shift consistency and latency, each as mean and
spread over seeds, with a verdict against the original fine-tuned alike.
"""

from .config import RECIPES, VARIANTS, StudyConfig
from .runner import StudyResult, run_study
from .split import Split, class_balanced_indices, split_samples
from .verdict import spread, verdict

__all__ = ["RECIPES", "VARIANTS", "Split", "StudyConfig", "StudyResult", "class_balanced_indices", "run_study",
           "split_samples", "spread", "verdict"]
