"""The result of ``poolswap.inspect``: the sites, and the code that could not be looked into."""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional

from .sites import Site

__all__ = ["Report"]


class Report(list):
    """A list of :class:`Site` (so ``len(report)``, iteration and indexing work), plus

    * ``untraced``: ``[{"path", "error"}]``, modules whose own code torch.fx could not read
      (pools in that code, other than pool modules, cannot be found);
    * ``leaf_fallbacks``: modules traced as leaves, their children traced on their own;
    * ``input_shape``: the example input the shapes were measured with (None: no shapes);
    * ``sensitivity``: per site name, a :class:`~.sensitivity.SiteSensitivity` (agreement with the
      original when that site alone is swapped) where it was measured, else empty.
    """

    def __init__(self, sites: Iterable[Site] = (), *, untraced=None, leaf_fallbacks=None,
                 input_shape: Optional[tuple[int, ...]] = None, notes=None) -> None:
        super().__init__(sites)
        self.untraced: list[dict[str, str]] = list(untraced or [])
        self.leaf_fallbacks: list[str] = list(leaf_fallbacks or [])
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.notes: list[str] = list(notes or [])
        self.sensitivity: dict[str, Any] = {}

    @property
    def sites(self) -> list[Site]:
        return list(self)

    def __getitem__(self, key):  # also by site name
        if isinstance(key, str):
            for site in self:
                if site.name == key:
                    return site
            raise KeyError(key)
        return super().__getitem__(key)

    def swapped(self) -> list[Site]:
        return [s for s in self if s.action == "swap"]

    def _site_dict(self, site: Site) -> dict[str, Any]:
        d = site.to_dict()
        if site.name in self.sensitivity:
            d["sensitivity"] = self.sensitivity[site.name].to_dict()
        return d

    def to_dict(self) -> dict[str, Any]:
        return {
            "sites": [self._site_dict(s) for s in self],
            "summary": {"sites": len(self), "swap": len(self.swapped()), "skip": len(self) - len(self.swapped())},
            "untraced": self.untraced,
            "leaf_fallbacks": self.leaf_fallbacks,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "notes": self.notes,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def table(self) -> str:
        """A plain-text table: name, kind, geometry, role, action, reason (and how it was found)."""
        measured = bool(self.sensitivity)
        head = ("name", "kind", "geometry", "role", "action", "found by")
        if measured:
            beta = next(iter(self.sensitivity.values())).beta
            head += (f"agree@beta={beta:g}", "calibrated beta (agree)")
        head += ("reason",)
        rows = [head]
        for s in self:
            reason = s.reason + ("" if not s.warnings else " | " + "; ".join(s.warnings))
            if s.train_only:
                reason += " (train mode only)"
            row = (s.name, s.kind, s.geometry_text(), s.role, s.action, s.mechanism)
            if measured:
                m = self.sensitivity.get(s.name)
                row += ((f"{m.agreement:.4f}", f"{m.calibrated_beta:g} ({m.calibrated_agreement:.4f})")
                        if m is not None else ("-", "-"))
            rows.append((*row, reason))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
        lines.append(f"{len(self)} sites: {len(self.swapped())} to swap, {len(self) - len(self.swapped())} to skip")
        for u in self.untraced:
            lines.append(f"not looked into: {u['path'] or '<model>'}: {u['error']}")
        if measured:
            samples = next(iter(self.sensitivity.values())).samples
            lines.append(f"agreement: top-1 agreement with the original on {samples} images when that site alone "
                         "is swapped (calibrated: at the beta calibration picks for it)")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Report({len(self)} sites, {len(self.swapped())} to swap)"
