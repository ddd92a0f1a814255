"""Bad settings raise ConfigError naming the key, the value and what is valid."""
import pytest
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from resnext_det import ConfigError, add_resnext_config, create_backbone, load_config


def _build(**resnext):
    cfg = add_resnext_config(get_cfg())
    cfg.MODEL.BACKBONE.NAME = "build_resnext_fpn_backbone"
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    for key, value in resnext.items():
        cfg.MODEL.RESNEXT[key] = value
    return build_backbone(cfg, ShapeSpec(channels=3))


@pytest.mark.parametrize("overrides, words", [
    ({"ARCH": "resnext50_32x8d"}, ["MODEL.RESNEXT.ARCH", "'resnext50_32x8d'", "Did you mean", "resnext50_32x4d"]),
    ({"ARCH": "seresnext50_32x4d", "RADIX": 2}, ["MODEL.RESNEXT.RADIX=2", "split-attention"]),
    ({"ARCH": "resnest50", "ATTENTION": "se"}, ["MODEL.RESNEXT.ATTENTION='se'", "'none'"]),
    ({"ARCH": "resnest50", "RADIX": 3}, ["MODEL.RESNEXT.WIDTH_PER_GROUP=64", "divisible by radix=3"]),
    ({"DEPTH": 34}, ["MODEL.RESNEXT.DEPTH=34", "[50, 101, 152, 200, 269]"]),
    ({"NORM": "LN"}, ["MODEL.RESNEXT.NORM='LN'", "FrozenBN"]),
    ({"NORM": "GN", "NUM_GROUPS": 4, "WIDTH_PER_GROUP": 4}, ["MODEL.RESNEXT.NORM='GN'", "divisible by 32"]),
    ({"OUT_FEATURES": ["res6"]}, ["MODEL.RESNEXT.OUT_FEATURES", "res6", "subset"]),
    ({"RES5_DILATION": 4}, ["MODEL.RESNEXT.RES5_DILATION=4", "DC5"]),
    ({"ZERO_INIT_RESIDUAL": True}, ["MODEL.RESNEXT.ZERO_INIT_RESIDUAL", "FrozenBN"]),
    ({"ARCH": "resnest50", "STRIDE_IN_1X1": True}, ["MODEL.RESNEXT.STRIDE_IN_1X1", "avd"]),
    ({"ATTENTION": "cbam"}, ["MODEL.RESNEXT.ATTENTION='cbam'", "'se'"]),
    ({"OUT_FEATURES": ["res2", "res3"]}, ["MODEL.FPN.IN_FEATURES", "res4", "MODEL.RESNEXT.OUT_FEATURES"]),
])
def test_config_errors_name_key_and_fix(overrides, words):
    with pytest.raises(ConfigError) as err:
        _build(**overrides)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_freeze_at_error_names_detectron2_key():
    cfg = add_resnext_config(get_cfg())
    cfg.MODEL.BACKBONE.NAME = "build_resnext_backbone"
    cfg.MODEL.BACKBONE.FREEZE_AT = 7
    with pytest.raises(ConfigError, match=r"MODEL\.BACKBONE\.FREEZE_AT=7"):
        build_backbone(cfg, ShapeSpec(channels=3))


def test_missing_config_node_says_to_call_add_resnext_config():
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_resnext_backbone"
    with pytest.raises(ConfigError, match="add_resnext_config"):
        build_backbone(cfg, ShapeSpec(channels=3))


def test_add_resnext_config_is_idempotent():
    cfg = add_resnext_config(add_resnext_config(get_cfg()))
    assert cfg.MODEL.RESNEXT.ARCH == "resnext50_32x4d"


def test_load_config_reports_bad_files_and_overrides_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="config file 'nope.yaml' does not exist"):
        load_config("nope.yaml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("MODEL:\n  RESNEXT:\n    DEPHT: 101\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown config key MODEL.RESNEXT.DEPHT; did you mean MODEL.RESNEXT.DEPTH"):
        load_config(str(typo))
    broken = tmp_path / "broken.yaml"
    broken.write_text("MODEL: [\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(str(broken))
    with pytest.raises(ConfigError, match="unknown config key MODEL.RESNEXT.ARCHH; did you mean MODEL.RESNEXT.ARCH"):
        load_config(None, ["MODEL.RESNEXT.ARCHH", "resnet50"])
    with pytest.raises(ConfigError, match="'SOLVER.MAX_ITER' has no value"):
        load_config(None, ["SOLVER.MAX_ITER"])
    with pytest.raises(ConfigError, match="SOLVER.MAX_ITER"):
        load_config(None, ["SOLVER.MAX_ITER", "many"])
    cfg = load_config(None, ["MODEL.RESNEXT.ARCH", "resnest50", "SOLVER.MAX_ITER", "7"])
    assert cfg.MODEL.RESNEXT.ARCH == "resnest50" and cfg.SOLVER.MAX_ITER == 7


def test_python_api_errors_use_keyword_names():
    with pytest.raises(ConfigError, match="unknown backbone setting.*cardinality"):
        create_backbone("resnext50_32x4d", cardinality=64)
    with pytest.raises(ConfigError, match=r"^unknown backbone name='resnet5'"):
        create_backbone("resnet5")
    with pytest.raises(ConfigError, match=r"^radix=2 is invalid"):
        create_backbone("resnext50_32x4d", radix=2)
    with pytest.raises(ConfigError, match=r"^freeze_at=-1"):
        create_backbone("resnet50", freeze_at=-1)


@pytest.mark.parametrize("key, value, message", [
    ("SOLVER.IMS_PER_BATCH", "0", "SOLVER.IMS_PER_BATCH=0 is invalid: it must be a positive number of images"),
    ("SOLVER.MAX_ITER", "-5", "SOLVER.MAX_ITER=-5 is invalid: it must be a positive number of iterations"),
    ("DATALOADER.NUM_WORKERS", "-1", "DATALOADER.NUM_WORKERS=-1 is invalid: it must be a number of worker processes"),
    ("INPUT.MIN_SIZE_TRAIN", "(640, -1)", "INPUT.MIN_SIZE_TRAIN=(640, -1) is invalid: it must be sizes in pixels >= 0"),
    ("MODEL.DEVICE", "gpu", "MODEL.DEVICE='gpu' is invalid: it must be a torch device, e.g. 'cpu', 'cuda'"),
    ("MODEL.PIXEL_STD", "[1.0]", "MODEL.PIXEL_MEAN=[103.53, 116.28, 123.675] and MODEL.PIXEL_STD=[1.0] must have one"),
])
def test_values_out_of_range_are_one_line(key, value, message):
    """Detectron2 reads these unchecked and fails deep inside (a scheduler, the DataLoader, torch.device)."""
    with pytest.raises(ConfigError) as err:
        load_config(None, [key, value])
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
