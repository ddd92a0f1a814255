"""tools/demo.py on the tiny dataset: its files, and --fuse / --precision evaluating the fused model too."""
from conftest import load_strict_json, load_tool


def test_demo_with_fuse_reports_every_evaluation(tiny_shapes, tmp_path):
    demo = load_tool("demo")
    summary = demo.main(["--output-dir", str(tmp_path), "--precision", "fp32,bf16", "--num-images", "2",
                         "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "('tiny_shapes_val',)",
                         "SOLVER.MAX_ITER", "3", "SOLVER.IMS_PER_BATCH", "2", "TEST.EVAL_PERIOD", "0",
                         "DATALOADER.NUM_WORKERS", "0"])
    for name in ["metrics.json", "model_final.pth", "curves.png", "predictions.png", "summary.json"]:
        assert (tmp_path / name).stat().st_size > 0, name
    evaluation = summary["evaluation"]
    assert list(evaluation) == ["unfused", "fused", "fused-bf16"]
    assert all(e["seconds"] > 0 and e["time_over_unfused"] > 0 for e in evaluation.values())
    # Folding is exact up to float rounding, so the detections and their AP stay the same.
    assert abs(evaluation["fused"]["AP"] - evaluation["unfused"]["AP"]) < 0.05
    # --amp auto by default: bf16 autocast training where this CPU has native bf16
    assert summary["training_precision"] == ("bf16 autocast" if demo.has_native_bf16() else "fp32")
    assert summary["training_precision_reason"] == demo.amp_reason("auto", [])
    assert load_strict_json((tmp_path / "summary.json").read_text())["evaluation"] == evaluation
    for line in (tmp_path / "metrics.json").read_text().splitlines():  # NaN APs are null, with a note
        record = load_strict_json(line)
        assert all(record[key] is None for key in record.get("non_finite_as_null", {}))


def test_amp_option_sets_solver_amp_unless_overridden(monkeypatch):
    from resnext_det import load_config

    demo = load_tool("demo")
    assert demo.amp_overrides("off") == []
    assert demo.amp_overrides("on") == ["SOLVER.AMP.ENABLED", "True"]
    for native, expected in ((True, ["SOLVER.AMP.ENABLED", "True"]), (False, []), (None, [])):
        monkeypatch.setattr(demo, "has_native_bf16", lambda: native)
        assert demo.amp_overrides("auto") == expected
    args = demo.parse_args(["--amp", "on", "SOLVER.AMP.ENABLED", "False"])
    cfg = load_config(demo.DEFAULT_CONFIG, demo.amp_overrides(args.amp) + args.opts)
    assert cfg.SOLVER.AMP.ENABLED is False  # the user's explicit override wins


def test_the_log_says_why_the_demo_trains_in_its_precision(monkeypatch):
    demo = load_tool("demo")
    monkeypatch.setattr(demo, "has_native_bf16", lambda: True)
    assert "computes bf16 natively" in demo.amp_reason("auto", [])
    monkeypatch.setattr(demo, "has_native_bf16", lambda: False)
    assert "emulates bf16" in demo.amp_reason("auto", ["SOLVER.MAX_ITER", "10"])
    monkeypatch.setattr(demo, "has_native_bf16", lambda: None)
    assert "not x86" in demo.amp_reason("auto", [])
    assert demo.amp_reason("off", []) == "--amp off"
    assert "wins over --amp" in demo.amp_reason("on", ["SOLVER.AMP.ENABLED", "False"])


def test_the_comparison_recipe_is_the_demo_model_on_its_850_step_schedule():
    """make compare and the Mask R-CNN demo train the model of the demo on the schedule their
    figures were measured with (docs/comparison.md, docs/training.md): only these keys differ."""
    import os

    import yaml

    from resnext_det import load_config
    from resnext_det.engine.resume_config import config_differences

    demo = load_tool("demo")
    compare = load_config(os.path.join(os.path.dirname(demo.DEFAULT_CONFIG), "shapes_compare_X50_FPN.yaml"))
    ours = load_config(demo.DEFAULT_CONFIG)
    assert config_differences(yaml.safe_load(ours.dump()), compare) == [
        ("MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", 1, 0), ("SOLVER.MAX_ITER", 1200, 850),
        ("SOLVER.STEPS", [1000, 1150], [650, 800]), ("TEST.EVAL_PERIOD", 600, 300)]
    assert (ours.OUTPUT_DIR, compare.OUTPUT_DIR) == ("output/demo", "output/compare")
    assert (ours.MODEL.WEIGHTS, ours.MODEL.DEVICE) == (compare.MODEL.WEIGHTS, compare.MODEL.DEVICE)
    mask = load_config(os.path.join(os.path.dirname(demo.DEFAULT_CONFIG), "shapes_mask_rcnn_X50_FPN.yaml"))
    assert (mask.SOLVER.MAX_ITER, mask.SOLVER.STEPS, mask.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO) == (850, (650, 800), 0)


def test_drawing_predictions_reads_no_weights_file(tiny_shapes, tmp_path):
    """The drawn predictions come from the trained model's own weights: MODEL.WEIGHTS is not read again
    (a file there that needs code to load would run it in Detectron2's DefaultPredictor)."""
    import os

    from test_safe_loading import write_malicious

    from resnext_det import load_config
    from resnext_det.engine import Trainer

    demo = load_tool("demo")
    marker = tmp_path / "ran"
    weights = write_malicious(tmp_path / "evil.pth", marker)
    cfg = load_config(demo.DEFAULT_CONFIG, ["DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST",
                                            "('tiny_shapes_val',)", "MODEL.WEIGHTS", weights])
    model = Trainer.build_model(cfg)
    model.eval()
    drawing = tmp_path / "predictions.png"
    demo.draw_val_predictions(cfg, model, str(drawing), num_images=1)
    assert drawing.stat().st_size > 0 and not os.path.exists(marker)
    assert cfg.MODEL.WEIGHTS == weights  # the caller's config is left as it was
