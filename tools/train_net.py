#!/usr/bin/env python
"""Train or evaluate a Detectron2 model with a resnext_det backbone.

The flags are Detectron2's own ``tools/train_net.py``'s: ``--config-file``, ``--num-gpus``,
``--num-machines``, ``--machine-rank``, ``--dist-url``, ``--resume``, ``--eval-only`` and trailing
``KEY VALUE`` overrides; ``--fuse`` (with ``--eval-only``) folds the norms into the convolutions
before evaluating, ``--precision bf16`` (or fp16 on CUDA) runs the backbone in that dtype and
``--compile`` compiles it (both imply ``--fuse``). ``SOLVER.AMP.ENABLED True`` trains in mixed precision
(bf16 on CPU). Without CUDA, ``--num-gpus N`` starts N CPU processes that train together (gloo).
Checkpoints are written atomically; ``--resume`` continues from OUTPUT_DIR/last_checkpoint with the
same data order and randomness. A Python config (LazyConfig, ``configs/lazy/``) runs as Detectron2's
``tools/lazyconfig_train_net.py`` would, with ``key=value`` overrides (resnext_det/engine/lazy.py).
``--register-coco NAME JSON IMAGE_DIR`` (repeatable) registers a COCO-format dataset before the
config is read. Examples:

    python tools/train_net.py --config-file configs/faster_rcnn_X101_32x8d_FPN.yaml --num-gpus 8
    python tools/train_net.py --config-file configs/lazy/faster_rcnn_X101_32x8d_FPN.py --num-gpus 8
    python tools/train_net.py --config-file configs/faster_rcnn_R50_FPN_1x.yaml \
        --register-coco mine_train train.json images/ DATASETS.TRAIN "('mine_train',)" DATASETS.TEST "()"
"""
import logging
import sys

import detectron2.utils.comm as comm
import torch
from detectron2.engine import default_argument_parser, launch
from torch.multiprocessing import ProcessExitedException

import resnext_det  # noqa: F401  (registers the backbones and the shapes datasets)
from resnext_det import fuse_for_inference, load_config
from resnext_det.data import register_coco_datasets
from resnext_det.engine import Trainer, check_inputs, setup_cfg
from resnext_det.engine.checkpointer import AtomicCheckpointer
from resnext_det.engine.exits import error_message, errors_of_launched_processes, exit_with_error, one_line_errors
from resnext_det.engine.lazy import check_lazy_inputs, run_lazy
from resnext_det.engine.lazy_config import is_lazy_config, load_lazy_config
from resnext_det.engine.output_lock import hold_output_dir
from resnext_det.precision import inference_options


def main(args):
    register_coco_datasets(getattr(args, "register_coco", None))
    if is_lazy_config(args.config_file):
        return run_lazy(args)
    cfg = setup_cfg(args)
    for note in getattr(args, "resume_notes", ()):  # (printed by cli() before the processes started)
        logging.getLogger("resnext_det").warning(note)
    check_inputs(cfg, resume=args.resume)
    fuse = inference_options(args, cfg.MODEL.DEVICE)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        AtomicCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        if fuse is not None:
            fuse_for_inference(model, **fuse)
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            from detectron2.evaluation import verify_results

            verify_results(cfg, results)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def argument_parser():
    """Detectron2's parser, plus --fuse, --precision and --compile."""
    parser = default_argument_parser()
    parser._option_string_actions["--num-gpus"].help = (
        "processes per machine: one per GPU (NCCL); without CUDA, CPU processes (gloo)")
    parser.add_argument("--fuse", action="store_true",
                        help="with --eval-only: fold the norms into the convolutions (exact, faster)")
    parser.add_argument("--register-coco", nargs=3, action="append", metavar=("NAME", "JSON", "IMAGE_DIR"),
                        help="register a COCO-format dataset as NAME before the config is read (repeatable)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="with --eval-only: the backbone's dtype (fp16: CUDA only; implies --fuse); "
                             "to train in bf16 set SOLVER.AMP.ENABLED True")
    parser.add_argument("--compile", action="store_true",
                        help="with --eval-only: torch.compile the fused backbone (implies --fuse)")
    return parser


def main_or_error_line(args):
    """main(); bad input ends the process with one line naming the problem and the fix, not a traceback
    (with several processes, cli() prints it once for all)."""
    try:
        return main(args)
    except one_line_errors() as e:
        exit_with_error(e)


def cli(argv=None):
    args = argument_parser().parse_args(argv)
    try:
        register_coco_datasets(args.register_coco)
        lazy = is_lazy_config(args.config_file)
        cfg = (load_lazy_config if lazy else load_config)(args.config_file, args.opts)
        # One run per output folder (held by the first machine); --resume compared with the saved config.
        with hold_output_dir(cfg, args.resume, "evaluation" if args.eval_only else "training",
                             lock=args.machine_rank == 0) as notes:
            args.resume_notes = notes  # for the log, once main() has set it up
            if args.num_gpus * args.num_machines > 1:  # here once, rather than the same error from every process
                (check_lazy_inputs if lazy else check_inputs)(cfg, resume=args.resume)
                if not lazy:
                    inference_options(args, cfg.MODEL.DEVICE if torch.cuda.is_available() else "cpu")
            with errors_of_launched_processes() as first_error:
                try:
                    return launch(main_or_error_line, args.num_gpus, num_machines=args.num_machines,
                                  machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
                except ProcessExitedException as e:
                    line = first_error()  # a launched process's one line, printed once here
                    if line is None and e.exit_code != 1:
                        raise
                    sys.exit(line or 1)
    except one_line_errors() as e:
        sys.exit(f"error: {error_message(e)}")


if __name__ == "__main__":
    cli()
