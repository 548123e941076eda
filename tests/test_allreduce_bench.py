"""The all-reduce benchmark script the multi-node example runs: compiled, its figures checked, and run for real
with torch's gloo backend on CPU where torch is installed."""

from __future__ import annotations

import importlib.util
import py_compile
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "gpucluster" / "data" / "allreduce_bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("allreduce_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_compiles(tmp_path):
    py_compile.compile(str(SCRIPT), cfile=str(tmp_path / "bench.pyc"), doraise=True)


def test_importing_needs_no_torch():
    assert "torch" not in vars(load_bench())


@pytest.mark.parametrize(
    ("size", "seconds", "ranks", "algbw", "busbw"),
    [
        (1_000_000_000, 0.01, 8, 100.0, 175.0),  # 2(n-1)/n = 1.75
        (1_000_000_000, 0.01, 2, 100.0, 100.0),  # two ranks: every byte crosses once each way
        (1_000_000_000, 0.01, 1, 100.0, 0.0),  # one rank moves nothing over a link
        (8 << 20, 0.001, 32, 8.388608, 16.252928),
    ],
)
def test_bus_bandwidth_is_nccl_tests_definition(size, seconds, ranks, algbw, busbw):
    bench = load_bench()
    assert bench.algorithm_bandwidth(size, seconds) == pytest.approx(algbw)
    assert bench.bus_bandwidth(size, seconds, ranks) == pytest.approx(busbw, rel=1e-6)


def test_message_sizes_double_and_stay_whole_float32_buffers():
    bench = load_bench()
    assert bench.message_sizes(8, 64, 2) == [8, 16, 32, 64]
    assert bench.message_sizes(6, 100, 3) == [4, 16, 52]
    assert bench.message_sizes(8 << 20, 1 << 30, 2)[-1] == 1 << 30
    for bad in ((2, 64, 2), (64, 8, 2), (8, 64, 1)):
        with pytest.raises(ValueError):
            bench.message_sizes(*bad)


def test_help_runs_without_torch():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "--max-bytes" in result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runs_for_real_on_two_cpu_ranks_with_gloo():
    pytest.importorskip(
        "torch",
        reason="torch is not installed: its PyPI wheel pulls gigabytes of CUDA libraries, so dev.sh does not"
        " install it (CPU-only wheels come only from PyTorch's own index)",
    )
    port = str(_free_port())
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2"}
    args = ["--min-bytes", "1024", "--max-bytes", "65536", "--factor", "4", "--warmup", "1", "--iters", "2"]
    ranks = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [rank.communicate(timeout=120) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], outputs
    rows = [line.split() for line in outputs[0][0].splitlines() if not line.startswith("#")]
    assert [int(row[0]) for row in rows] == [1024, 4096, 16384, 65536]
    assert all(float(row[3]) > 0 for row in rows)
    assert outputs[1][0] == "", "only rank 0 prints"
