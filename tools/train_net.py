#!/usr/bin/env python
"""Train or evaluate a Detectron2 model with a resnext_det backbone.

The flags are Detectron2's own ``tools/train_net.py``'s: ``--config-file``, ``--num-gpus``,
``--num-machines``, ``--machine-rank``, ``--dist-url``, ``--resume``, ``--eval-only`` and trailing
``KEY VALUE`` overrides; ``--fuse`` (with ``--eval-only``) folds the norms into the convolutions
before evaluating, ``--precision bf16`` (or fp16 on CUDA) runs the backbone in that dtype and
``--compile`` compiles it (both imply ``--fuse``). ``SOLVER.AMP.ENABLED True`` trains in mixed precision
(bf16 on CPU). Without CUDA, ``--num-gpus N`` starts N CPU processes that train together (gloo).
Checkpoints are written atomically; ``--resume`` continues from OUTPUT_DIR/last_checkpoint with the
same data order and randomness. Example:

    python tools/train_net.py --config-file configs/faster_rcnn_X101_32x8d_FPN.yaml --num-gpus 8
"""
import sys

import detectron2.utils.comm as comm
import torch
from detectron2.engine import default_argument_parser, launch
from torch.multiprocessing import ProcessExitedException

import resnext_det  # noqa: F401  (registers the backbones and the shapes datasets)
from resnext_det import fuse_for_inference, load_config
from resnext_det.engine import BAD_INPUT, Trainer, check_inputs, setup_cfg
from resnext_det.engine.checkpointer import AtomicCheckpointer
from resnext_det.precision import inference_options


def main(args):
    cfg = setup_cfg(args)
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
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="with --eval-only: the backbone's dtype (fp16: CUDA only; implies --fuse); "
                             "to train in bf16 set SOLVER.AMP.ENABLED True")
    parser.add_argument("--compile", action="store_true",
                        help="with --eval-only: torch.compile the fused backbone (implies --fuse)")
    return parser


def main_or_error_line(args):
    """main(); bad input ends the process with one line naming the problem and the fix, not a traceback."""
    try:
        return main(args)
    except BAD_INPUT as e:
        sys.exit(f"error: {e}")


def cli(argv=None):
    args = argument_parser().parse_args(argv)
    if args.num_gpus * args.num_machines > 1:
        try:  # here once, rather than the same error from every process
            cfg = load_config(args.config_file, args.opts)
            check_inputs(cfg, resume=args.resume)
            inference_options(args, cfg.MODEL.DEVICE if torch.cuda.is_available() else "cpu")
        except BAD_INPUT as e:
            sys.exit(f"error: {e}")
    try:
        return launch(main_or_error_line, args.num_gpus, num_machines=args.num_machines,
                      machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
    except ProcessExitedException as e:
        if e.exit_code != 1:  # not a launched process's sys.exit("error: ..."), whose line is printed
            raise
        sys.exit(1)


if __name__ == "__main__":
    cli()
