"""The full CPU demo (`make demo`): it trains, evaluates, writes its files and reaches its AP target."""
import json

import pytest

from conftest import run_python

# docs/demo.md states the AP the demo reaches; this is the floor the issue set for it.
TARGET_BOX_AP = 50.0
# bf16 inference (and the compiled backbone) may cost at most this much box AP (issue 12's target).
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
