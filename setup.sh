#!/usr/bin/env bash
# Set up dqgen in ./.venv: system ImageMagick (for Wand) when missing, then the Python package.
#   ./setup.sh         runtime install
#   ./setup.sh --dev   runtime + tests, torch hand-off, Dask, exports (what CI uses)
set -euo pipefail
cd "$(dirname "$0")"

have_magickwand() {
    ldconfig -p 2>/dev/null | grep -q 'libMagickWand' && return 0
    [ -n "${MAGICK_HOME:-}" ] && return 0
    command -v brew >/dev/null 2>&1 && brew list imagemagick >/dev/null 2>&1 && return 0
    return 1
}
if ! have_magickwand; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ImageMagick (libmagickwand) for Wand" >&2
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libmagickwand-6.q16-6 >/dev/null
    elif command -v brew >/dev/null 2>&1; then
        echo "setup: installing ImageMagick for Wand (brew)" >&2
        brew install imagemagick
    else
        # Not fatal: the distortions use OpenCV at run time; only the ImageMagick
        # cross-check test (motion blur vs Wand) needs the library, and it says so.
        echo "setup: warning: no apt-get or brew; install ImageMagick (MagickWand) yourself" >&2
    fi
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
