"""Per-site sensitivity: how much each site, swapped alone, changes the model's top-1 answers.

An :class:`AgreementProbe` runs the original model once on a few batches of
images and keeps its outputs; each variant of the model (some sites swapped,
the others left as they are) is measured against them: top-1 agreement and
KL(original || variant). :func:`site_sensitivity` swaps each site alone, at the
chosen beta and then calibrated (the beta :func:`poolswap.calibration.calibrate` picks
for that site alone, from its log grid).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import PoolswapError
from .find import find_sites
from .report import Report
from .rules import apply_rules
from .sites import Site
from .swap import convert_sites

__all__ = ["AgreementProbe", "SiteSensitivity", "sensitivity", "site_sensitivity"]

logger = logging.getLogger(__name__)


@dataclass
class SiteSensitivity:
    """One site swapped alone: agreement and KL with the original at ``beta``, and calibrated."""

    name: str
    beta: float
    agreement: float
    kl: float
    calibrated_beta: float
    calibrated_agreement: float
    calibrated_kl: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AgreementProbe:
    """The original model's outputs on ``batches`` (computed once, in eval mode), and variants of the model
    with some of ``sites`` swapped, measured against them. The model itself is never changed."""

    def __init__(self, model: nn.Module, sites: Sequence[Site], batches: Sequence[torch.Tensor], *,
                 grid: Optional[Sequence[float]] = None) -> None:
        from ..calibration import DEFAULT_GRID, teacher_outputs

        self.model, self.sites = model, list(sites)
        self.grid = tuple(grid) if grid is not None else DEFAULT_GRID
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            self.cached = teacher_outputs(model, batches, device=device)
        except RuntimeError as exc:
            from ..errors import first_line

            raise PoolswapError(f"the images do not run through the model ({first_line(exc)}); "
                                "check the input size and channels") from None
        finally:
            for module, training in modes:
                module.training = training
        self.samples = sum(images.shape[0] for images, _ in self.cached)

    def variant(self, swapped: Iterable[str], *, beta: float = 1.0, betas: Optional[dict[str, float]] = None,
                learn_beta: Union[bool, str] = False) -> nn.Module:
        """A copy of the model with the sites named in ``swapped`` swapped (``betas`` per site, else ``beta``)."""
        wanted = set(swapped)
        sites = [copy.copy(s) for s in self.sites]
        for site in sites:
            site.action = "swap" if site.name in wanted else "skip"
        return convert_sites(copy.deepcopy(self.model), sites, beta=beta, betas=betas, learn_beta=learn_beta).eval()

    def measure(self, variant: nn.Module) -> tuple[float, float]:
        """(KL(original || variant), top-1 agreement) on the probe's images."""
        from ..calibration import fit

        return fit(variant, self.cached)

    def calibrate(self, variant: nn.Module):
        """Choose the betas of the variant's SoftPool sites (a :class:`~poolswap.train.CalibrationResult`)."""
        from ..calibration import calibrate_cached

        return calibrate_cached(variant, self.cached, grid=self.grid)


def site_sensitivity(probe: AgreementProbe, names: Iterable[str], *, beta: float = 1.0) -> dict[str, SiteSensitivity]:
    """Each named site swapped alone: agreement at ``beta``, then the beta calibration picks and its agreement."""
    out: dict[str, SiteSensitivity] = {}
    for name in names:
        variant = probe.variant([name], beta=beta)
        result = probe.calibrate(variant)
        out[name] = SiteSensitivity(
            name=name, beta=float(beta), agreement=result.agreement_before, kl=result.kl_before,
            calibrated_beta=result.betas[name], calibrated_agreement=result.agreement_after,
            calibrated_kl=result.kl_after, samples=probe.samples)
        logger.info("%s alone: agreement %.4f at beta %g, %.4f at calibrated beta %g", name,
                    result.agreement_before, beta, result.agreement_after, result.betas[name])
    return out


def sensitivity(
    model: nn.Module,
    data: Any,
    *,
    beta: float = 1.0,
    kinds: Optional[Iterable[str]] = None,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    example_input: Any = None,
    report: Optional[Report] = None,
    num_batches: int = 8,
    batch_size: int = 32,
    data_config: Optional[dict] = None,
    grid: Optional[Sequence[float]] = None,
) -> Report:
    """``model``'s sites (as :func:`~poolswap.surgery.inspect` lists them) with ``report.sensitivity``: for each
    site convert would swap (with these kinds / include / exclude rules), a :class:`SiteSensitivity`.

    ``data``: an image folder (the model's preprocessing, ``data_config`` overrides),
    a Dataset, a tensor of images or batches; ``num_batches`` of ``batch_size`` images
    are used. The model is not changed.
    """
    from ..data.datasets import sample_batches

    if not (isinstance(beta, (int, float)) and beta > 0):
        raise PoolswapError(f"beta must be > 0, got {beta!r}")
    batches = sample_batches(data, model, num_batches=num_batches, batch_size=batch_size, data_config=data_config)
    if report is None:
        report = find_sites(model, example_input if example_input is not None else batches[0][:1])
    decided = [copy.copy(s) for s in report]
    apply_rules(decided, kinds=kinds, include=include, exclude=exclude)
    names = [s.name for s in decided if s.action == "swap"]
    if not names:
        raise PoolswapError("no site to measure: none would be swapped (see `poolswap inspect`)")
    probe = AgreementProbe(model, decided, batches, grid=grid)
    report.sensitivity = site_sensitivity(probe, names, beta=beta)
    return report
