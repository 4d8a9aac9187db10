"""The markdown tables the benchmarks print: a title line, then one row per measurement."""

from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["markdown_table"]


def markdown_table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """``title``, a blank line and a table whose first column is left-aligned and the others right-aligned."""
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)
