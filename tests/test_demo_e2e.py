"""The full CPU demo (`make demo`): it trains, evaluates, writes its files and reaches its AP target."""
import json

import pytest

from conftest import run_python

# docs/demo.md ("What it reaches") promises box AP 55 or more on any x86 machine with 2 cores. The seven
# runs of the demo config measured there (seeds 0-2 in bf16 and in fp32 training on one thread, and
# this test's own run, bf16 seed 0 on two threads; AMD EPYC with AVX512-BF16, no AMX) reached 65.35 to
# 67.20. The
# floor lies 9 AP (rounded down to a whole AP) below the worst of them: twice the largest difference
# measured between two machines with one config and seed (4.5 AP: an Intel Xeon with AMX against the
# AMD EPYC, both training the earlier 850-step recipe in bf16).
TARGET_BOX_AP = 56.0
# bf16 and compiled evaluation of the trained model may cost at most this much box AP against fp32.
# Measured in this test's run (docs/speed.md, "What it costs in accuracy"): fused bf16 +0.05, compiled
# fp32 0.00, compiled bf16 +0.14; on the earlier recipe -0.11 and -0.13. The limit is over 3x the largest.
MAX_PRECISION_AP_LOSS = 0.5


@pytest.mark.e2e
def test_demo_reaches_target_ap(tmp_path):
    result = run_python(["tools/demo.py", "--output-dir", str(tmp_path), "--precision", "fp32,bf16", "--compile"],
                        timeout=2400)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ["metrics.json", "model_final.pth", "curves.png", "predictions.png", "summary.json"]:
        assert (tmp_path / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["bbox"]["AP"] >= TARGET_BOX_AP, summary
    # The fused model's AP on the same images equals the unfused one's (float rounding aside); bf16
    # and compiled evaluation stay within the target.
    evaluation = summary["evaluation"]
    assert list(evaluation) == ["unfused", "fused", "fused-bf16", "compiled", "compiled-bf16"]
    assert abs(evaluation["fused"]["AP"] - evaluation["unfused"]["AP"]) < 0.05, evaluation
    for mode in ("fused-bf16", "compiled", "compiled-bf16"):
        assert abs(evaluation[mode]["AP"] - evaluation["unfused"]["AP"]) <= MAX_PRECISION_AP_LOSS, evaluation
