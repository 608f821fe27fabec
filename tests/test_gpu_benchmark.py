"""benchmarks/gpu.py runs end to end on a CPU with --quick and writes its result file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # 21-36 s on 2 loaded cores: a benchmark script's smoke test, outside make test's budget (make test-all)
def test_gpu_benchmark_quick_writes_its_results(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--quick", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "jax.devices():" in proc.stdout and "device kind:" in proc.stdout
    data = json.loads(out.read_text())

    assert data["quick"] is True
    assert data["device"]["kind"] and data["device"]["devices"] and data["device"]["backend"]
    assert len(data["machine"]["load_average"]) == 3
    assert all(r > 0 for r in data["matmul"]["flops_per_s"].values())

    pets = data["pets"]
    assert pets["seconds"] > 0 and pets["first_call_s"] > 0
    assert 0 < pets["fraction"] and pets["matmul_flops_per_s"] > 0 and pets["model_flops_per_plan"] > 0
    assert len(pets["seconds_all"]) == 3
    assert pets["config"]["propagation"] == "tsinf"

    parts = data["mbpo"]["epoch_parts_s"]["k=1"]
    assert set(parts) == {"model_fit", "model_rollouts", "sac_updates", "env_steps", "total"}
    assert parts["model_fit"] > 0 and parts["total"] > 0
    assert all(v >= 0 for v in parts.values())
    per_call = data["mbpo"]["per_call_s"]
    assert per_call["policy_update_many_G"] > 0 and per_call["rollout"]["1"]["fast_s"] >= 0
