"""tools/compare_results.py on two short runs on the embedded shapes dataset."""
import pytest

from conftest import load_tool


@pytest.fixture(scope="module")
def two_runs(tiny_shapes, tmp_path_factory):
    from detectron2.engine import default_argument_parser

    train_net = load_tool("train_net")
    runs = []
    for arch in ["resnet50", "resnext50_32x4d"]:
        out = tmp_path_factory.mktemp(arch)
        args = default_argument_parser().parse_args([
            "--config-file", "configs/demo/shapes_faster_rcnn_X50_FPN.yaml", "MODEL.RESNEXT.ARCH", arch,
            "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "('tiny_shapes_val',)",
            "SOLVER.MAX_ITER", "4", "SOLVER.IMS_PER_BATCH", "2", "TEST.EVAL_PERIOD", "4",
            "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(out)])
        train_net.main(args)
        runs.append(str(out))
    return runs


def test_compare_prints_table_and_chart(two_runs, tmp_path, capsys):
    compare = load_tool("compare_results")
    chart = tmp_path / "ap.png"
    rows = compare.main(two_runs + ["--plot", str(chart)])
    out = capsys.readouterr().out
    assert [r["arch"] for r in rows] == ["resnet50", "resnext50_32x4d"]
    assert "| run | backbone | AP | AP50 | AP75 | APs | APm | APl | params (M) | GFLOPs |" in out
    assert all(r["train_s_per_iter"] > 0 and r["inference_s_per_img"] > 0 for r in rows)
    assert abs(rows[0]["params_M"] - 25.56) < 0.01 and abs(rows[1]["params_M"] - 25.03) < 0.01
    assert chart.stat().st_size > 0


def test_compare_rejects_a_directory_that_is_not_a_run(tmp_path):
    compare = load_tool("compare_results")
    with pytest.raises(SystemExit, match="is not a finished run directory"):
        compare.main([str(tmp_path)])


# ---- several seeds: statistics and the driver (tools/run_comparison.py) ---------------------------

def _fake_run(folder, arch, seed, ap):
    """What compare_results reads from a finished demo run."""
    import json

    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"MODEL": {"RESNEXT": {"ARCH": arch}}, "SEED": seed}))
    (folder / "metrics.json").write_text(json.dumps({"iteration": 9, "time": 0.5, "bbox/AP": ap, "bbox/AP50": ap + 20,
                                                     "bbox/AP75": ap + 5}) + "\n")
    (folder / "summary.json").write_text("{}")


def test_seed_statistics_and_paired_difference():
    from resnext_det.comparison import metric_summary, paired_difference

    r50 = [{"seed": s, "AP": ap} for s, ap in enumerate([50.0, 52.0, 54.0])]
    x50 = [{"seed": s, "AP": ap} for s, ap in enumerate([51.0, 54.0, 54.0, 99.0])][:3] + [{"seed": 7, "AP": 60.0}]
    spread = metric_summary(r50)
    assert (spread["n"], spread["mean"], spread["std"], spread["min"], spread["max"]) == (3, 52.0, 2.0, 50.0, 54.0)
    assert spread["ci95"] == pytest.approx(4.303 * 2.0 / 3 ** 0.5)
    diff = paired_difference(x50, r50)  # seed 7 has no partner
    assert diff["seeds"] == [0, 1, 2] and diff["mean"] == pytest.approx(1.0) and diff["std"] == pytest.approx(1.0)
    assert metric_summary([{"AP": float("nan")}]) is None
    one = metric_summary(r50[:1])
    assert one["std"] is None and one["ci95"] is None


def test_run_comparison_trains_each_seed_and_backbone_once(tmp_path, monkeypatch, capsys):
    import json

    driver = load_tool("run_comparison")
    commands = []

    def fake_demo(command):
        commands.append(command)
        arch, seed = command[command.index("MODEL.RESNEXT.ARCH") + 1], int(command[command.index("SEED") + 1])
        out = command[command.index("--output-dir") + 1]
        _fake_run(__import__("pathlib").Path(out), arch, seed, 50.0 + seed + (1.0 if arch == "resnext50_32x4d" else 0))
        return 0

    monkeypatch.setattr(driver.subprocess, "call", fake_demo)
    argv = ["--config-file", "configs/demo/shapes_faster_rcnn_X50_FPN.yaml", "--archs", "resnet50",
            "resnext50_32x4d", "--seeds", "2", "--output-dir", str(tmp_path), "SOLVER.MAX_ITER", "5"]
    rows = driver.main(argv)
    trained = [(c[c.index("MODEL.RESNEXT.ARCH") + 1], c[c.index("SEED") + 1]) for c in commands]
    assert trained == [("resnet50", "0"), ("resnext50_32x4d", "0"), ("resnet50", "1"), ("resnext50_32x4d", "1")]
    assert all(c[-2:] == ["SOLVER.MAX_ITER", "5"] for c in commands)
    assert [(r["arch"], r["seed"]) for r in rows] == [("resnet50", 0), ("resnet50", 1), ("resnext50_32x4d", 0),
                                                     ("resnext50_32x4d", 1)]
    stats = json.loads((tmp_path / "comparison.json").read_text())["seed_statistics"]
    assert stats["paired_difference"]["resnext50_32x4d"]["AP"]["mean"] == pytest.approx(1.0)
    assert stats["per_backbone"]["resnet50"]["AP"]["mean"] == pytest.approx(50.5)
    assert "| resnext50_32x4d - resnet50 | 2 | 1.0 ± 0.0 | 1.0 to 1.0 |" in capsys.readouterr().out
    assert (tmp_path / "ap.png").stat().st_size > 0
    commands.clear()
    driver.main(argv)  # finished runs are kept
    assert commands == []


def test_run_comparison_refuses_a_finished_run_whose_request_changed(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    driver = load_tool("run_comparison")
    trained = []

    def fake_demo(command):
        out = command[command.index("--output-dir") + 1]
        trained.append(out)
        _fake_run(__import__("pathlib").Path(out), command[command.index("MODEL.RESNEXT.ARCH") + 1], 0, 50.0)
        return 0

    monkeypatch.setattr(driver.subprocess, "call", fake_demo)
    base = tmp_path / "Base.yaml"
    base.write_text("SOLVER:\n  MAX_ITER: 5\n")
    config = tmp_path / "demo.yaml"
    config.write_text("_BASE_: Base.yaml\nSEED: 0\n")
    runs = tmp_path / "runs"
    argv = ["--config-file", str(config), "--archs", "resnet50", "--output-dir", str(runs)]
    driver.main(argv)
    recorded = json.loads((runs / "resnet50" / "seed0" / "request.json").read_text())
    assert recorded["arguments"][-4:] == ["MODEL.RESNEXT.ARCH", "resnet50", "SEED", "0"]
    assert len(recorded["config_files"]) == 2  # the file and its _BASE_
    driver.main(argv)
    assert len(trained) == 1 and "same request, kept" in capsys.readouterr().out

    base.write_text("SOLVER:\n  MAX_ITER: 6\n")  # an edit in the _BASE_ chain counts
    with pytest.raises(SystemExit, match=r"finished with another request \(config file .*Base\.yaml changed since\); "
                                         r"pass --redo \(make compare REDO=1\)"):
        driver.main(argv)
    with pytest.raises(SystemExit, match=r"another request \(arguments .*, now .*SOLVER\.MAX_ITER 7'\)"):
        driver.main(argv + ["SOLVER.MAX_ITER", "7"])
    assert len(trained) == 1
    driver.main(argv + ["--redo"])
    assert len(trained) == 2
    driver.main(argv)  # the request was recorded again by the new run
    assert len(trained) == 2

    (runs / "resnet50" / "seed0" / "request.json").write_text("{not json")
    with pytest.raises(SystemExit, match=r"request\.json is not a request this tool wrote .*pass --redo"):
        driver.main(argv)
    (runs / "resnet50" / "seed0" / "request.json").unlink()  # a run from before requests were recorded
    driver.main(argv)
    assert len(trained) == 2 and "records no request" in capsys.readouterr().out
    shutil.rmtree(runs)
    config.write_text("_BASE_: Missing.yaml\n")
    with pytest.raises(SystemExit, match="error: .*Missing.yaml"):
        driver.main(argv)
    assert len(trained) == 2
