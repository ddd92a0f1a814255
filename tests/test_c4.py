"""Faster R-CNN C4: ResNeXtRes5ROIHeads, the C4 configs, Detectron2's C4 checkpoints, C4 weights."""
import glob
import math
import os

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import META_ARCH_REGISTRY, build_model

from conftest import ROOT, random_norm_statistics
from resnext_det import ConfigError, create_backbone, load_config
from resnext_det.checkpoint import CheckpointError, save_detectron2_checkpoint
from resnext_det.checkpoint.model_weights import check_model_weights
from resnext_det.modeling import ResNeXtRes5ROIHeads

C4_CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "*_C4_*.yaml")))
C4_1X = [p for p in C4_CONFIGS if p.endswith("_1x.yaml")]
NO_WEIGHTS = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""]


def _load(path, *opts):
    return load_config(os.path.join(ROOT, path), NO_WEIGHTS + list(opts))


def _meta_model(cfg):
    """The model, its tensors without data (build_model would also move it to MODEL.DEVICE)."""
    with torch.device("meta"):
        return META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)


WEIGHTS = {"resnet50": "torchvision://resnet50", "resnet101": "torchvision://resnet101",
           "resnext50_32x4d": "torchvision://resnext50_32x4d", "resnext101_32x4d": "timm://resnext101_32x4d.gluon_in1k",
           "seresnext50_32x4d": "timm://seresnext50_32x4d.gluon_in1k"}


@pytest.mark.parametrize("path", C4_CONFIGS)
def test_c4_config_loads_names_its_weights_and_builds(path):
    cfg = load_config(os.path.join(ROOT, path), ["MODEL.DEVICE", "cpu"])
    assert cfg.MODEL.WEIGHTS == WEIGHTS[cfg.MODEL.RESNEXT.ARCH]  # ImageNet-1K weights, as in the paper
    assert cfg.DATASETS.TRAIN == ("coco_2017_train",) and cfg.DATASETS.TEST == ("coco_2017_val",)
    assert cfg.INPUT.FORMAT == "RGB" and list(cfg.MODEL.PIXEL_STD) == [58.395, 57.12, 57.375]
    assert not cfg.MODEL.RESNEXT.STRIDE_IN_1X1 and cfg.MODEL.RESNEXT.NORM == "FrozenBN"
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.REFERENCE_WORLD_SIZE == 8
    assert cfg.SOLVER.MAX_ITER == {"1x": 90000, "3x": 270000}[path[-7:-5]]
    # Detectron2's Base-RCNN-C4 test-time settings: 6000 regions before NMS, 1000 after, 14x14 pooling.
    assert (cfg.MODEL.RPN.PRE_NMS_TOPK_TEST, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (6000, 1000)
    assert cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION == 14
    model = _meta_model(cfg)
    assert list(model.backbone.output_shape()) == ["res4"] and model.backbone.output_shape()["res4"].stride == 16
    assert isinstance(model.roi_heads, ResNeXtRes5ROIHeads)


def _shape(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("path", C4_1X)
def test_head_res5_is_the_backbones_res5(path):
    """The head's res5 is what build_resnext_backbone would build as res5: same modules, same tensors."""
    cfg = _load(path)
    model = _meta_model(cfg)
    assert isinstance(model.roi_heads, ResNeXtRes5ROIHeads)
    assert list(model.backbone.output_shape()) == ["res4"] and not hasattr(model.backbone, "res5")
    with torch.device("meta"):
        backbone = create_backbone(cfg.MODEL.RESNEXT.ARCH, stride_in_1x1=cfg.MODEL.RESNEXT.STRIDE_IN_1X1,
                                   norm=cfg.MODEL.RESNEXT.NORM)
    head = model.roi_heads.res5
    assert repr(head) == repr(backbone.res5)
    assert _shape(head) == _shape(backbone.res5)
    count = sum(p.numel() for p in head.parameters())
    assert count == sum(p.numel() for p in backbone.res5.parameters())
    print(f"{path}: res5 {count / 1e6:.2f}M params in the head")


def test_x50_head_res5_computes_the_backbones_res5():
    cfg = _load("configs/faster_rcnn_X50_32x4d_C4_1x.yaml")
    head = build_model(cfg).roi_heads.res5.eval()
    backbone = random_norm_statistics(create_backbone("resnext50_32x4d"), scale=(0.25, 0.75)).eval()
    assert sum(p.numel() for p in head.parameters()) == sum(p.numel() for p in backbone.res5.parameters())
    head.load_state_dict(backbone.res5.state_dict(), strict=True)
    assert head[0].conv2.groups == 32 and head[0].conv2.stride == (2, 2) and head[0].conv1.stride == (1, 1)
    regions = torch.randn(3, 1024, 14, 14)
    with torch.no_grad():
        torch.testing.assert_close(head(regions), backbone.res5(regions), rtol=0, atol=0)


def test_head_options_follow_model_resnext():
    """Norm, stride placement, attention and cardinality overrides reach the head's res5."""
    cfg = _load("configs/faster_rcnn_R50_C4_1x.yaml", "MODEL.RESNEXT.NORM", "GN", "MODEL.RESNEXT.STRIDE_IN_1X1",
                "True", "MODEL.RESNEXT.NUM_GROUPS", "32", "MODEL.RESNEXT.WIDTH_PER_GROUP", "4",
                "MODEL.RESNEXT.ATTENTION", "se")
    block = _meta_model(cfg).roi_heads.res5[0]
    assert isinstance(block.conv1.norm, torch.nn.GroupNorm) and block.conv1.stride == (2, 2)
    assert block.conv2.groups == 32 and block.conv2.out_channels == 1024 and block.se is not None


def test_se_x50_config_has_squeeze_excitation_in_the_head():
    model = _meta_model(_load("configs/faster_rcnn_SE_X50_32x4d_C4_1x.yaml"))
    assert all(block.se is not None for block in model.roi_heads.res5)


def test_mask_rcnn_c4_gets_a_mask_head_on_the_plugins_res5():
    model = _meta_model(_load("configs/faster_rcnn_X50_32x4d_C4_1x.yaml", "MODEL.MASK_ON", "True"))
    assert model.roi_heads.mask_on and model.roi_heads.res5[0].conv2.groups == 32


def test_detectron2_res5_head_over_this_backbone_is_refused():
    """Refused where the model is built (resnext_det.build_model, Trainer.build_model, check_inputs and
    the weights checks' builder); the backbone alone builds, as build_backbone does from Detectron2's defaults."""
    from detectron2.modeling import build_backbone

    from resnext_det import build_model as project_build_model
    from resnext_det.checkpoint.model_weights import model_builder
    from resnext_det.engine import Trainer, check_inputs

    for out_features in ("['res4']", "['res2', 'res3', 'res4', 'res5']"):
        cfg = _load("configs/faster_rcnn_X50_32x4d_C4_1x.yaml", "MODEL.ROI_HEADS.NAME", "Res5ROIHeads",
                    "MODEL.RESNEXT.OUT_FEATURES", out_features)
        for build in (project_build_model, Trainer.build_model, check_inputs, lambda cfg: model_builder(cfg)()):
            with pytest.raises(ConfigError) as err:
                build(cfg)
            message = str(err.value)
            assert "\n" not in message
            assert message.startswith("MODEL.ROI_HEADS.NAME=Res5ROIHeads builds Detectron2's plain ResNet res5")
            assert "set MODEL.ROI_HEADS.NAME ResNeXtRes5ROIHeads" in message
        with torch.device("meta"):
            backbone = build_backbone(cfg)
        assert list(backbone.output_shape()) == list(cfg.MODEL.RESNEXT.OUT_FEATURES)
    # The same config with Detectron2's own ResNet backbone is Detectron2's business: it builds.
    cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4"]
    _meta_model(cfg)


@pytest.mark.parametrize("opts, message", [
    (["MODEL.ROI_HEADS.IN_FEATURES", "['res3', 'res4']"], r"MODEL.ROI_HEADS.IN_FEATURES=\['res3', 'res4'\] is invalid "
                                                          r"for ResNeXtRes5ROIHeads: name the one backbone feature"),
    (["MODEL.ROI_HEADS.IN_FEATURES", "['res5']"], r"one of \['res4'\] \(C4: \[res4\]\)"),
    (["MODEL.RESNEXT.OUT_FEATURES", "['res4', 'res5']"], r"includes res5, but with ResNeXtRes5ROIHeads res5 is the "
                                                        r"box head.*set MODEL.RESNEXT.OUT_FEATURES \[res4\]"),
    (["MODEL.RESNEXT.RES5_DILATION", "2"], r"RES5_DILATION=2 is for DC5 backbones.*set it to 1"),
    (["MODEL.KEYPOINT_ON", "True"], r"MODEL.KEYPOINT_ON=True: ResNeXtRes5ROIHeads .* has no keypoint head"),
    (["MODEL.RESNEXT.ARCH", "resnetv2_50"], r"'resnetv2_50' is pre-activation \(ResNet-v2\).*no C4 head here"),
    (["MODEL.RESNEXT.OUT_FEATURES", "['res3']", "MODEL.RPN.IN_FEATURES", "['res3']", "MODEL.ROI_HEADS.IN_FEATURES",
      "['res3']"], r"\[res3\] has 512 channels, but the res5 of MODEL.RESNEXT.ARCH='resnet50' takes 1024"),
])
def test_head_settings_it_cannot_build_are_one_line_errors(opts, message):
    with pytest.raises(ConfigError, match=message) as err:
        _meta_model(_load("configs/faster_rcnn_R50_C4_1x.yaml", *opts))
    assert "\n" not in str(err.value)


def test_detectron2_r50_c4_checkpoint_loads_unchanged_and_gives_the_same_detections(tmp_path):
    """Detectron2's own R50-C4 (its model-zoo config file, no plugin), random weights and norm
    statistics, saved as a checkpoint, loads into configs/faster_rcnn_R50_C4_1x.yaml set to that
    checkpoint's input normalization and stride placement: no missing, unexpected or misshapen
    tensor, and the same detections."""
    from detectron2 import model_zoo
    from detectron2.config import get_cfg

    # Test-time settings, the same for both models: every candidate kept (with random weights few
    # scores pass 0.05), 50 regions per image (res5 runs once per region: CPU time).
    test_time = {"SCORE_THRESH_TEST": 0.0}
    theirs_cfg = get_cfg()
    theirs_cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_C4_1x.yaml"))
    theirs_cfg.MODEL.DEVICE, theirs_cfg.MODEL.WEIGHTS = "cpu", ""
    theirs_cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = test_time["SCORE_THRESH_TEST"]
    theirs_cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    torch.manual_seed(0)
    theirs = build_model(theirs_cfg).eval()
    with torch.no_grad():
        for p in theirs.parameters():  # biases start at zero: random too
            if not p.any():
                p.uniform_(-0.1, 0.1)
        theirs.roi_heads.box_predictor.cls_score.weight.normal_(0, 0.05)  # scores that differ by class
    random_norm_statistics(theirs, scale=(0.25, 0.75))
    DetectionCheckpointer(theirs, save_dir=str(tmp_path)).save("r50_c4")
    weights = str(tmp_path / "r50_c4.pth")

    m = theirs_cfg.MODEL
    assert (theirs_cfg.INPUT.FORMAT, m.RESNETS.STRIDE_IN_1X1, m.RESNETS.NORM) == ("BGR", True, "FrozenBN")
    cfg = load_config(os.path.join(ROOT, "configs", "faster_rcnn_R50_C4_1x.yaml"), [
        "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", weights, "INPUT.FORMAT", "BGR",
        "MODEL.PIXEL_MEAN", str(list(m.PIXEL_MEAN)), "MODEL.PIXEL_STD", str(list(m.PIXEL_STD)),
        "MODEL.RESNEXT.STRIDE_IN_1X1", "True", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
        "MODEL.RPN.POST_NMS_TOPK_TEST", "50"])
    check_model_weights(cfg, weights)
    ours = build_model(cfg).eval()
    assert isinstance(ours.roi_heads, ResNeXtRes5ROIHeads)

    class Recording(DetectionCheckpointer):
        def _load_model(self, checkpoint):
            self.incompatible = super()._load_model(checkpoint)
            return self.incompatible

    checkpointer = Recording(ours)
    checkpointer.load(cfg.MODEL.WEIGHTS)
    found = checkpointer.incompatible
    assert not found.missing_keys and not found.unexpected_keys and not found.incorrect_shapes
    assert ours.state_dict().keys() == theirs.state_dict().keys()

    gen = torch.Generator().manual_seed(1)
    for height, width in ((96, 128), (128, 96)):
        inputs = [{"image": torch.rand(3, height, width, generator=gen) * 255}]
        with torch.no_grad():
            expected, got = theirs(inputs)[0]["instances"], ours(inputs)[0]["instances"]
        assert len(got) == len(expected) == 100
        torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor, rtol=0, atol=1e-4)
        torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=1e-6)
        assert torch.equal(got.pred_classes, expected.pred_classes)


def _backbone_weights(arch):
    with torch.device("meta"):
        names = create_backbone(arch, out_features=["res5"]).state_dict()
    return {k: torch.zeros(v.shape) for k, v in names.items()}


def test_imagenet_weights_for_c4_put_res5_in_the_head(tmp_path):
    cfg = _load("configs/faster_rcnn_R50_C4_1x.yaml")
    weights = _backbone_weights("resnet50")
    plain = str(tmp_path / "plain.pth")
    save_detectron2_checkpoint(weights, plain, prefix="backbone.")
    with pytest.raises(CheckpointError, match=r"50 backbone tensors are missing, e.g. roi_heads.res5.0.conv1.weight; "
                                              r"this C4 model's res5 is its box head: convert with "
                                              r"tools/convert_pretrained.py --prefix backbone. --res5-prefix roi_heads."):
        check_model_weights(cfg, plain)
    c4 = str(tmp_path / "c4.pth")
    save_detectron2_checkpoint(weights, c4, prefix="backbone.", res5_prefix="roi_heads.")
    check_model_weights(cfg, c4)
    saved = torch.load(c4)["model"]
    assert "roi_heads.res5.2.conv3.norm.running_var" in saved and "backbone.res4.5.conv3.weight" in saved
    assert not any(k.startswith("backbone.res5.") for k in saved)


def test_convert_pretrained_places_res5_for_c4(tmp_path, capsys):
    from conftest import load_tool

    source = tmp_path / "r50_torchvision.pth"
    import torchvision

    torch.save(torchvision.models.resnet50().state_dict(), source)
    out = tmp_path / "R50_C4.pth"
    load_tool("convert_pretrained").main(["--source", "torchvision", "--arch", "resnet50", "--prefix", "backbone.",
                                          "--res5-prefix", "roi_heads.", str(source), str(out)])
    assert "MODEL.RESNEXT.STRIDE_IN_1X1: False" in capsys.readouterr().out
    cfg = _load("configs/faster_rcnn_R50_C4_1x.yaml")
    check_model_weights(cfg, str(out))
    model = _meta_model(cfg)
    saved = torch.load(out)["model"]
    assert set(model.state_dict()) - set(saved) == {k for k in model.state_dict()
                                                     if k.startswith(("proposal_generator.", "roi_heads.box_"))}


def _train_two_iterations(path, tiny_shapes, tmp_path, *opts):
    from resnext_det.engine import Trainer

    cfg = _load(path, "DATASETS.TRAIN", "('tiny_shapes_train',)", "DATASETS.TEST", "()",
                "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128", "SOLVER.IMS_PER_BATCH", "2",
                "SOLVER.REFERENCE_WORLD_SIZE", "0", "SOLVER.MAX_ITER", "2", "SOLVER.BASE_LR", "0.001",
                "SOLVER.WARMUP_ITERS", "1", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "16",
                "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(tmp_path), *opts)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    losses = trainer.storage.history("total_loss").values()
    assert trainer.iter == 2 and len(losses) == 2 and all(math.isfinite(v) for v, _ in losses)
    assert isinstance(trainer.model.roi_heads, ResNeXtRes5ROIHeads)


def test_x50_c4_config_trains_two_iterations_on_the_embedded_data(tiny_shapes, tmp_path):
    _train_two_iterations("configs/faster_rcnn_X50_32x4d_C4_1x.yaml", tiny_shapes, tmp_path)


@pytest.mark.e2e
@pytest.mark.parametrize("path", [p for p in C4_CONFIGS if "X50_32x4d_C4_1x" not in p])
def test_every_c4_config_trains_two_iterations_on_the_embedded_data(path, tiny_shapes, tmp_path):
    _train_two_iterations(path, tiny_shapes, tmp_path)


def test_demo_c4_config_trains_two_iterations(tiny_shapes, tmp_path):
    _train_two_iterations("configs/demo/shapes_faster_rcnn_X50_C4.yaml", tiny_shapes, tmp_path,
                          "MODEL.RESNEXT.ARCH", "resnet50")
