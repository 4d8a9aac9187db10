"""The benchmarks run end to end and report ratios against baselines of the same run (no timing asserts)."""

from __future__ import annotations

import json

import pytest

from poolswap.bench.model import ModelBenchConfig, format_model_table, run_model_benchmark
from poolswap.bench.op import MAX_POOLS, OpBenchConfig, format_op_table, run_op_benchmark
from poolswap.cli import main


def test_op_benchmark_reports_every_variant_against_the_fastest_max_pooling():
    pytest.importorskip("onnxruntime")
    result = run_op_benchmark(OpBenchConfig(batch=1, channels=2, size=16, min_run_time=0.01, threads=2))
    assert result["threads"] == 2
    scaling = result["fused_thread_scaling"]
    assert scaling["threads"] == 2 and scaling["forward_speedup"] > 0
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"max_pool2d", "max_pool2d channels_last", "ort MaxPool", "ort AveragePool",
                         "avgpool_decomposition", "softpool_fused", "softpool_fused channels_last",
                         "softpool_reference"}
    # The denominator is the fastest of the max poolings, forward (ORT's included) and fwd+bwd (PyTorch's only).
    fastest = result["fastest_max"]
    maxes = [rows[name] for name in MAX_POOLS]
    assert rows[fastest["forward"]]["forward_ms"] == min(r["forward_ms"] for r in maxes)
    assert fastest["forward_backward"] in ("max_pool2d", "max_pool2d channels_last")
    assert rows[fastest["forward_backward"]]["forward_backward_ms"] == min(
        r["forward_backward_ms"] for r in maxes if r["forward_backward_ms"] is not None)
    for r in rows.values():
        assert r["forward_ms"] > 0
        assert r["forward_vs_max"] == pytest.approx(r["forward_ms"] / rows[fastest["forward"]]["forward_ms"])
        if r["variant"].startswith("ort "):  # forward only
            assert r["forward_backward_ms"] is None and r["forward_backward_vs_max"] is None
        else:
            assert r["forward_backward_vs_max"] == pytest.approx(
                r["forward_backward_ms"] / rows[fastest["forward_backward"]]["forward_backward_ms"])
    assert min(r["forward_vs_max"] for r in maxes) == pytest.approx(1.0)
    # The floor: x is 1x2x16x16 floats (2048 bytes), y 1x2x8x8 (512); fwd+bwd adds grad_y, x again and grad_x.
    copies = result["bandwidth"]
    assert copies["forward"]["bytes"] == 2048 + 512 and copies["forward_backward"]["bytes"] == 2560 + 512 + 2 * 2048
    for name in ("softpool_fused", "softpool_fused channels_last"):
        r = rows[name]
        assert r["bytes_forward"] == 2560 and r["bytes_forward_backward"] == 7168
        assert r["floor_fraction_forward"] == pytest.approx(copies["forward"]["copy_ms"] / r["forward_ms"])
        assert r["floor_fraction_forward_backward"] == pytest.approx(
            copies["forward_backward"]["copy_ms"] / r["forward_backward_ms"])
    assert "floor_fraction_forward" not in rows["max_pool2d"]
    table = format_op_table(result)
    assert f"the fastest max pooling: {fastest['forward']} (forward)" in table
    assert "| softpool_fused channels_last |" in table and "| ort MaxPool |" in table
    assert "| softpool_fused | 0.0 |" in table  # the floor table: 2560 bytes is 0.0 MB


def test_op_benchmark_without_onnxruntime_says_so(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    result = run_op_benchmark(OpBenchConfig(batch=1, channels=2, size=8, min_run_time=0.01, threads=1,
                                            include_reference=False))
    assert not any(r["variant"].startswith("ort ") for r in result["rows"])
    assert result["fastest_max"]["forward"] in ("max_pool2d", "max_pool2d channels_last")
    assert "onnxruntime is not installed" in format_op_table(result)


@pytest.mark.slow
def test_model_benchmark_compares_original_and_converted():
    result = run_model_benchmark(ModelBenchConfig(models=["torchvision:resnet18"], batch=2, size=64, min_run_time=0.01))
    (row,) = result["rows"]
    assert row["train_step_ratio"] == pytest.approx(row["converted"]["train_step_ms"] / row["original"]["train_step_ms"])
    assert "torchvision:resnet18" in format_model_table(result)


def test_bench_command_writes_json_and_a_png_chart(tmp_path, capsys):
    out, chart = tmp_path / "op.json", tmp_path / "op.png"
    assert main(["bench", "op", "--batch", "1", "--channels", "2", "--size", "12", "--min-run-time", "0.01",
                 "--no-reference", "--json", str(out), "--plot", str(chart)]) == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(out.read_text())
    assert [r["variant"] for r in data["rows"]][:5] == ["max_pool2d", "max_pool2d channels_last",
                                                        "avgpool_decomposition", "softpool_fused",
                                                        "softpool_fused channels_last"]
    assert data["fastest_max"]["forward"] in MAX_POOLS and data["bandwidth"]["forward"]["gb_per_s"] > 0
    assert "forward / fastest max" in capsys.readouterr().out


def test_ort_benchmark_times_every_variant_of_the_pool_alone(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out, chart = tmp_path / "ort.json", tmp_path / "ort.png"
    assert main(["bench", "ort", "--models", "op", "--batches", "1", "2", "--size", "16", "--min-run-time", "0.01",
                 "--threads", "2", "--json", str(out), "--plot", str(chart)]) == 0
    data = json.loads(out.read_text())
    assert data["threads"] == 2
    assert [(r["model"], r["batch"]) for r in data["rows"]] == [("op", 1), ("op", 2)]
    for r in data["rows"]:
        assert set(r["ms"]) == {"original", "library", "fast body", "exact body", "library 1 thread"}
        assert min(r["ms"].values()) > 0
        assert r["library thread speedup"] == pytest.approx(r["ms"]["library 1 thread"] / r["ms"]["library"])
        assert r["library/original"] == pytest.approx(r["ms"]["library"] / r["ms"]["original"])
        assert r["exact body/library"] == pytest.approx(r["ms"]["exact body"] / r["ms"]["library"])
        # The per-op profile: the library's one node is a SoftPool; the original's MaxPool (which ORT may
        # run in its blocked layout, between reorders).
        library, original = r["profile"]["library"], r["profile"]["original"]
        assert set(library["ops ms"]) == {"SoftPool"} and "MaxPool" in original["ops ms"]
        assert library["ms"]["softpool"] == library["ops ms"]["SoftPool"] > 0
        assert original["ms"]["pools"] > 0 and original["ms"]["softpool"] == 0
        assert library["run ms"] >= library["ms"]["softpool"]
        assert sum(library["share"].values()) == pytest.approx(1.0)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| op | 2 |" in printed and "1 -> 2 threads" in printed and "ORT profile" in printed


@pytest.mark.slow
def test_ort_benchmark_converts_and_exports_a_model():
    pytest.importorskip("onnxruntime")
    from poolswap.bench.ort import OrtBenchConfig, format_ort_table, run_ort_benchmark

    result = run_ort_benchmark(OrtBenchConfig(models=["torchvision:resnet18", "poolswap.demo.model:digits_cnn"],
                                              batches=[1], size=64, repeats=2, warmup=1, min_seconds=0.01,
                                              profile_runs=2))
    row, demo = result["rows"]  # the demo's network takes one input channel: read off its first conv
    assert row["model"] == "torchvision:resnet18" and row["provider"] == "CPUExecutionProvider"
    assert "| torchvision:resnet18 | 1 |" in format_ort_table(result)
    for r, pools in ((row, 1), (demo, 3)):
        library, original = r["profile"]["library"], r["profile"]["original"]
        assert library["ms"]["softpool"] > 0 and library["ms"]["pools"] == 0
        assert original["ms"]["pools"] > 0 and original["ms"]["softpool"] == 0
        assert library["ms"]["rest"] > 0  # the convolutions


def test_every_variant_is_timed_on_the_threads_the_result_reports(monkeypatch):
    """torch.utils.benchmark.Timer defaults to one thread: the benchmarks must pass theirs."""
    from poolswap.bench import _timing

    seen = []
    real_timer = _timing.Timer

    def recording_timer(*args, **kwargs):
        seen.append(kwargs.get("num_threads", 1))
        return real_timer(*args, **kwargs)

    monkeypatch.setattr(_timing, "Timer", recording_timer)
    result = run_op_benchmark(OpBenchConfig(batch=1, channels=2, size=8, min_run_time=0.01, threads=2,
                                            include_reference=False, include_ort=False))
    # 5 variants x (forward, forward+backward) and the two bandwidth copies on 2 threads, then the fused
    # kernel's two on 1 thread
    assert seen == [2] * 12 + [1] * 2 and result["threads"] == 2
