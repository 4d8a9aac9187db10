"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from .errors import PoolswapError

__all__ = ["atomic_path", "atomic_write_text", "check_output"]

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``target``.

    On any exception the temporary file is removed and ``target`` is left as it was,
    so a failed write never leaves a half-written file behind.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); the result gets the permissions of any new file.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _remove_orphans(target: Path) -> None:
    """Remove temporary files of ``target`` left by a process that was killed mid-write (its pid is gone)."""
    for orphan in target.parent.glob(f".{_glob_escape(target.name)}.*.tmp"):
        pid = orphan.name[len(target.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                orphan.unlink()


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def check_output(target: PathLike, *, overwrite: bool, inputs: Iterable[Optional[PathLike]] = (),
                 flag: str = "-o") -> Path:
    """Refuse an output that is one of the ``inputs``, a folder, or (without ``overwrite``) an existing file."""
    target = Path(target)
    for source in inputs:
        if source is not None and target.exists() and Path(source).exists() and os.path.samefile(source, target):
            raise PoolswapError(f"{flag} {target} is the input {source}: poolswap never writes over its input; "
                                f"choose another output file")
    if target.is_dir():
        raise PoolswapError(f"{flag} {target} is a folder; give the output file's name")
    parent = next((p for p in target.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise PoolswapError(f"{flag} {target}: {parent} is a file, not a folder")
    if target.exists() and not overwrite:
        raise PoolswapError(f"{flag} {target} already exists; pass --overwrite to replace it")
    return target


def atomic_write_text(target: PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
