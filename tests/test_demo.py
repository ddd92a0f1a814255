"""tools/demo.py on the tiny dataset: its files, and --fuse evaluating the fused model too."""
from conftest import load_strict_json, load_tool


def test_demo_with_fuse_reports_both_evaluations(tiny_shapes, tmp_path):
    demo = load_tool("demo")
    summary = demo.main(["--output-dir", str(tmp_path), "--fuse", "--num-images", "2",
                         "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "('tiny_shapes_val',)",
                         "SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "TEST.EVAL_PERIOD", "0",
                         "DATALOADER.NUM_WORKERS", "0"])
    for name in ["metrics.json", "model_final.pth", "curves.png", "predictions.png", "summary.json"]:
        assert (tmp_path / name).stat().st_size > 0, name
    evaluation = summary["evaluation"]
    assert evaluation["unfused"]["seconds"] > 0 and evaluation["fused"]["seconds"] > 0
    # Folding is exact up to float rounding, so the detections and their AP stay the same.
    assert abs(evaluation["fused"]["AP"] - evaluation["unfused"]["AP"]) < 0.05
    assert load_strict_json((tmp_path / "summary.json").read_text())["evaluation"] == evaluation
    for line in (tmp_path / "metrics.json").read_text().splitlines():  # NaN APs are null, with a note
        record = load_strict_json(line)
        assert all(record[key] is None for key in record.get("non_finite_as_null", {}))
