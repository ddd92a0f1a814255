#!/usr/bin/env python
"""Speed and memory of our backbones and detectors against the implementation a user would otherwise pick.

Every figure is the median of ``--repeats`` runs after warm-up, with the variants interleaved in one
process (ours, ours fused, the peer, ours, ...), on the same weights and input. Ratios are ours / peer
in the same mode, and ours / the peer in eager fp32. Modes: each ``--precision`` (ours fused keeps its
backbone in that dtype; the peer runs under autocast), eager and, with ``--compile``, compiled
(torch.compile with inductor freezing and dynamic shapes, for ours and the peer alike).

    # X101-32x8d FPN backbone at 800x1216 vs Detectron2's built-in ResNeXt
    python tools/benchmark.py backbone resnext101_32x8d --fpn --peer detectron2
    # ... in fp32 and bf16, eager and compiled, with the 12 most expensive operators of each
    python tools/benchmark.py backbone resnext101_32x8d --fpn --precision fp32,bf16 --compile --profile 12
    # SE-ResNeXt-50 vs timm's
    python tools/benchmark.py backbone seresnext50_32x4d --peer timm
    # Faster R-CNN inference (s/img at 800x1333) and one training iteration vs Detectron2's own
    python tools/benchmark.py detector --config-file configs/faster_rcnn_X101_32x8d_FPN.yaml
    # COCO evaluation: faster-coco-eval vs pycocotools on 5000 images x 100 detections
    python tools/benchmark.py coco-eval
    # the cost of deformable convolutions in res3-res5 (X101-32x4d, inference and a training step), and
    # Detectron2's own DCN where its compiled ops are built
    python tools/benchmark.py deform resnext101_32x4d
    # the dataset checks (docs/reliability.md) against Detectron2's load_coco_json, on a COCO-size json
    python tools/benchmark.py dataset-checks
    # the per-step cost of stopping every process together on bad input (two such calls a step)
    python tools/benchmark.py stop-together --processes 2
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

import resnext_det  # noqa: F401  (registers the backbones)
from resnext_det.benchmark import (FP32, autocast_call, detectron2_backbone_peer, detectron2_dcn_unavailable,
                                   detectron2_detector_peer, fused_copy, interleaved, modes, peak_memory, peer_in_mode,
                                   timm_backbone_peer, top_ops)
from resnext_det.compile import compile_seconds
from resnext_det.engine.exits import error_message
from resnext_det.errors import ConfigError
from resnext_det.paths import writable_file_path
from resnext_det.precision import PRECISIONS, check_precision, precision_list
from resnext_det.strict_json import write_json

GiB = 1024 ** 3
# Largest relative difference from ours in fp32 that a variant may show (else it computes something else).
TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "fp16": 5e-2}


def _input(shape, args, channels_last=False):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(args.device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _key_fields(key):
    """A variant key is a name ("merged") or (name, Mode) ("ours-fused", bf16 compiled)."""
    return {"variant": key} if isinstance(key, str) else {"variant": key[0], "mode": key[1].name}


def _rows(label, timings, peer_of, baseline=None, per=1, memory=None, extra=None, **fields):
    """One result row per variant: median seconds (divided by ``per`` images), every repeat, peak
    memory if measured, the ratio to its peer ``peer_of(key)`` (if it ran), to ``baseline`` (if given
    and it ran), ``extra[key]`` and ``fields``."""

    def ratio(key, other):
        return timings[key].median / timings[other].median if other in timings else None

    rows = []
    for key, timing in timings.items():
        row = dict(measure=label, **_key_fields(key), seconds=timing.median / per, all_seconds=timing.seconds,
                   ratio_to_peer=ratio(key, peer_of(key)))
        if baseline is not None:
            row["ratio_to_peer_fp32"] = ratio(key, baseline)
        if memory:
            row["peak_memory_gib"] = memory[key] / GiB
        rows.append(dict(row, **(extra or {}).get(key, {}), **fields))
    return rows


def _peer_in_same_mode(key):
    return ("peer", key[1])


def _run_rows(args, items, models):
    """items: (label, per-image divisor, key -> call), timed under inference mode; ``models``: key ->
    the model a call runs (for its compile times). Returns result rows."""
    rows = []
    for label, per, calls in items:
        with torch.inference_mode():
            for key, call in calls.items():
                if key[1].compiled:  # may compile for this input (e.g. a batch > 1 after batch 1): untimed
                    call()
            timings = interleaved(calls, args.repeats, args.warmup, args.device)
            memory = {key: peak_memory(call, args.device) for key, call in calls.items()}
            extra = {key: _compile_fields(models[key]) for key in calls}
            if args.profile:
                for key, call in calls.items():
                    extra[key]["top_ops"] = top_ops(call, args.profile)
        rows += _rows(label, timings, _peer_in_same_mode, ("peer", FP32), per=per, memory=memory, extra=extra)
    return rows


def _compile_fields(model):
    seconds = compile_seconds(model)
    return {"compile_seconds": sum(seconds), "compilations": len(seconds)} if seconds else {}


def _variants(ours, peer, args):
    """(name, Mode) -> model, for every mode asked for: ours unfused (fp32 eager), ours fused in each
    mode, and the peer in each mode."""
    variants = {}
    for mode in modes(args.precision, args.compile):
        if mode == FP32:
            variants[("ours", mode)] = ours
        variants[("ours-fused", mode)] = fused_copy(ours, args.channels_last, mode)
        if peer is not None:
            variants[("peer", mode)] = peer_in_mode(peer, mode)
    return variants


def _call(key, model, *inputs, device):
    """Run ``model`` on ``inputs`` as variant ``key`` does: ours fused in its own dtype, the others
    under autocast in the mode's dtype."""
    call = lambda: model(*inputs)  # noqa: E731
    return call if key[0] == "ours-fused" else autocast_call(call, key[1], device)


def bench_backbone(args):
    from resnext_det import create_backbone, load_config

    torch.manual_seed(0)
    if args.peer == "timm":
        if args.fpn:
            raise ConfigError("timm has no FPN: compare the plain backbone (drop --fpn) or use --peer detectron2")
        peer, ours = timm_backbone_peer(args.name)
    else:
        fpn_cfg = None
        if args.fpn:
            fpn_cfg = load_config(args.config_file or os.path.join(os.path.dirname(__file__), "..", "configs",
                                                                   "Base-RCNN-FPN.yaml"),
                                  ["MODEL.RESNEXT.ARCH", args.name, "MODEL.BACKBONE.FREEZE_AT", "0"])
            from detectron2.modeling import build_backbone
            ours = build_backbone(fpn_cfg)
        else:
            ours = create_backbone(args.name)
        peer = detectron2_backbone_peer(ours, args.name, fpn_cfg) if args.peer == "detectron2" else None
    ours = ours.eval()
    if peer is not None:
        peer = peer.eval()
    if args.channels_last:  # the caller asked for NHWC throughout, peers included
        ours, peer = (m if m is None else m.to(memory_format=torch.channels_last) for m in (ours, peer))
    ours, peer = (m if m is None else m.to(args.device) for m in (ours, peer))
    variants = _variants(ours, peer, args)
    h, w = args.size
    items = []
    for batch in sorted({1, args.batch}):
        x = _input((batch, 3, h, w), args, args.channels_last)
        label = f"backbone {h}x{w} batch {batch} (s/img)"
        items.append((label, batch, {key: _call(key, m, x, device=args.device) for key, m in variants.items()}))
    outs, first_calls = _first_calls(items[0][2])
    _check_same_outputs(outs)
    rows = _run_rows(args, items, variants)
    return rows_with_context(rows, args, peer=args.peer, first_call_seconds=first_calls)


def _first_calls(calls):
    """Each variant's first output, and its seconds by name (a compiled variant compiles in it)."""
    outs, seconds = {}, {}
    with torch.inference_mode():
        for key, call in calls.items():
            start = time.perf_counter()
            outs[key] = call()
            seconds[f"{key[0]} {key[1].name}"] = round(time.perf_counter() - start, 3)
    return outs, seconds


def _check_same_outputs(outs):
    """Benchmarked variants must compute the same function as ours in fp32 (within their precision's
    tolerance); otherwise the comparison means nothing."""
    reference_key = ("ours", FP32) if ("ours", FP32) in outs else next(iter(outs))
    ref = outs[reference_key]
    ref = list(ref.values()) if isinstance(ref, dict) else list(ref)
    for key, out in outs.items():
        out = list(out.values()) if isinstance(out, dict) else list(out)
        for a, b in zip(ref, out):
            error = float((a.float() - b.float()).abs().max() / a.float().abs().max().clamp_min(1e-12))
            if error > TOLERANCE[key[1].precision]:
                raise RuntimeError(f"{key[0]} computes something else than ours in {key[1].name} "
                                   f"(relative error {error:.2e})")


def bench_detector(args):
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    from resnext_det import build_model, load_config

    torch.manual_seed(0)
    cfg = load_config(args.config_file, ["MODEL.WEIGHTS", "", "MODEL.DEVICE", args.device] + args.opts)
    ours = build_model(cfg)
    peer = detectron2_detector_peer(cfg, ours) if args.peer == "detectron2" else None
    h, w = args.size
    image = (torch.rand(3, h, w, generator=torch.Generator().manual_seed(0)) * 255).to(args.device)
    inputs = [{"image": image, "height": h, "width": w}]
    variants = _variants(ours.eval(), peer if peer is None else peer.eval(), args)
    items = [(f"Faster R-CNN inference {h}x{w} (s/img)", 1,
              {key: _call(key, m, inputs, device=args.device) for key, m in variants.items()})]
    _, first_calls = _first_calls(items[0][2])
    rows = _run_rows(args, items, variants)
    if not args.skip_train:
        gt = Instances((h, w))
        gt.gt_boxes = Boxes(torch.tensor([[10.0, 20.0, 300.0, 400.0], [500.0, 100.0, 900.0, 700.0]]))
        gt.gt_classes = torch.tensor([0, 1])
        train_inputs = [{"image": image, "instances": gt.to(args.device)}]
        trainees = {"ours": ours} if peer is None else {"ours": ours, "peer": peer}
        steps = {}
        for mode in modes(args.precision, compile=False):
            for name, model in trainees.items():
                model.train()
                optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-6)

                def step(model=model, optimizer=optimizer, mode=mode):
                    with EventStorage():  # R-CNN training logs into an event storage
                        losses = autocast_call(lambda: model(train_inputs), mode, args.device)()
                        loss = sum(losses.values())
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                steps[(name, mode)] = step
        timings = interleaved(steps, args.repeats, args.warmup, args.device)
        memory = {key: peak_memory(step, args.device) for key, step in steps.items()}
        rows += _rows(f"training iteration {h}x{w} batch 1 (s)", timings, _peer_in_same_mode, ("peer", FP32),
                      memory=memory)
    return rows_with_context(rows, args, peer=args.peer, first_call_seconds=first_calls)


def synthetic_coco(num_images, dets_per_image, seed=0):
    """A COCO ground truth (5-15 boxes per 640x480 image, at most ``dets_per_image``; 80 classes) and
    ``dets_per_image`` detections per image: jittered ground-truth boxes plus random ones."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": 640, "height": 480})
        n = min(int(rng.integers(5, 16)), dets_per_image)  # every ground-truth box is also detected
        xy = rng.random((n, 2)) * [560, 400]
        wh = rng.random((n, 2)) * [200, 150] + 8
        classes = rng.integers(1, 81, n)
        for (x, y), (bw, bh), c in zip(xy, wh, classes):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(c),
                                "bbox": [float(x), float(y), float(bw), float(bh)], "area": float(bw * bh),
                                "iscrowd": 0})
        boxes = np.concatenate([np.hstack([xy, wh]) + rng.normal(0, 6, (n, 4)),
                                np.hstack([rng.random((dets_per_image - n, 2)) * [560, 400],
                                           rng.random((dets_per_image - n, 2)) * [200, 150] + 4])])
        det_classes = np.concatenate([classes, rng.integers(1, 81, dets_per_image - n)])
        # found objects score higher than the random boxes, as a trained detector's would
        scores = np.concatenate([0.4 + 0.6 * rng.random(n), 0.7 * rng.random(dets_per_image - n)])
        for box, c, s in zip(boxes, det_classes, scores):
            results.append({"image_id": image_id, "category_id": int(c), "score": float(s),
                            "bbox": [float(box[0]), float(box[1]), max(1.0, float(box[2])), max(1.0, float(box[3]))]})
    categories = [{"id": i, "name": f"class{i}"} for i in range(1, 81)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def bench_merged_1x1(args):
    """A candidate rewrite: one 1x1 convolution for a block's conv1 and its projection shortcut, which
    read the same input when both have the same stride (res2's first block; every stage's first
    block with STRIDE_IN_1X1). Times separate vs merged (then split) for each such block of a backbone."""
    import torch.nn.functional as F

    from resnext_det import create_backbone

    model = fused_copy(create_backbone(args.name, stride_in_1x1=args.stride_in_1x1), channels_last=False)
    h, w = args.size
    rows = []
    with torch.inference_mode():
        feature = model.stem(torch.randn(1, 3, h, w))
    for stage_name in ("res2", "res3", "res4", "res5"):
        stage = getattr(model, stage_name)
        block = stage[0]
        pool_is_identity = isinstance(block.shortcut_pool, torch.nn.Identity)
        if block.shortcut is not None and block.conv1.stride == block.shortcut.stride and pool_is_identity:
            for layout in ("NCHW", "NHWC"):
                fmt = torch.channels_last if layout == "NHWC" else torch.contiguous_format
                x = feature.contiguous(memory_format=fmt)
                c1, sc = block.conv1, block.shortcut
                w1, ws = c1.weight.contiguous(memory_format=fmt), sc.weight.contiguous(memory_format=fmt)
                merged_w = torch.cat([c1.weight, sc.weight]).contiguous(memory_format=fmt)
                merged_b = torch.cat([c1.bias, sc.bias])
                n1 = c1.weight.shape[0]

                def separate(x=x, w1=w1, ws=ws, c1=c1, sc=sc):
                    return F.relu_(F.conv2d(x, w1, c1.bias, c1.stride)), F.conv2d(x, ws, sc.bias, sc.stride)

                def merged(x=x, merged_w=merged_w, merged_b=merged_b, stride=c1.stride, n1=n1):
                    y = F.conv2d(x, merged_w, merged_b, stride)
                    return F.relu_(y[:, :n1]), y[:, n1:]

                with torch.inference_mode():
                    for a, b in zip(separate(), merged()):  # the rewrite must be exact
                        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
                    timings = interleaved({"separate": separate, "merged": merged}, args.repeats, args.warmup)
                rows += _rows(f"{stage_name}.0 conv1+shortcut {tuple(x.shape[1:])} {layout}", timings,
                              lambda key: "separate")
        with torch.inference_mode():
            feature = stage(feature)
    if not rows:
        raise ConfigError(f"{args.name} has no block whose conv1 and shortcut share a stride; "
                          "try --stride-in-1x1")
    return rows_with_context(rows, args, peer="separate")


def bench_deform(args):
    """The backbone without and with deformable convolutions in ``--stages``, on the same weights (offset
    predictors drawn small, so the samples really move), and Detectron2's DCN where it can run: inference,
    and one forward + backward (the training cost)."""
    from resnext_det import create_backbone

    torch.manual_seed(0)
    on = tuple(f"res{i}" in args.stages for i in range(2, 6))
    if not any(on):
        raise ConfigError(f"--stages {' '.join(args.stages)}: name at least one of res2 res3 res4 res5")
    plain = create_backbone(args.name)
    dcn = create_backbone(args.name, deform_on_per_stage=on, deform_modulated=args.modulated,
                          deform_num_groups=args.deform_num_groups)
    dcn.load_state_dict(plain.state_dict(), strict=False)  # all but conv2_offset
    with torch.no_grad():
        for name, param in dcn.named_parameters():
            if ".conv2_offset." in name:
                param.normal_(0, 0.01)
    variants = {"plain": plain, "ours-dcn": dcn}
    skipped = detectron2_dcn_unavailable(dcn.spec, args.device)
    if skipped is None:
        variants["detectron2-dcn"] = detectron2_backbone_peer(dcn, args.name)
    else:
        print(f"detectron2-dcn: cannot run: {skipped}")
    variants = {k: m.eval().to(args.device) for k, m in variants.items()}
    h, w = args.size
    x = _input((args.batch, 3, h, w), args)
    calls = {k: (lambda m=m: m(x)) for k, m in variants.items()}
    with torch.inference_mode():
        if "detectron2-dcn" in calls:  # it holds our weights: it must compute the same features
            _check_same_outputs({("ours", FP32): calls["ours-dcn"](),
                                 ("detectron2-dcn", FP32): calls["detectron2-dcn"]()})
        timings = interleaved(calls, args.repeats, args.warmup, args.device)
        memory = {k: peak_memory(call, args.device) for k, call in calls.items()}
    rows = _rows(f"backbone {h}x{w} batch {args.batch} (s/img)", timings, lambda key: "plain", per=args.batch,
                 memory=memory)
    if not args.skip_train:
        trainable = {k: m for k, m in variants.items() if k != "detectron2-dcn" or args.device.startswith("cuda")}

        def step(model):
            out = model(x)
            sum(t.float().sum() for t in out.values()).backward()

        steps = {k: (lambda m=m: step(m.train())) for k, m in trainable.items()}
        timings = interleaved(steps, args.repeats, args.warmup, args.device)
        memory = {k: peak_memory(call, args.device) for k, call in steps.items()}
        rows += _rows(f"forward + backward {h}x{w} batch {args.batch} (s/img)", timings, lambda key: "plain",
                      per=args.batch, memory=memory)
    report = rows_with_context(rows, args, peer="plain")
    report["context"]["skipped"] = {"detectron2-dcn": skipped} if skipped else {}
    return report


def bench_coco_eval(args):
    from resnext_det.evaluation import coco_api, evaluate_coco

    if args.images < 1 or args.dets < 1:
        raise ConfigError(f"--images {args.images} --dets {args.dets}: both must be at least 1")
    gt, results = synthetic_coco(args.images, args.dets)
    stats = {}
    calls = {backend: (lambda b=backend: stats.__setitem__(b, evaluate_coco(coco_api(gt, b), results, backend=b)))
             for backend in ("faster-coco-eval", "pycocotools")}
    timings = interleaved(calls, args.repeats, warmup=0)
    difference = float(np.abs(stats["faster-coco-eval"] - stats["pycocotools"]).max())
    identical = difference < 1e-9  # Detectron2 prints AP x 100 to 3 decimals; summation order can differ by 1e-17
    rows = _rows(f"COCO bbox evaluation, {args.images} images x {args.dets} detections (s)", timings,
                 lambda key: "pycocotools", identical_stats=identical, max_abs_difference=difference)
    for row in rows:
        row["AP"] = float(stats[row["variant"]][0])
    return rows_with_context(rows, args, peer="pycocotools")


def bench_dataset_checks(args):
    """What the plugin's dataset checks add to loading a COCO-size dataset: the field checks of the
    annotation file (read_coco + check_coco) against Detectron2's load_coco_json of the same file, and the
    pre-flight check of one image file (a stat for JPEGs; a stat and a header read for other formats)."""
    import tempfile

    from detectron2.data.datasets import load_coco_json
    from PIL import Image

    from resnext_det.data.coco_fields import check_coco, read_coco
    from resnext_det.data.validate import _image_file_problem

    if args.images < 1 or args.files < 1:
        raise ConfigError(f"--images {args.images} --files {args.files}: both must be at least 1")
    gt, _ = synthetic_coco(args.images, 15)
    for image in gt["images"]:
        image["file_name"] = f"{image['id']:012d}.jpg"
    for ann in gt["annotations"]:  # a 12-point polygon, as COCO's instances files have (about 24 numbers)
        x, y, w, h = ann["bbox"]
        ann["segmentation"] = [[v for t in range(12) for v in (x + w * (0.5 + 0.5 * np.cos(t / 12 * 2 * np.pi)),
                                                                y + h * (0.5 + 0.5 * np.sin(t / 12 * 2 * np.pi)))]]
    with tempfile.TemporaryDirectory() as folder:
        json_file = os.path.join(folder, "instances.json")
        with open(json_file, "w") as f:
            json.dump(gt, f)
        size = os.path.getsize(json_file)
        calls = {"plugin field checks": lambda: check_coco(read_coco(json_file), json_file),
                 "load_coco_json": lambda: load_coco_json(json_file, folder, None)}
        timings = interleaved(calls, args.repeats, warmup=0)
        label = f"COCO json, {args.images} images, {len(gt['annotations'])} annotations, {size / 1e6:.0f} MB (s)"
        rows = _rows(label, timings, lambda key: "load_coco_json")
        files = {}
        for ext in ("jpg", "png"):
            for i in range(args.files):
                path = os.path.join(folder, f"{i:06d}.{ext}")
                Image.new("RGB", (64, 48), (i % 255, 0, 0)).save(path)
                files.setdefault(ext, []).append(path)
        calls = {f"{ext} files": (lambda paths=paths: [_image_file_problem(p) for p in paths])
                 for ext, paths in files.items()}
        timings = interleaved(calls, args.repeats, warmup=1)
        rows += _rows("pre-flight check of 1000 image files, cache warm (s)", timings, lambda key: "jpg files",
                      per=args.files / 1000)
    return rows_with_context(rows, args, peer="load_coco_json")


def bench_stop_together(args):
    """The per-step cost of stopping all processes together (stop_together.py): one agree() call, a
    one-element all-reduce among ``--processes`` gloo processes on this machine (two calls a step)."""
    import tempfile

    import torch.multiprocessing as mp

    from resnext_det.benchmark import Timing, time_agree

    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "seconds.pt")
        mp.start_processes(time_agree, args=(args.processes, os.path.join(folder, "init"), args.calls,
                                                args.repeats, out), nprocs=args.processes, start_method="spawn")
        timing = Timing(seconds=torch.load(out, weights_only=True))
    rows = _rows(f"agree() among {args.processes} gloo processes, one call (s)", {"agree": timing}, lambda key: "agree")
    return rows_with_context(rows, args, peer="agree")


def rows_with_context(rows, args, peer, **fields):
    context = {"device": _device_name(args.device), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "repeats": args.repeats, "precision": getattr(args, "precision", ["fp32"]),
               "compile": getattr(args, "compile", False), "peer": peer,
               "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]), **fields}
    return {"context": context, "rows": rows}


def _device_name(device):
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({os.cpu_count()} cores)"


def _fmt(value, spec):
    return "" if value is None else format(value, spec)


def print_table(report):
    context = report["context"]
    print(f"# {context['command']} on {context['device']}, torch {context['torch']}, {context['threads']} "
          f"threads, median of {context['repeats']}")
    print(f"{'measure':<46} {'variant':<11} {'mode':<14} {'seconds':>8} {'peak GiB':>8} {'ours/peer':>9} "
          f"{'/peer fp32':>10} {'compile s':>9}")
    for row in report["rows"]:
        print(f"{row['measure']:<46} {row['variant']:<11} {row.get('mode', ''):<14} {row['seconds']:>8.4f} "
              f"{_fmt(row.get('peak_memory_gib'), '.2f'):>8} {_fmt(row.get('ratio_to_peer'), '.3f'):>9} "
              f"{_fmt(row.get('ratio_to_peer_fp32'), '.3f'):>10} {_fmt(row.get('compile_seconds'), '.1f'):>9}")
    for row in report["rows"]:
        if "identical_stats" in row:
            print(f"{row['variant']}: AP {row['AP']:.6f}; the 12 statistics of both backends differ by at most "
                  f"{row['max_abs_difference']:.1e} (identical to 1e-9: {row['identical_stats']})")
        for op, seconds, calls in row.get("top_ops", []):
            print(f"  {row['variant']} {row.get('mode', '')}: {seconds:8.4f} s {calls:5d}x {op}")


def argument_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)

    def common(p, repeats):
        p.add_argument("--repeats", type=int, default=repeats, help="timed runs per variant (median reported)")
        p.add_argument("--warmup", type=int, default=1, help="untimed runs per variant first")
        p.add_argument("--json", help="also write the results here")

    def device_options(p):
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--precision", type=precision_list, default=["fp32"], metavar="P[,P...]",
                       help="modes to compare in, comma-separated (fp32, bf16, fp16 on CUDA): ours fused "
                            "in that dtype, the others under autocast")
        p.add_argument("--compile", action="store_true",
                       help="also each precision compiled: ours via compile_for_inference, the peer's "
                            "backbone with the same torch.compile settings")
        p.add_argument("--profile", type=int, default=0, metavar="N",
                       help="also profile one run of each variant and report its N most expensive operators")
        p.add_argument("--channels-last", action="store_true", default=None,
                       help="run every variant NHWC (default: only the fused one, on CPU)")

    b = sub.add_parser("backbone", help="a backbone (optionally with FPN) against a peer")
    b.add_argument("name", help="a backbone name (see resnext_det.list_backbones())")
    b.add_argument("--peer", choices=("detectron2", "timm", "none"), default="detectron2")
    b.add_argument("--fpn", action="store_true", help="with Detectron2's FPN (R-CNN, P2-P6)")
    b.add_argument("--config-file", help="the FPN settings' config (default configs/Base-RCNN-FPN.yaml)")
    b.add_argument("--size", type=int, nargs=2, default=(800, 1216), metavar=("H", "W"))
    b.add_argument("--batch", type=int, default=2, help="the batch size of the throughput figure")
    common(b, 5)
    device_options(b)

    d = sub.add_parser("detector", help="a config's detector: inference and one training iteration")
    d.add_argument("--config-file", required=True)
    d.add_argument("--peer", choices=("detectron2", "none"), default="detectron2")
    d.add_argument("--size", type=int, nargs=2, default=(800, 1333), metavar=("H", "W"))
    d.add_argument("--skip-train", action="store_true", help="only inference")
    d.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    common(d, 5)
    device_options(d)

    m = sub.add_parser("merged-1x1", help="a block's conv1 and shortcut as one convolution vs two")
    m.add_argument("name", help="a backbone name")
    m.add_argument("--size", type=int, nargs=2, default=(800, 1216), metavar=("H", "W"))
    m.add_argument("--stride-in-1x1", action="store_true", help="stride on the 1x1 (MSRA weights)")
    m.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    common(m, 7)

    f = sub.add_parser("deform", help="a backbone without and with deformable convolutions (and Detectron2's DCN)")
    f.add_argument("name", nargs="?", default="resnext101_32x4d", help="a backbone with a plain or grouped 3x3")
    f.add_argument("--stages", nargs="+", default=["res3", "res4", "res5"], help="the deformable stages")
    f.add_argument("--modulated", action="store_true", help="DCNv2 (a learned mask)")
    f.add_argument("--deform-num-groups", type=int, default=1, help="offset groups")
    f.add_argument("--size", type=int, nargs=2, default=(800, 1216), metavar=("H", "W"))
    f.add_argument("--batch", type=int, default=1)
    f.add_argument("--skip-train", action="store_true", help="only inference")
    common(f, 3)
    device_options(f)
    k = sub.add_parser("dataset-checks", help="the plugin's dataset checks against Detectron2's loading")
    k.add_argument("--images", type=int, default=118287, help="images in the COCO json (COCO train2017: 118287)")
    k.add_argument("--files", type=int, default=2000, help="image files of each format for the pre-flight check")
    k.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    common(k, 3)

    t = sub.add_parser("stop-together", help="the per-step cost of stopping all processes together")
    t.add_argument("--processes", type=int, default=2)
    t.add_argument("--calls", type=int, default=1000, help="agree() calls per timed repeat")
    t.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    common(t, 5)

    c = sub.add_parser("coco-eval", help="faster-coco-eval vs pycocotools on synthetic detections")
    c.add_argument("--images", type=int, default=5000)
    c.add_argument("--dets", type=int, default=100, help="detections per image")
    c.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    common(c, 3)
    return parser


def main(argv=None):
    args = argument_parser().parse_args(argv)
    if args.json:  # checked now, not after the measurement
        writable_file_path(args.json, "--json")
    for precision in getattr(args, "precision", ()):
        check_precision(PRECISIONS[precision], args.device)  # fp16 on CPU: one 'error:' line
    torch.set_flush_denormal(True)  # random weights can produce denormals, which CPUs compute slowly
    run = {"backbone": bench_backbone, "detector": bench_detector, "merged-1x1": bench_merged_1x1,
           "coco-eval": bench_coco_eval, "deform": bench_deform, "dataset-checks": bench_dataset_checks,
           "stop-together": bench_stop_together}[args.what]
    start = time.perf_counter()
    report = run(args)
    report["context"]["wall_seconds"] = time.perf_counter() - start
    print_table(report)
    if args.json:
        write_json(args.json, report, indent=1)  # strict JSON: a NaN figure is null, with a note
    return report


def cli(argv=None):
    try:
        return main(argv)
    except (ConfigError, ImportError, OSError) as e:
        sys.exit(f"error: {error_message(e)}")


if __name__ == "__main__":
    cli()
