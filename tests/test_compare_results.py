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
