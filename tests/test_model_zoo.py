"""Detectron2's model-zoo detectors load into configs/detectron2_zoo/ and detect exactly as Detectron2's.

Detectron2's own model is built from its model-zoo config file (shipped inside the detectron2 package,
no plugin), given random weights with calibrated random norm statistics, and saved as the model zoo
saves its detectors (a .pkl of numpy arrays under "model", with "__author__"). The file is served on
127.0.0.1 in place of dl.fbaipublicfiles.com and loaded through the config's own detectron2:// URI.
"""
import os
import pickle
import warnings

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import build_model
from detectron2.utils.file_io import Detectron2Handler

from conftest import ROOT, random_norm_statistics
from loopback_server import LoopbackServer
from resnext_det import load_config
from resnext_det.checkpoint import check_weights_uri
from resnext_det.engine.checkpointer import AtomicCheckpointer

with warnings.catch_warnings():  # Detectron2's model_zoo imports pkg_resources
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    from detectron2 import model_zoo

ZOO = [
    ("faster_rcnn_R50_FPN_3x", "faster_rcnn_R_50_FPN_3x"),
    ("faster_rcnn_R101_FPN_3x", "faster_rcnn_R_101_FPN_3x"),
    pytest.param("faster_rcnn_X101_32x8d_FPN_3x", "faster_rcnn_X_101_32x8d_FPN_3x", marks=pytest.mark.e2e),
]


def calibrated_random_weights(model, inputs, seed=0):
    """Random norm statistics and affine parameters, with each norm's statistics scaled to what its
    input really has on ``inputs`` (so 100 layers of random weights keep activations near 1), and a
    box predictor that gives confident, distinct scores."""
    random_norm_statistics(model, seed=seed)

    def calibrate(norm, args):
        x = args[0]
        std = x.std((0, 2, 3))
        norm.running_mean.copy_(x.mean((0, 2, 3)) + norm.running_mean * std)
        norm.running_var.copy_(x.var((0, 2, 3)) * norm.running_var)

    hooks = [m.register_forward_pre_hook(calibrate) for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    with torch.no_grad():
        model.backbone(model.preprocess_image(inputs).tensor)
    for hook in hooks:
        hook.remove()
    gen = torch.Generator().manual_seed(seed)
    predictor = model.roi_heads.box_predictor
    with torch.no_grad():
        predictor.cls_score.weight.copy_(torch.randn(predictor.cls_score.weight.shape, generator=gen) * 0.03)
        predictor.bbox_pred.weight.copy_(torch.randn(predictor.bbox_pred.weight.shape, generator=gen) * 0.01)
    return model


def save_as_model_zoo(model, path):
    """The model zoo's format: {"model": {name: numpy array}, "__author__": ...}, pickled."""
    arrays = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    with open(path, "wb") as f:
        pickle.dump({"model": arrays, "__author__": "Detectron2 Model Zoo"}, f)


@pytest.mark.parametrize("ours, theirs", ZOO)
def test_model_zoo_detector_loads_and_detects_as_detectron2(ours, theirs, tmp_path, monkeypatch):
    d2_cfg = get_cfg()
    d2_cfg.merge_from_file(model_zoo.get_config_file(f"COCO-Detection/{theirs}.yaml"))
    d2_cfg.MODEL.DEVICE = "cpu"
    cfg = load_config(os.path.join(ROOT, "configs", "detectron2_zoo", f"{ours}.yaml"), ["MODEL.DEVICE", "cpu"])
    uri = cfg.MODEL.WEIGHTS  # the model-zoo detector itself
    assert uri.replace("detectron2://", Detectron2Handler.S3_DETECTRON2_PREFIX) == \
        model_zoo.get_checkpoint_url(f"COCO-Detection/{theirs}.yaml")
    assert (cfg.INPUT.FORMAT, list(cfg.MODEL.PIXEL_MEAN), list(cfg.MODEL.PIXEL_STD)) == \
        (d2_cfg.INPUT.FORMAT, list(d2_cfg.MODEL.PIXEL_MEAN), list(d2_cfg.MODEL.PIXEL_STD))
    assert cfg.MODEL.RESNEXT.STRIDE_IN_1X1 == d2_cfg.MODEL.RESNETS.STRIDE_IN_1X1

    gen = torch.Generator().manual_seed(1)
    images = [{"image": torch.randint(0, 256, (3, 96, 128), generator=gen).float(), "height": 96, "width": 128}
              for _ in range(2)]
    torch.manual_seed(0)
    theirs_model = calibrated_random_weights(build_model(d2_cfg).eval(), images)
    with torch.no_grad():
        expected = theirs_model(images)
    expected_state = {k: v.clone() for k, v in theirs_model.state_dict().items()}
    zoo_file = tmp_path / "model_final.pkl"
    save_as_model_zoo(theirs_model, zoo_file)
    del theirs_model

    with LoopbackServer() as server:  # dl.fbaipublicfiles.com, here
        server.serve("/" + uri[len("detectron2://"):], str(zoo_file))
        monkeypatch.setattr(Detectron2Handler, "S3_DETECTRON2_PREFIX", server.url("/"))
        monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "iopath_cache"))
        check_weights_uri(cfg, uri)  # check_inputs' check: downloads it and finds it fits
        torch.manual_seed(1)
        model = build_model(cfg).eval()
        AtomicCheckpointer(model).load(uri)
    state = model.state_dict()
    assert set(state) == set(expected_state)  # no missing, no unexpected key
    for key, value in expected_state.items():
        assert torch.equal(state[key], value), key
    with torch.no_grad():
        got = model(images)
    for ours_out, theirs_out in zip(got, expected):
        a, b = ours_out["instances"], theirs_out["instances"]
        assert len(a) == len(b) > 10
        assert torch.equal(a.pred_classes, b.pred_classes)
        box_error = float((a.pred_boxes.tensor - b.pred_boxes.tensor).abs().max())
        score_error = float((a.scores - b.scores).abs().max())
        print(f"{ours}: {len(a)} detections, largest box difference {box_error} px, score {score_error}")
        assert box_error < 1e-4 and score_error < 1e-5
