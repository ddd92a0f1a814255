"""tools/benchmark.py runs each kind of comparison and reports what it measured (no speed is asserted:
speed figures come from running the tool, see docs/speed.md)."""
import json

import pytest

from conftest import load_tool

benchmark = load_tool("benchmark")


def _rows(report, measure_prefix):
    return {r["variant"]: r for r in report["rows"] if r["measure"].startswith(measure_prefix)}


def test_backbone_against_detectron2_with_fpn(tmp_path, capsys):
    out = tmp_path / "bench.json"
    report = benchmark.main(["backbone", "resnet50", "--fpn", "--size", "64", "96", "--batch", "2",
                             "--repeats", "2", "--warmup", "0", "--json", str(out)])
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(report["rows"]))
    for batch in (1, 2):
        rows = _rows(report, f"backbone 64x96 batch {batch}")
        assert set(rows) == {"ours", "ours-fused", "peer"}
        assert rows["peer"]["ratio_to_peer"] == 1.0
        for row in rows.values():
            assert len(row["all_seconds"]) == 2 and row["seconds"] > 0 and row["peak_memory_gib"] >= 0
            assert row["ratio_to_peer"] == pytest.approx(row["seconds"] / rows["peer"]["seconds"])
    assert "ours/peer" in capsys.readouterr().out


def test_backbone_against_timm():
    pytest.importorskip("timm")
    report = benchmark.main(["backbone", "skresnext50_32x4d", "--peer", "timm", "--size", "64", "64",
                             "--batch", "1", "--repeats", "1", "--warmup", "0"])
    assert set(_rows(report, "backbone 64x64 batch 1")) == {"ours", "ours-fused", "peer"}


def test_detector_inference_and_training_iteration(tmp_path):
    report = benchmark.main(["detector", "--config-file", "configs/faster_rcnn_R50_FPN_1x.yaml",
                             "--size", "128", "160", "--repeats", "1", "--warmup", "0"])
    assert set(_rows(report, "Faster R-CNN inference 128x160")) == {"ours", "ours-fused", "peer"}
    assert set(_rows(report, "training iteration 128x160")) == {"ours", "peer"}


def test_coco_eval_backends_agree():
    pytest.importorskip("faster_coco_eval")
    report = benchmark.main(["coco-eval", "--images", "50", "--dets", "30", "--repeats", "1"])
    rows = _rows(report, "COCO bbox evaluation, 50 images x 30 detections")
    assert rows["faster-coco-eval"]["identical_stats"] is True
    assert 0.2 < rows["pycocotools"]["AP"] < 0.95  # a meaningful AP, identical in both backends
    assert rows["faster-coco-eval"]["AP"] == rows["pycocotools"]["AP"]


def test_peer_without_that_architecture_is_a_clear_error(capsys):
    with pytest.raises(SystemExit, match="Detectron2 has no built-in counterpart of seresnext50_32x4d.*--peer timm"):
        benchmark.cli(["backbone", "seresnext50_32x4d", "--size", "64", "64", "--repeats", "1"])
    with pytest.raises(SystemExit, match="timm has no FPN"):
        benchmark.cli(["backbone", "resnet50", "--peer", "timm", "--fpn", "--repeats", "1"])


def test_a_peer_computing_something_else_is_refused(monkeypatch):
    """The ratio is only meaningful for the same function: a peer with other weights is caught."""
    import torch

    real = benchmark.detectron2_backbone_peer

    def other_weights(*args, **kwargs):
        peer = real(*args, **kwargs)
        with torch.no_grad():
            peer.res2[0].conv1.weight.mul_(-1)
        return peer

    monkeypatch.setattr(benchmark, "detectron2_backbone_peer", other_weights)
    with pytest.raises(RuntimeError, match="peer computes something else than ours"):
        benchmark.main(["backbone", "resnet50", "--size", "64", "64", "--repeats", "1"])


def test_interleaved_rotates_the_order_and_counts_repeats():
    from resnext_det.benchmark import interleaved

    order = []
    timings = interleaved({k: (lambda k=k: order.append(k)) for k in "abc"}, repeats=3, warmup=1)
    assert order == list("abc") + list("abc") + list("bca") + list("cab")
    assert all(len(t.seconds) == 3 and t.median >= 0 for t in timings.values())


def test_merged_1x1_candidate_is_measured():
    report = benchmark.main(["merged-1x1", "resnet50", "--size", "64", "64", "--repeats", "1", "--warmup", "0"])
    measures = {r["measure"] for r in report["rows"]}
    assert measures == {"res2.0 conv1+shortcut (64, 16, 16) NCHW", "res2.0 conv1+shortcut (64, 16, 16) NHWC"}
    report = benchmark.main(["merged-1x1", "resnet50", "--stride-in-1x1", "--size", "64", "64",
                             "--repeats", "1", "--warmup", "0"])
    assert len({r["measure"] for r in report["rows"]}) == 8  # every stage's first block


def test_coco_eval_with_fewer_detections_than_objects_and_bad_counts():
    pytest.importorskip("faster_coco_eval")
    report = benchmark.main(["coco-eval", "--images", "10", "--dets", "3", "--repeats", "1"])
    assert all(row["identical_stats"] for row in report["rows"])
    with pytest.raises(SystemExit, match="--images 0 --dets 100: both must be at least 1"):
        benchmark.cli(["coco-eval", "--images", "0", "--repeats", "1"])


def test_deform_cost_says_why_detectron2_dcn_cannot_run():
    report = benchmark.main(["deform", "resnext50_32x4d", "--stages", "res5", "--size", "32", "32", "--repeats", "1",
                             "--warmup", "0"])
    assert set(_rows(report, "backbone 32x32")) == set(_rows(report, "forward + backward 32x32")) == {"plain", "ours-dcn"}
    assert _rows(report, "backbone 32x32")["plain"]["ratio_to_peer"] == 1.0
    assert "detectron2._C" in report["context"]["skipped"]["detectron2-dcn"]  # this install has no compiled ops


def test_deform_cost_against_detectron2_dcn_where_it_runs(detectron2_deform_classes, monkeypatch):
    """With Detectron2's DeformConv available (its CPU path: DCNv1, one offset group), its DCN backbone
    holds our weights and must compute the same features before it is timed."""
    monkeypatch.setattr(benchmark, "detectron2_dcn_unavailable", lambda spec, device: None)
    report = benchmark.main(["deform", "resnext50_32x4d", "--stages", "res3", "--size", "32", "32", "--repeats", "1",
                             "--warmup", "0", "--skip-train"])
    assert set(_rows(report, "backbone 32x32")) == {"plain", "ours-dcn", "detectron2-dcn"}
    assert report["context"]["skipped"] == {}


def test_dataset_checks_and_stop_together(tmp_path):
    """The costs docs/reliability.md names: the field checks against load_coco_json, the image pre-flight
    per format, and one agree() among two processes. --json is strict JSON."""
    from conftest import load_strict_json

    out = tmp_path / "checks.json"
    report = benchmark.main(["dataset-checks", "--images", "40", "--files", "3", "--repeats", "1",
                             "--json", str(out)])
    assert set(_rows(report, "COCO json, 40 images")) == {"plugin field checks", "load_coco_json"}
    assert set(_rows(report, "pre-flight check of 1000 image files")) == {"jpg files", "png files"}
    assert load_strict_json(out.read_text())["rows"] == json.loads(json.dumps(report["rows"]))
    report = benchmark.main(["stop-together", "--processes", "2", "--calls", "20", "--repeats", "2"])
    (row,) = report["rows"]
    assert row["measure"] == "agree() among 2 gloo processes, one call (s)" and len(row["all_seconds"]) == 2
    assert all(s > 0 for s in row["all_seconds"])


def _mode_rows(report, measure_prefix):
    return {(r["variant"], r["mode"]): r for r in report["rows"] if r["measure"].startswith(measure_prefix)}


def test_backbone_in_fp32_and_bf16_with_profile():
    report = benchmark.main(["backbone", "resnet50", "--size", "64", "96", "--batch", "1", "--repeats", "1",
                             "--warmup", "0", "--precision", "fp32,bf16", "--profile", "3"])
    rows = _mode_rows(report, "backbone 64x96 batch 1")
    assert set(rows) == {("ours", "fp32"), ("ours-fused", "fp32"), ("peer", "fp32"), ("ours-fused", "bf16"),
                         ("peer", "bf16")}
    bf16 = rows[("ours-fused", "bf16")]
    assert bf16["ratio_to_peer"] == pytest.approx(bf16["seconds"] / rows[("peer", "bf16")]["seconds"])
    assert bf16["ratio_to_peer_fp32"] == pytest.approx(bf16["seconds"] / rows[("peer", "fp32")]["seconds"])
    assert all(len(row["top_ops"]) == 3 and row["top_ops"][0][1] > 0 for row in rows.values())
    assert report["context"]["precision"] == ["fp32", "bf16"]


@pytest.mark.e2e
def test_compiled_modes_report_their_compilations():
    report = benchmark.main(["backbone", "resnet50", "--size", "160", "224", "--batch", "3", "--repeats", "1",
                             "--warmup", "0", "--compile"])  # bf16 compiled: test_detector_in_every_mode
    for batch in (1, 3):
        rows = _mode_rows(report, f"backbone 160x224 batch {batch}")
        compiled = {key: row for key, row in rows.items() if key[1].endswith("compiled")}
        assert set(compiled) == {("ours-fused", "fp32 compiled"), ("peer", "fp32 compiled")}
        # PyTorch specializes size-1 dimensions: batch 1 compiles, batch 3 once more (any batch > 1 after it)
        assert all(row["compilations"] == (1 if batch == 1 else 2) and row["compile_seconds"] > 0
                   for row in compiled.values())
    assert all(seconds > 0 for seconds in report["context"]["first_call_seconds"].values())


@pytest.mark.e2e
def test_detector_in_every_mode(tmp_path):
    report = benchmark.main(["detector", "--config-file", "configs/faster_rcnn_R50_FPN_1x.yaml", "--size", "192", "256",
                             "--repeats", "1", "--warmup", "0", "--precision", "fp32,bf16", "--compile"])
    inference = _mode_rows(report, "Faster R-CNN inference 192x256")
    assert set(inference) == {("ours", "fp32")} | {(who, mode) for who in ("ours-fused", "peer")
                                                  for mode in ("fp32", "bf16", "fp32 compiled", "bf16 compiled")}
    assert set(_mode_rows(report, "training iteration 192x256")) == {(who, p) for who in ("ours", "peer")
                                                                     for p in ("fp32", "bf16")}
