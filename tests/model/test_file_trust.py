"""A model file runs no code: its spec builds only timm/torchvision models, poolswap's own, or a trusted module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import poolswap
from poolswap.cli import main
from poolswap.errors import PoolswapError
from poolswap.model import check_file_spec, create_model
from poolswap.surgery import load_model, read_header

DEMO = "poolswap.demo.model:digits_cnn"


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    """A real converted file (the demo CNN, three pools swapped)."""
    path = tmp_path_factory.mktemp("real") / "demo.safetensors"
    torch.manual_seed(0)
    converted = poolswap.convert(create_model(DEMO).eval(), example_input=torch.randn(1, 1, 16, 16))
    poolswap.save(converted, path)
    return path


def _with_spec(real: Path, spec: dict, out: Path) -> Path:
    """``real`` with its header's spec replaced: what an attacker edits in a downloaded file."""
    with safe_open(str(real), framework="pt") as f:
        header = json.loads(f.metadata()["poolswap"])
    header["spec"] = spec
    save_file(load_file(str(real)), str(out), metadata={"poolswap": json.dumps(header)})
    return out


def _payloads(marker: Path) -> dict[str, dict]:
    cmd = f"touch {marker}"
    return {
        "subprocess": {"source": "python", "name": "subprocess:getoutput", "kwargs": {"cmd": cmd}},
        "os_system": {"source": "python", "name": "os:system", "kwargs": {"command": cmd}},
        "builtins_exec": {"source": "python", "name": "builtins:exec",
                          "kwargs": {"source": f"import os; os.system({cmd!r})"}},
        "unknown_source": {"source": "shell", "name": "subprocess:getoutput", "kwargs": {"cmd": cmd}},
        "timm_overlay": {"source": "timm", "name": "resnet18",
                         "kwargs": {"pretrained_cfg_overlay": {"file": str(marker)}}},
        "timm_checkpoint_path": {"source": "timm", "name": "resnet18", "kwargs": {"checkpoint_path": str(marker)}},
        "timm_pretrained": {"source": "timm", "name": "resnet18", "kwargs": {"pretrained": True}},
        "timm_hub_name": {"source": "timm", "name": "hf-hub:someone/evil", "kwargs": {}},
        "torchvision_weights": {"source": "torchvision", "name": "resnet18", "kwargs": {"weights": "DEFAULT"}},
        "timm_bad_type": {"source": "timm", "name": "resnet18", "kwargs": {"num_classes": "1000; rm -rf"}},
    }


PAYLOADS = list(_payloads(Path("x")))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_malicious_spec_runs_nothing_on_load(demo_file, tmp_path, monkeypatch, payload):
    import timm
    import torchvision

    called = []
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: called.append(a))
    monkeypatch.setattr(torchvision.models, "get_model", lambda *a, **k: called.append(a))
    marker = tmp_path / "pwned"
    evil = _with_spec(demo_file, _payloads(marker)[payload], tmp_path / "evil.safetensors")
    with pytest.raises(PoolswapError) as info:
        poolswap.load(evil)
    assert "\n" not in str(info.value)
    assert not marker.exists() and called == []
    with pytest.raises(PoolswapError):
        load_model(str(evil))
    assert not marker.exists() and called == []


def test_the_refusal_names_the_module_and_the_flag(demo_file, tmp_path):
    evil = _with_spec(demo_file, _payloads(tmp_path / "pwned")["subprocess"], tmp_path / "evil.safetensors")
    with pytest.raises(PoolswapError, match=r"'subprocess:getoutput'.*--trust-module subprocess.*trust_module="):
        poolswap.load(evil)
    with pytest.raises(PoolswapError, match="'pretrained_cfg_overlay', which a model file may not set"):
        poolswap.load(_with_spec(demo_file, _payloads(tmp_path)["timm_overlay"], tmp_path / "o.safetensors"))


@pytest.mark.parametrize("command", ["export", "validate", "eval", "finetune", "run"])
def test_the_cli_runs_nothing_from_a_file(demo_file, tmp_path, capsys, command):
    marker = tmp_path / "pwned"
    evil = _with_spec(demo_file, _payloads(marker)["subprocess"], tmp_path / "evil.safetensors")
    data = tmp_path / "data"
    (data / "train" / "a").mkdir(parents=True)
    (data / "val" / "a").mkdir(parents=True)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not used: the checkpoint is read first")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: subprocess:getoutput\nmodel_kwargs: {{cmd: 'touch {marker}'}}\ninput_size: [1, 16, 16]\n")
    argv = {
        "export": ["export", str(evil), "-o", str(tmp_path / "out.onnx")],
        "validate": ["validate", str(onnx), "--against", str(evil)],
        "eval": ["eval", str(evil), "--data", str(data)],
        "finetune": ["finetune", str(evil), "--data", str(data), "-o", str(tmp_path / "run")],
        "run": ["run", str(recipe)],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists()
    assert len(err.splitlines()) == 1 and "--trust-module subprocess" in err
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "run").exists()


def test_a_trusted_module_loads(demo_file, tmp_path, capsys):
    """A user's own package.module:factory loads once its module is trusted (API and CLI)."""
    spec = {"source": "python", "name": "poolswap.demo.model:DigitsCNN", "kwargs": {"num_classes": 10}}
    mine = _with_spec(demo_file, spec, tmp_path / "mine.safetensors")
    with pytest.raises(PoolswapError, match="--trust-module poolswap.demo.model"):
        poolswap.load(mine)
    model = poolswap.load(mine, trust_module="poolswap.demo.model")
    assert type(model).__name__ == "DigitsCNN" and len(poolswap.softpool_modules(model)) == 3
    assert poolswap.load(mine, trust_module=["other", "poolswap.demo.model"]) is not None
    out = tmp_path / "mine.onnx"
    assert main(["export", str(mine), "-o", str(out), "--trust-module", "poolswap.demo.model"]) == 0
    assert out.is_file()


def test_the_model_object_passed_in_needs_no_trust(demo_file, tmp_path):
    evil = _with_spec(demo_file, _payloads(tmp_path / "pwned")["subprocess"], tmp_path / "evil.safetensors")
    model = poolswap.load(evil, model=create_model(DEMO))
    assert len(poolswap.softpool_modules(model)) == 3 and not (tmp_path / "pwned").exists()
    # the model keeps its own spec; the file's is never remembered, so nothing later (save, finetune's original)
    # builds it
    assert getattr(model, "poolswap_spec")["name"] == DEMO
    plain = poolswap.load(evil, model=create_model(DEMO).__class__())
    assert getattr(plain, "poolswap_spec", None) is None
    with pytest.raises(TypeError, match="torch.nn.Module"):
        poolswap.load(evil, model="subprocess")  # type: ignore[arg-type]


def test_shipped_factories_and_allowed_kwargs_pass():
    assert check_file_spec({"source": "python", "name": DEMO, "kwargs": {"num_classes": 3}}).name == DEMO
    assert check_file_spec({"source": "timm", "name": "resnet18.a1_in1k",
                            "kwargs": {"num_classes": 7, "in_chans": 1, "drop_rate": 0.1}}).kwargs["in_chans"] == 1
    assert check_file_spec({"source": "torchvision", "name": "googlenet",
                            "kwargs": {"aux_logits": False, "init_weights": False, "num_classes": 3}})
    with pytest.raises(PoolswapError, match="width to 10000000"):
        check_file_spec({"source": "python", "name": DEMO, "kwargs": {"width": 10_000_000}})
    with pytest.raises(PoolswapError, match="num_classes to True"):
        check_file_spec({"source": "timm", "name": "resnet18", "kwargs": {"num_classes": True}})


def test_save_refuses_a_spec_that_load_would_refuse(tmp_path):
    model = create_model("timm:resnet18", num_classes=3)
    with pytest.raises(PoolswapError, match="checkpoint_path"):
        poolswap.save(model, tmp_path / "x.safetensors", spec={"source": "timm", "name": "resnet18",
                                                                "kwargs": {"checkpoint_path": "a.pth"}})
    assert list(tmp_path.iterdir()) == []


def test_the_demo_file_keeps_its_spec(demo_file):
    assert read_header(demo_file)["spec"]["name"] == DEMO


@pytest.mark.parametrize("edit", ["spec_not_a_mapping", "kwargs_not_a_mapping", "manifest_sites", "header_not_json"])
def test_a_damaged_header_is_one_line(demo_file, tmp_path, edit):
    with safe_open(str(demo_file), framework="pt") as f:
        header = json.loads(f.metadata()["poolswap"])
    if edit == "spec_not_a_mapping":
        header["spec"] = "subprocess:getoutput"
    elif edit == "kwargs_not_a_mapping":
        header["spec"]["kwargs"] = ["touch", "x"]
    elif edit == "manifest_sites":
        header["manifest"]["sites"] = [{"action": "swap"}]
    text = "{not json" if edit == "header_not_json" else json.dumps(header)
    path = tmp_path / "bad.safetensors"
    save_file(load_file(str(demo_file)), str(path), metadata={"poolswap": text})
    with pytest.raises(PoolswapError) as info:
        poolswap.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(TypeError, match="trust_module must be"):
        poolswap.load(demo_file, trust_module=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn"])
def test_a_torchvision_spec_fetches_no_backbone(monkeypatch, name):
    """Detection and segmentation builders default to an ImageNet backbone, downloaded even with weights=None;
    a file naming one must build the bare architecture, never reach the network or the hub cache."""
    import torch.hub
    import torchvision.models._api as api

    fetched = []

    def spy(url, *args, **kwargs):
        fetched.append(url)
        raise RuntimeError(f"network: {url}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", spy)
    monkeypatch.setattr(api, "load_state_dict_from_url", spy)
    model = check_file_spec({"source": "torchvision", "name": name, "kwargs": {"num_classes": 3}}).build()
    assert fetched == [] and isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int8, torch.bool, torch.float8_e4m3fn])
def test_a_weight_of_another_kind_is_one_line(demo_file, tmp_path, dtype):
    """complex/int/bool weights were cast silently (imaginary part and fractions dropped); float8 crashed isfinite."""
    tensors = load_file(str(demo_file))
    with safe_open(str(demo_file), framework="pt") as f:
        meta = f.metadata()
    tensors["block1.0.weight"] = tensors["block1.0.weight"].to(dtype)
    path = tmp_path / "odd.safetensors"
    save_file(tensors, str(path), metadata=meta)
    if dtype == torch.float8_e4m3fn:  # a float of another width is still a float: it loads
        assert len(poolswap.softpool_modules(poolswap.load(path))) == 3
        return
    with pytest.raises(PoolswapError, match=r"dtype mismatch: block1\.0\.weight .* vs model float32") as info:
        poolswap.load(path)
    assert "\n" not in str(info.value)


def test_a_deeply_nested_header_is_one_line(demo_file, tmp_path):
    path = tmp_path / "deep.safetensors"
    save_file(load_file(str(demo_file)), str(path), metadata={"poolswap": '{"a":' * 100_000 + "1" + "}" * 100_000})
    with pytest.raises(PoolswapError, match="nested too deeply"):
        poolswap.load(path)


def test_a_hostile_site_name_keeps_the_error_on_one_line(demo_file, tmp_path, capsys):
    """A manifest's site name comes from the file: a newline in it cut the CLI's line before the reason,
    an escape sequence reached the terminal."""
    with safe_open(str(demo_file), framework="pt") as f:
        header = json.loads(f.metadata()["poolswap"])
    header["manifest"]["sites"][0]["name"] = "pool1\nfake: all good\x1b[2J"
    path = tmp_path / "name.safetensors"
    save_file(load_file(str(demo_file)), str(path), metadata={"poolswap": json.dumps(header)})
    assert main(["export", str(path), "-o", str(tmp_path / "out.onnx")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err
    assert "which this architecture does not have" in err


@pytest.mark.parametrize("beta", [[2.0] * 1000, "2", True])
def test_a_damaged_fixed_beta_is_refused_not_replaced(demo_file, tmp_path, beta):
    """A fixed beta that is not a number was silently replaced by the config's default beta."""
    with safe_open(str(demo_file), framework="pt") as f:
        header = json.loads(f.metadata()["poolswap"])
    header["manifest"]["sites"][0]["beta"] = beta
    path = tmp_path / "beta.safetensors"
    save_file(load_file(str(demo_file)), str(path), metadata={"poolswap": json.dumps(header)})
    with pytest.raises(PoolswapError, match=r"site 'pool1' the fixed beta .*one number") as info:
        poolswap.load(path)
    assert "\n" not in str(info.value)
