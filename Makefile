# One-command setup, demo and tests. `make test` and `make demo` set everything up first.
#
# PYTHON: the interpreter to install into and run with. By default a project-local .venv is
# created. To use an environment that already has torch / Detectron2 (for example one built
# with CUDA), pass its interpreter: `make test PYTHON=$(which python)`. Nothing that already
# imports is reinstalled there.
VENV    ?= .venv
PYTHON  ?= $(VENV)/bin/python
# One set of setup stamps per interpreter, so switching PYTHON sets the other one up too.
STAMPS  := .cache/setup/$(subst /,_,$(abspath $(PYTHON)))
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Detectron2's runtime dependencies: its wheel is installed with --no-deps (see tools/setup_detectron2.sh).
D2_DEPS := "setuptools<81" fvcore iopath pycocotools "omegaconf>=2.1,<2.4" "hydra-core>=1.1" \
           yacs termcolor tabulate cloudpickle tqdm matplotlib tensorboard packaging
PYTEST_ARGS ?=

.PHONY: setup test test-e2e demo compare bench clean-setup help
help:
	@echo "make demo   - set up, train + evaluate the CPU demo detector into output/demo/"
	@echo "make test   - set up, run the fast test suite"
	@echo "make test-e2e - set up, run the long end-to-end tests (the full demo and its AP target)"
	@echo "make compare - ResNet-50 vs ResNeXt-50 on the embedded dataset (output/compare/; SEEDS=3 for 3 seeds each);"
	@echo "               DETECTOR=C4: in the paper's Faster R-CNN C4 setting (output/compare-C4/)"
	@echo "make bench  - the speed comparisons docs/speed.md reports, every mode (output/bench/; over an hour on 2 cores)"
	@echo "make setup  - only set up ($(PYTHON))"

setup: $(STAMPS)/project

$(PYTHON):
	python3 -m venv $(VENV)

# torch: installed only where it does not import already (a user's CUDA build is kept).
$(STAMPS)/torch: | $(PYTHON)
	@mkdir -p $(STAMPS)
	@if $(PYTHON) -c "import torch, torchvision" 2>/dev/null; then \
	    echo "torch already importable: kept"; \
	else \
	    $(PYTHON) -m pip install --upgrade "pip>=23" "setuptools<81" wheel && \
	    $(PYTHON) -m pip install $(TORCH_PINS); \
	fi
	@touch $@

# Detectron2: installed only where `import detectron2` fails.
$(STAMPS)/detectron2: tools/setup_detectron2.sh $(STAMPS)/torch
	$(PYTHON) -m pip install -q $(D2_DEPS)
	bash tools/setup_detectron2.sh $(PYTHON)
	@touch $@

$(STAMPS)/project: setup.py $(STAMPS)/detectron2
	$(PYTHON) -m pip install -q --no-build-isolation -e ".[test]"
	@touch $@

test: setup
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

test-e2e: setup
	$(PYTHON) -m pytest -q -m e2e $(PYTEST_ARGS)

demo: setup
	$(PYTHON) tools/demo.py --output-dir output/demo

# The paper's comparison reduced to this machine: ResNet-50 vs ResNeXt-50 32x4d, same schedule, on the
# embedded shapes dataset (not COCO), with SEEDS seeds each (SEED 0..SEEDS-1; `make compare SEEDS=3`):
# mean and spread per backbone, and the difference paired by seed. About 8 minutes per FPN run on 2 CPU
# cores (2 x SEEDS runs); finished runs are kept when it is started again with the same config and
# arguments (a changed one is refused: REDO=1 trains every run again).
# DETECTOR=FPN (default; output/compare/) or C4, the paper's own setting (output/compare-C4/; about 28 minutes
# per C4 run here).
SEEDS ?= 1
DETECTOR ?= FPN
COMPARE_CONFIG ?= configs/demo/$(if $(filter FPN,$(DETECTOR)),shapes_compare_X50_FPN,shapes_faster_rcnn_X50_$(DETECTOR)).yaml
COMPARE_DIR ?= $(if $(filter FPN,$(DETECTOR)),output/compare,output/compare-$(DETECTOR))
compare: setup
	$(PYTHON) tools/run_comparison.py --config-file $(COMPARE_CONFIG) --seeds $(SEEDS) \
	    --archs resnet50 resnext50_32x4d --output-dir $(COMPARE_DIR) $(if $(REDO),--redo)

# The speed figures docs/speed.md reports: ours vs Detectron2's built-in and timm's in the same mode (eager
# fp32, bf16, compiled fp32, compiled bf16; compile times, peak memory and the most expensive operators
# of each variant in the json), and COCO evaluation. BENCH_MODES=--precision=fp32 runs fp32 eager only.
BENCH := $(PYTHON) tools/benchmark.py
BENCH_MODES ?= --precision fp32,bf16 --compile --profile 15
bench: setup
	@mkdir -p output/bench
	$(BENCH) backbone resnext101_32x8d --fpn --peer detectron2 $(BENCH_MODES) --json output/bench/x101_32x8d_fpn.json
	for n in seresnext50_32x4d skresnext50_32x4d resnest50; do \
	    $(BENCH) backbone $$n --peer timm $(BENCH_MODES) --json output/bench/$${n}_timm.json || exit 1; done
	$(BENCH) detector --config-file configs/faster_rcnn_X101_32x8d_FPN.yaml --repeats 3 $(BENCH_MODES) \
	    --json output/bench/frcnn_x101_32x8d.json
	$(BENCH) coco-eval --json output/bench/coco_eval.json

clean-setup:
	rm -rf .cache/setup
