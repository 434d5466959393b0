#!/usr/bin/env bash
# Set up dqgen in ./.venv: system ImageMagick (for Wand) when missing, then the Python package.
#   ./setup.sh         runtime install
#   ./setup.sh --dev   runtime + tests, torch hand-off, Dask, exports (what CI uses)
set -euo pipefail
cd "$(dirname "$0")"

if ! ldconfig -p 2>/dev/null | grep -q 'libMagickWand'; then
    echo "setup: installing ImageMagick (libmagickwand) for Wand" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libmagickwand-6.q16-6 >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "--dev" ]; then
    # The pinned CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q -e ".[dev,train]"
else
    .venv/bin/python -m pip install -q -e .
fi
echo "setup: ready (.venv/bin/dqgen)" >&2
