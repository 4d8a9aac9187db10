"""Accuracy-targeted convert: swap and calibrate every chosen site but the fewest needed to keep agreement.

The search is greedy and deterministic:

1. each chosen site is swapped alone and calibrated (:func:`~.sensitivity.site_sensitivity`);
2. the sites are ranked most harmful first: lowest calibrated agreement, then
   highest KL, then model order;
3. for k = 0, 1, 2, ... the k most harmful sites stay as they are (max or avg
   pooling) and the others are swapped, starting from their own calibrated betas
   and calibrated together; the first k whose agreement with the original on the
   images is at or above the target wins. The agreement before the joint
   calibration counts too (calibration minimises KL, which may cost an answer).

A target that no set with at least one site swapped reaches is an error naming
the best agreement reached.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..errors import PoolswapError
from .sensitivity import AgreementProbe, SiteSensitivity, site_sensitivity
from .sites import Site
from .swap import convert_sites

__all__ = ["SEARCH", "convert_for_agreement", "harm_order"]

logger = logging.getLogger(__name__)

SEARCH = ("greedy: keep as they are the sites that hurt agreement most when swapped alone (calibrated), "
          "one more at a time, until the others, calibrated together, reach the target")


def harm_order(candidates: Sequence[str], measured: dict[str, SiteSensitivity]) -> list[str]:
    """Most harmful first: lowest calibrated agreement, then highest calibrated KL, then model order."""
    position = {name: i for i, name in enumerate(candidates)}
    return sorted(candidates, key=lambda n: (measured[n].calibrated_agreement, -measured[n].calibrated_kl,
                                             position[n]))


def _try(probe: AgreementProbe, swapped: list[str], start: dict[str, float]) -> tuple[float, dict[str, float], float]:
    """(agreement, betas, KL) of the swapped set at its sites' own betas or calibrated together, the better
    agreement of the two (ties: the jointly calibrated betas)."""
    variant = probe.variant(swapped, betas=start)
    result = probe.calibrate(variant)
    if result.agreement_after >= result.agreement_before:
        return result.agreement_after, dict(result.betas), result.kl_after
    return result.agreement_before, {n: start[n] for n in swapped}, result.kl_before


def convert_for_agreement(
    model: nn.Module,
    sites: list[Site],
    batches: Sequence[torch.Tensor],
    *,
    min_agreement: float,
    beta: float = 1.0,
    learn_beta: Union[bool, str] = False,
    config: Optional[dict] = None,
    untraced: Optional[list] = None,
    grid: Optional[Sequence[float]] = None,
) -> nn.Module:
    """Swap, in ``model`` itself, the sites whose action is ``swap`` except the fewest needed (greedily) to keep
    top-1 agreement with the unconverted model at or above ``min_agreement`` on ``batches``.

    Kept sites get action ``skip`` and a reason; the manifest records each site's
    sensitivity and, under ``agreement``, the target, what was reached and how.
    """
    candidates = [s.name for s in sites if s.action == "swap"]
    if not candidates:
        raise PoolswapError("no site to swap: the rules leave none (see `poolswap inspect`)")
    probe = AgreementProbe(model, sites, batches, grid=grid)
    measured = site_sensitivity(probe, candidates, beta=beta)
    own_betas = {n: measured[n].calibrated_beta for n in candidates}
    order = harm_order(candidates, measured)

    best: tuple[float, list[str]] = (-1.0, [])
    found = None
    all_swapped = None
    for k in range(len(order)):
        kept = order[:k]
        swapped = [n for n in candidates if n not in kept]
        agreement, betas, kl = _try(probe, swapped, own_betas)
        logger.info("kept as they are: %s; the others swapped and calibrated: agreement %.4f",
                    ", ".join(kept) or "none", agreement)
        if k == 0:
            all_swapped = agreement
        if agreement > best[0]:
            best = (agreement, swapped)
        if agreement >= min_agreement:
            found = (kept, betas, agreement, kl)
            break
    if found is None:
        names = ", ".join(best[1])
        raise PoolswapError(f"min agreement {min_agreement:g} is out of reach on these {probe.samples} images: the "
                            f"best with a site swapped is {best[0]:.4f} (swapping {names}); lower the target")
    kept, betas, agreement, kl = found
    rank = {name: i + 1 for i, name in enumerate(order)}
    site_entries = {}
    for site in sites:
        m = measured.get(site.name)
        if m is None:
            continue
        alone = (f"swapped alone it agrees {m.calibrated_agreement:.4f} with the original "
                 f"(calibrated beta {m.calibrated_beta:g}; {m.agreement:.4f} at beta {beta:g})")
        if site.name in kept:
            site.action = "skip"
            site.reason = (f"kept as {site.kind} pooling to keep agreement >= {min_agreement:g}: {alone}, "
                           f"the {_ordinal(rank[site.name])}most harmful of {len(candidates)}")
        else:
            site.reason = f"{site.reason}; calibrated beta {betas[site.name]:g} ({alone})"
        site_entries[site.name] = {"sensitivity": m.to_dict(), "harm_rank": rank[site.name]}
    extra = {
        "agreement": {"target": float(min_agreement), "reached": agreement, "kl": kl, "all_swapped": all_swapped,
                      "samples": probe.samples, "kept": list(kept), "search": SEARCH},
        "site_entries": site_entries,
    }
    model = convert_sites(model, sites, beta=beta, betas=betas, learn_beta=learn_beta, config=config,
                          untraced=untraced, extra=extra)
    logger.info("swapped %d of %d chosen sites, kept %d: agreement %.4f >= %g on %d images",
                len(candidates) - len(kept), len(candidates), len(kept), agreement, min_agreement, probe.samples)
    return model


def _ordinal(n: int) -> str:
    """'' for 1 ("the most harmful"), else '2nd ', '3rd ', '11th '..."""
    if n == 1:
        return ""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} "
