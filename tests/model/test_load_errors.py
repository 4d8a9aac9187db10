"""A file that is not what a loader expects: the one-line error says what it is and what to give instead."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import poolswap
from poolswap.errors import PoolswapError
from poolswap.model import build_from_checkpoint, create_model, load_state_dict_file
from poolswap.surgery import load, load_model, read_header

SURGERY_MODELS = Path(__file__).resolve().parents[1] / "surgery"
if str(SURGERY_MODELS) not in sys.path:
    sys.path.insert(0, str(SURGERY_MODELS))


class _Payload:
    """Unpickling this would run ``os.getpid``: code, not weights."""

    def __reduce__(self):
        return (os.getpid, ())


def _write(kind: str, path: Path) -> Path:
    net = nn.Sequential(nn.Conv2d(1, 2, 3))
    if kind == "folder":
        path.mkdir()
        torch.save(net.state_dict(), path / "weights.pth")
    elif kind == "torchscript":
        torch.jit.script(net).save(str(path))
    elif kind == "code_pickle":
        torch.save({"state_dict": net.state_dict(), "extra": _Payload()}, path)
    elif kind == "whole_module":
        torch.save(net, path)
    elif kind == "truncated":
        torch.save(net.state_dict(), path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "state_dict":
        torch.save(net.state_dict(), path)
    return path


CHECKPOINT_CASES = [
    ("folder", ["is a folder", "weights.pth"]),
    ("torchscript", ["TorchScript archive", "state_dict"]),
    ("code_pickle", ["code or objects beyond tensors", "posix.getpid", "state_dict", "safetensors"]),
    ("whole_module", ["code or objects beyond tensors", "Sequential", "state_dict"]),
    ("truncated", ["truncated or corrupt"]),
]


@pytest.mark.parametrize("kind,words", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_checkpoint_that_is_not_a_state_dict_says_what_it_is(tmp_path, kind, words):
    path = _write(kind, tmp_path / "ck.pth")
    with pytest.raises(PoolswapError) as info:
        load_state_dict_file(path)
    message = str(info.value)
    assert "\n" not in message and "weights_only=False" not in message and "does not exist" not in message
    for word in words:
        if kind == "code_pickle" and word == "posix.getpid" and os.name != "posix":
            continue
        assert word in message, message


@pytest.mark.parametrize("kind,what", [("state_dict", "torch checkpoint"), ("torchscript", "TorchScript"),
                                       ("folder", "folder"), ("truncated", "truncated")])
def test_a_file_that_is_not_a_converted_model_names_poolswap_convert(tmp_path, kind, what):
    path = _write(kind, tmp_path / "model.pth")
    for reader in (read_header, load, load_model):
        with pytest.raises(PoolswapError) as info:
            reader(path)
        message = str(info.value)
        assert "\n" not in message and what in message and "poolswap convert" in message, message
        assert "header too large" not in message


def test_a_safetensors_checkpoint_is_read_by_content_whatever_its_name(tmp_path):
    from safetensors.torch import save_file

    state = nn.Linear(2, 3).state_dict()
    save_file(state, str(tmp_path / "weights.bin"))
    loaded = load_state_dict_file(tmp_path / "weights.bin")
    torch.testing.assert_close(loaded, state)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load_naming_the_tensor(tmp_path, bad):
    state = create_model("_surgery_models:functional_net", num_classes=3).state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 2)
    state[name].view(-1)[:2] = bad
    path = tmp_path / "diverged.pth"
    torch.save(state, path)
    with pytest.raises(PoolswapError) as info:
        build_from_checkpoint("_surgery_models:functional_net", path)
    message = str(info.value)
    assert "\n" not in message and "2 non-finite" in message and repr(name) in message


def test_a_converted_model_with_non_finite_weights_is_refused_at_load(tmp_path):
    model = create_model("_surgery_models:functional_net", num_classes=3).eval()
    converted = poolswap.convert(model, example_input=torch.randn(1, 3, 16, 16), learn_beta="scalar")
    name = next(k for k, v in converted.state_dict().items() if k.endswith("weight"))
    with torch.no_grad():
        converted.get_parameter(name).view(-1)[0] = float("nan")
    path = poolswap.save(converted, tmp_path / "nan.safetensors")
    with pytest.raises(PoolswapError, match=rf"1 non-finite .*'{name}'"):
        load(path, trust_module="_surgery_models")
