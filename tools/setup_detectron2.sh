#!/usr/bin/env bash
# Install Detectron2 into the environment of the given Python, only if it does not import already.
#
# Detectron2 is not on PyPI under its own name. `sal-detectron2` republishes upstream's Python
# code as a cp310 wheel; its compiled _C cannot load on other Pythons, and Detectron2 then falls
# back to torchvision's ROIAlign/NMS and pycocotools. A user's own Detectron2 (built from source,
# with CUDA) is never touched.
set -euo pipefail
PY=${1:-python}
if "$PY" -c "import detectron2" 2>/dev/null; then
    echo "detectron2 already importable: kept ($("$PY" -c 'import detectron2, os; print(os.path.dirname(detectron2.__file__))'))"
    exit 0
fi
site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip install -q --no-deps --only-binary=:all: --python-version 3.10 \
    --target "$tmp" sal-detectron2==0.7.2
# Only the package and its metadata: the wheel also ships a top-level `tools` folder.
cp -r "$tmp"/detectron2 "$tmp"/sal_detectron2-*.dist-info "$site"/
"$PY" -c "import detectron2; print('detectron2', detectron2.__version__, 'installed into', '$site')"
