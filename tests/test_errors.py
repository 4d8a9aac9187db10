"""first_line: how poolswap quotes another library's exception in its own one-line errors."""

from __future__ import annotations

from poolswap.errors import first_line


def test_first_line_keeps_the_first_line_of_the_message():
    assert first_line(ValueError("  bad header\n  at offset 8\n")) == "bad header"


def test_first_line_names_the_type_when_the_message_is_empty():
    assert first_line(KeyError()) == "KeyError"
    assert first_line(RuntimeError("\n \n")) == "RuntimeError"
