"""``poolswap demo``: the whole pipeline on scikit-learn's embedded digits, no download.

* :func:`run_demo` / :class:`DemoConfig`: train, convert, calibrate, fine-tune, export, run in ORT;
* :func:`digits_cnn`: the demo's network (spec ``poolswap.demo.model:digits_cnn``);
* :func:`load_digits_data`: the digits as tensors.
"""

from .data import DigitsData, load_digits_data, require_demo_extras
from .model import DigitsCNN, digits_cnn
from .pipeline import MODEL_SPEC, DemoConfig, format_report, next_steps, plot_report, run_demo, train_original

__all__ = [
    "DemoConfig",
    "DigitsCNN",
    "DigitsData",
    "MODEL_SPEC",
    "digits_cnn",
    "format_report",
    "load_digits_data",
    "next_steps",
    "plot_report",
    "require_demo_extras",
    "run_demo",
    "train_original",
]
