"""The full CPU demo (`make demo`): it trains, evaluates, writes its files and reaches its AP target."""
import json

import pytest

from conftest import run_python

# README states the AP the demo reaches; this is the floor the issue set for it.
TARGET_BOX_AP = 50.0


@pytest.mark.e2e
def test_demo_reaches_target_ap(tmp_path):
    result = run_python(["tools/demo.py", "--output-dir", str(tmp_path), "--fuse"], timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ["metrics.json", "model_final.pth", "curves.png", "predictions.png", "summary.json"]:
        assert (tmp_path / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["bbox"]["AP"] >= TARGET_BOX_AP, summary
    # --fuse: the fused model's AP on the same images equals the unfused one's (float rounding aside).
    evaluation = summary["evaluation"]
    assert abs(evaluation["fused"]["AP"] - evaluation["unfused"]["AP"]) < 0.05, evaluation
