#!/usr/bin/env bash
# Set up dqgen in ./.venv: system ImageMagick (for Wand) when missing, then the Python package.
#   ./setup.sh         runtime install
#   ./setup.sh --dev   runtime + tests, torch hand-off, Dask, exports (what CI uses)
set -euo pipefail
cd "$(dirname "$0")"

# Set-up prints our own lines and real errors only: a step's output is kept in a temporary
# file and shown only when the step fails (apt's debconf notes, pip's notices otherwise).
quiet() {
    local log rc=0; log=$(mktemp)
    "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then rm -f "$log"; return 0; fi
    echo "setup: failed: $*" >&2; cat "$log" >&2; rm -f "$log"
    return $rc
}

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
        quiet $SUDO apt-get update -qq
        quiet $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libmagickwand-6.q16-6
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
PIP=".venv/bin/python -m pip install -q --disable-pip-version-check"
quiet $PIP --upgrade pip
# PYTHONWARNINGS: setuptools' "Editable installation ... !!" banner is a warning of the
# build backend about our flat layout (the repository root holds the packages); nothing
# to act on.
if [ "${1:-}" = "--dev" ]; then
    echo "setup: installing dqgen with the test extras into .venv (torch CPU wheel first)" >&2
    # The pinned CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
    quiet $PIP torch==2.13.0
    quiet env PYTHONWARNINGS=ignore $PIP -e ".[dev,train]"
else
    echo "setup: installing dqgen into .venv" >&2
    quiet env PYTHONWARNINGS=ignore $PIP -e .
fi
echo "setup: ready (.venv/bin/dqgen)" >&2
