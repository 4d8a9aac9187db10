"""What a file given as a model or checkpoint holds, read off its first bytes (and a zip's index).

Loaders ask :func:`file_kind` when a file is not what they expect, so that the
one-line error names what the file *is* (a folder, a TorchScript archive, a torch
checkpoint where a converted model is expected, ...) and what to give instead,
rather than the low-level reason the reader stopped.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import Union

__all__ = ["CHECKPOINT_SUFFIXES", "describe_kind", "file_kind", "folder_hint"]

#: File names a checkpoint usually has (``.pth.tar`` ends in ``.tar``).
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".ckpt", ".safetensors")

_ZIP_MAGIC = b"PK\x03\x04"


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return "corrupt-zip"
    # torch.jit.save archives hold the model's code and constants; torch.save ones a data.pkl alone.
    if any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return "torch"
    return "zip"


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 8 + length <= size and head[8:9] == b"{"


def file_kind(path: Union[str, os.PathLike]) -> str:
    """One of ``missing``, ``directory``, ``empty``, ``safetensors``, ``torch`` (a ``torch.save`` zip),
    ``torchscript``, ``corrupt-zip``, ``zip``, ``pickle`` (a legacy ``torch.save`` or any pickle),
    ``onnx`` or ``unknown``."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "directory"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return "unknown"
    if size == 0:
        return "empty"
    if head.startswith(_ZIP_MAGIC):
        return _zip_kind(path)
    if _is_safetensors(head, size):
        return "safetensors"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode, protocols 2-5
        return "pickle"
    if path.suffix.lower() == ".onnx" and head[:1] == b"\x08":  # protobuf field 1 (ir_version), a varint
        return "onnx"
    return "unknown"


def describe_kind(kind: str) -> str:
    """A short noun phrase for a kind, as error messages use it."""
    return {
        "directory": "a folder",
        "empty": "an empty file",
        "safetensors": "a safetensors file",
        "torch": "a torch checkpoint (torch.save)",
        "torchscript": "a TorchScript archive (torch.jit.save)",
        "corrupt-zip": "a truncated or corrupt zip archive (a torch checkpoint cut short?)",
        "zip": "a zip archive that is no torch checkpoint",
        "pickle": "a pickle file",
        "onnx": "an ONNX model",
            "missing": "missing",
    }.get(kind, "a file of unknown format")


def folder_hint(folder: Union[str, os.PathLike], suffixes: tuple[str, ...] = CHECKPOINT_SUFFIXES) -> str:
    """``"; it holds a.pth, b.safetensors"``: the files in ``folder`` that look like what is expected ('' if none)."""
    try:
        names = sorted(p.name for p in Path(folder).iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
    except OSError:
        return ""
    if not names:
        return ""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"; it holds {', '.join(names[:3])}{more}"

