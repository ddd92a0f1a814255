"""configs/lazy/: LazyConfig files build our backbones with L(...), equal their YAML counterparts, and
take key=value overrides with one-line errors for keys that do not exist."""
import glob
import os

import pytest
import torch
from detectron2.config import instantiate

from conftest import ROOT
from resnext_det import ConfigError, ResNeXt, load_config
from resnext_det.archs import get_arch
from resnext_det.engine.lazy_config import load_lazy_config

LAZY = os.path.join(ROOT, "configs", "lazy")
LAZY_CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(LAZY, "**", "*.py"), recursive=True)
                      if "/common/" not in p)
MISSION_YAML, MISSION_LAZY = "configs/faster_rcnn_X101_32x8d_FPN.yaml", "configs/lazy/faster_rcnn_X101_32x8d_FPN.py"
# Each lazy config, the YAML config it stands for (same model, data and schedule).
TWINS = [(MISSION_LAZY, MISSION_YAML)] + [
    (f"configs/lazy/faster_rcnn_{name}_FPN_1x.py", f"configs/faster_rcnn_{name}_FPN_1x.yaml")
    for name in ("R50", "X50_32x4d", "SE_X50_32x4d", "SK_X50_32x4d", "S50")] + [
    ("configs/lazy/demo/shapes_faster_rcnn_X50_FPN.py", "configs/demo/shapes_faster_rcnn_X50_FPN.yaml")]


def _lazy(path, *overrides):
    return load_lazy_config(os.path.join(ROOT, path), list(overrides))


def _yaml(path, *opts):
    return load_config(os.path.join(ROOT, path), ["MODEL.DEVICE", "cpu", *opts])


def _yaml_model(cfg):
    from detectron2.modeling import META_ARCH_REGISTRY

    return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)  # build_model would move it off "meta"


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("path", LAZY_CONFIGS)
def test_every_lazy_config_builds_our_backbone_without_a_config_node(path):
    from resnext_det.engine.resumable import resumable_train_loader
    from resnext_det.evaluation import FastCOCOEvaluator

    cfg = _lazy(path)
    bottom_up = cfg.model.backbone.bottom_up
    assert bottom_up._target_.__name__ == "create_backbone"
    with torch.device("meta"):  # the whole models are built by the twin tests below, and here the LSJ one
        backbone = instantiate(cfg.model if "LSJ" in path else cfg.model.backbone)
        backbone = getattr(backbone, "backbone", backbone)
    assert isinstance(backbone.bottom_up, ResNeXt)
    assert backbone.bottom_up.spec.depth == get_arch(bottom_up.name).depth
    assert list(backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]
    assert cfg.dataloader.train._target_ is resumable_train_loader
    assert cfg.dataloader.evaluator._target_ is FastCOCOEvaluator
    if "demo" not in path:  # ImageNet weights by URI, with the normalization they expect
        assert "://" in cfg.train.init_checkpoint or "LSJ" in path  # LSJ trains from scratch, as upstream's
        assert cfg.model.input_format == cfg.dataloader.train.mapper.image_format == "RGB"
        assert list(cfg.model.pixel_std) == [58.395, 57.12, 57.375]
        assert cfg.model.backbone.bottom_up.stride_in_1x1 is False


def test_the_lazy_mission_config_builds_the_yaml_mission_model():
    """The same state-dict keys and shapes as configs/faster_rcnn_X101_32x8d_FPN.yaml."""
    with torch.device("meta"):
        lazy = instantiate(_lazy(MISSION_LAZY).model)
        yaml = _yaml_model(_yaml(MISSION_YAML))
    assert _shapes(lazy) == _shapes(yaml)
    assert _shapes(lazy)["backbone.bottom_up.res4.22.conv2.weight"] == (1024, 32, 3, 3)  # 23 blocks, 32 groups of 32
    assert type(lazy.roi_heads) is type(yaml.roi_heads)  # noqa: E721


@pytest.mark.parametrize("lazy_path, yaml_path", TWINS[1:])
def test_lazy_twins_build_the_yaml_models(lazy_path, yaml_path):
    with torch.device("meta"):
        assert _shapes(instantiate(_lazy(lazy_path).model)) == _shapes(_yaml_model(_yaml(yaml_path)))


def _settings(augmentation):
    return type(augmentation), {k: tuple(v) if isinstance(v, (list, tuple)) else v
                                for k, v in vars(augmentation).items()}


@pytest.mark.parametrize("lazy_path, yaml_path", TWINS)
def test_lazy_twins_train_as_the_yaml_configs(lazy_path, yaml_path):
    """The same images, batch, optimizer and LR at every phase of the schedule."""
    from detectron2.data import DatasetMapper
    from detectron2.solver import build_lr_scheduler

    lazy, yaml = _lazy(lazy_path), _yaml(yaml_path)
    train = lazy.dataloader.train
    assert [_settings(a) for a in instantiate(train.mapper.augmentations)] == \
        [_settings(a) for a in DatasetMapper(yaml, is_train=True).augmentations.augs]
    assert train.mapper.image_format == yaml.INPUT.FORMAT
    assert (train.dataset.names,) == tuple(yaml.DATASETS.TRAIN) and train.total_batch_size == yaml.SOLVER.IMS_PER_BATCH
    assert lazy.dataloader.test.dataset.names == yaml.DATASETS.TEST[0]
    assert (list(lazy.model.pixel_mean), list(lazy.model.pixel_std)) == (list(yaml.MODEL.PIXEL_MEAN),
                                                                          list(yaml.MODEL.PIXEL_STD))
    assert lazy.model.roi_heads.box_pooler.sampling_ratio == yaml.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO
    optimizer = lazy.optimizer
    assert optimizer._target_.__name__ == yaml.SOLVER.OPTIMIZER
    assert (optimizer.lr, optimizer.weight_decay) == (yaml.SOLVER.BASE_LR, yaml.SOLVER.WEIGHT_DECAY)
    assert optimizer.get("momentum", yaml.SOLVER.MOMENTUM) == yaml.SOLVER.MOMENTUM
    assert lazy.train.max_iter == yaml.SOLVER.MAX_ITER
    yaml_schedule = build_lr_scheduler(yaml, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0))._multiplier
    lazy_schedule = instantiate(lazy.lr_multiplier)
    n = yaml.SOLVER.MAX_ITER
    for i in sorted({0, 1, yaml.SOLVER.WARMUP_ITERS - 1, yaml.SOLVER.WARMUP_ITERS, *yaml.SOLVER.STEPS,
                     *(s - 1 for s in yaml.SOLVER.STEPS), n - 1}):
        assert lazy_schedule(i / n) == pytest.approx(yaml_schedule(i / n), rel=1e-9), i


def test_lazy_and_yaml_r50_detect_the_same_boxes():
    """Beyond shapes: the same weights give the same detections (normalization, anchors, heads)."""
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    yaml = build_model(_yaml("configs/faster_rcnn_R50_FPN_1x.yaml", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0")).eval()
    lazy = instantiate(_lazy("configs/lazy/faster_rcnn_R50_FPN_1x.py",
                             "model.roi_heads.box_predictor.test_score_thresh=0.0").model).eval()
    lazy.load_state_dict(yaml.state_dict())
    image = torch.randint(0, 256, (3, 96, 128), generator=torch.Generator().manual_seed(0)).float()
    with torch.no_grad():
        a, b = (m([{"image": image, "height": 96, "width": 128}])[0]["instances"] for m in (yaml, lazy))
    assert len(a) == len(b) > 0
    assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor) and torch.equal(a.scores, b.scores)


# ---- overrides ---------------------------------------------------------------------------------

def test_overrides_set_existing_keys_and_arguments_the_call_takes():
    cfg = _lazy(MISSION_LAZY, "train.max_iter=100", "model.backbone.bottom_up.name=resnext50_32x4d",
                "model.roi_heads.box_predictor.test_topk_per_image=50", "train.seed=3", "+train.note=x",
                "dataloader.train.total_batch_size=4")
    assert (cfg.train.max_iter, cfg.train.seed, cfg.train.note, cfg.dataloader.train.total_batch_size) == (100, 3, "x", 4)
    assert cfg.model.roi_heads.box_predictor.test_topk_per_image == 50
    with torch.device("meta"):
        assert instantiate(cfg.model.backbone.bottom_up).spec.width_per_group == 4


@pytest.mark.parametrize("override, message", [
    ("train.max_itr=100", "override train.max_itr: the config has no such key; did you mean train.max_iter"),
    ("model.roi_heads.box_predictor.score_thresh=0.5", "override model.roi_heads.box_predictor.score_thresh: "
                                                        "the config has no such key"),
    ("train.max_iter", "override 'train.max_iter' is not key=value"),
    ("train.max_iter=[1,", "command-line override:"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as e:
        _lazy(MISSION_LAZY, override)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name, text, message", [
    ("nothere.py", None, r"config file '.*nothere.py' does not exist; pass a Python config"),
    ("broken.py", "model = dict(\n", r"broken.py is not valid Python \(line 1\)"),
    ("failing.py", "from .missing import model\n", r"failing.py could not be loaded \(ImportError: "),
])
def test_missing_or_broken_config_files_are_one_line_errors(tmp_path, name, text, message):
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_lazy_config(str(tmp_path / name))
