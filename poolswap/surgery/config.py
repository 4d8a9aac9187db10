"""``ConvertConfig``: which pooling sites to swap and how, for ``poolswap convert`` and recipes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..options import OptionError, check_agreement, check_choice, check_number, option

__all__ = ["ConvertConfig", "LEARN_BETA"]

LEARN_BETA = ("scalar", "channel")


@dataclass
class ConvertConfig:
    """The settings of :func:`poolswap.convert` a user chooses (the model and example input aside)."""

    include: Optional[tuple[str, ...]] = option(
        None, "swap only sites whose name matches a glob (or a kind / role name) (default: all)", metavar="GLOB",
        group="which sites")
    exclude: Optional[tuple[str, ...]] = option(
        None, "never swap sites matching a glob, kind or role (default: none)", metavar="GLOB", group="which sites")
    kinds: Optional[tuple[str, ...]] = option(
        None, "kinds to swap: max avg global_max global_avg adaptive_max adaptive_avg, local, global, all "
              "(default: max avg)", metavar="KIND", group="which sites")
    strict: bool = option(False, "a rule that matches no site is an error (default: off)", group="which sites")
    beta: float = option(1.0, "temperature of every SoftPool", group="SoftPool")
    learn_beta: Union[bool, str] = option(
        False, "make beta a parameter, one per site or per channel (default: fixed)", const="scalar",
        choices=LEARN_BETA, group="SoftPool")
    min_agreement: Optional[float] = option(
        None, "with --data: calibrate, and leave as they are the fewest sites needed to keep top-1 agreement with "
              "the original at or above this fraction (e.g. 0.995) on those images (default: off)", metavar="A",
        group="agreement with the original")

    def __post_init__(self) -> None:
        if self.learn_beta is True:
            self.learn_beta = "scalar"
        elif self.learn_beta is None:
            self.learn_beta = False
        check_choice("learn_beta", self.learn_beta, (False, *LEARN_BETA))
        check_number("beta", self.beta)
        if self.min_agreement is not None:
            check_agreement("min_agreement", self.min_agreement)
        for name in ("include", "exclude", "kinds"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, str) or not all(isinstance(v, str) for v in value)):
                raise OptionError(name, f"must be a list of names or globs, got {value!r}")

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`poolswap.convert`."""
        return dataclasses.asdict(self)
