"""CI runs exactly the README's set-up and test commands."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ci_commands() -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = []
    for i, line in enumerate(lines):
        if line.startswith("# README: "):
            commands.append(lines[i + 1].strip())
    return commands


def test_ci_runs_the_readme_commands_verbatim():
    readme = (ROOT / "README.md").read_text()
    commands = _ci_commands()
    assert len(commands) == 2
    for command in commands:
        assert command in readme, f"{command!r} is in .ci/run but not in README.md"
