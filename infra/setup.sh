#!/usr/bin/env bash
# Install feqa into ./.venv from scratch (Python >= 3.11). Usage: bash infra/setup.sh [--gpu] [--no-train] [--no-models]
#
# insightface declares the GUI OpenCV build as a dependency; it is installed with --no-deps here and its real needs
# come from pyproject.toml, so only opencv-python-headless is ever installed.
# The last step gets the default landmarker's models (`feqa tracker fetch-models`: the pinned mediapipe wheel is
# downloaded without dependencies, never installed; its three face models are verified, converted to ONNX and
# checked against LiteRT). It is skipped in well under a second when models/mediapipe already holds them.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="dev,train,fleet"
models=1
for arg in "$@"; do
  case "$arg" in
    --gpu) extras="$extras,gpu" ;;
    --no-train) extras="${extras/,train/}" ;;
    --no-models) models=0 ;;
    *) echo "unknown option $arg (use --gpu, --no-train, --no-models)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "feqa needs Python >= 3.11")'
"$python" -m venv --clear .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[$extras]"
.venv/bin/python -m pip install --quiet --no-deps "insightface==2.1.*"
if .venv/bin/python -m pip show opencv-python >/dev/null 2>&1; then
  echo "the GUI opencv-python build got installed; removing it and restoring the headless one" >&2
  .venv/bin/python -m pip uninstall --quiet -y opencv-python
  .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "opencv-python-headless==5.*"
fi
.venv/bin/python -c 'import cv2, insightface, onnxruntime; print("feqa installed: opencv", cv2.__version__, "| insightface", insightface.__version__, "| onnxruntime", onnxruntime.__version__)'
if [ "$models" = 1 ]; then
  if ! .venv/bin/feqa tracker fetch-models; then
    echo "could not get the MediaPipe face models (see above); the default landmarker needs them." >&2
    echo "retry with: .venv/bin/feqa tracker fetch-models [--wheel PATH]" >&2
    exit 1
  fi
fi
