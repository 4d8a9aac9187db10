"""Reading an ``.onnx`` file: a file that is no model is a one-line error."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from ..errors import PoolswapError, first_line

__all__ = ["read_onnx"]


def read_onnx(path: Union[str, Path], *, load_external_data: bool = False) -> Any:
    """The ``onnx.ModelProto`` at ``path`` (its external data only if ``load_external_data``).

    An empty, truncated or random file, or one whose graph has no input or no node,
    raises :class:`PoolswapError` naming the file, as ``poolswap predict`` does.
    """
    import onnx

    path = Path(path)
    if path.is_dir():
        raise PoolswapError(f"{path} is a folder; give the exported .onnx file")
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX model at {path}")
    if path.stat().st_size == 0:
        raise PoolswapError(f"{path} is empty, not an ONNX model; export one with `poolswap export`")
    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError, and whatever a damaged file makes the parser raise
        raise PoolswapError(f"{path} is not a readable ONNX model (truncated or not ONNX?): {first_line(exc)}") from None
    if not model.graph.node or not model.graph.input:
        raise PoolswapError(f"{path} holds no ONNX graph with inputs (truncated or not ONNX?); "
                            "export one with `poolswap export`")
    return model
