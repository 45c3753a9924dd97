# Shared set-up for scripts/demo, scripts/test, scripts/bench and scripts/sandbox (sourced).
# Everything Python goes into the project's virtual environment ($GOFER_VENV,
# default .venv), never the system or global interpreter. Re-runs reuse what
# is already built.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${GOFER_VENV:-$REPO/.venv}
PY=$VENV/bin/python

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# need_debs PKG... : installs missing Debian packages (as root), or names them.
need_debs() {
  local missing=() d
  for d in "$@"; do dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    die "missing Debian packages; install them with:
  sudo apt-get install --no-install-recommends ${missing[*]}"
  fi
  step "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# base_python: the interpreter the venv is made from ($PYTHON, else python3),
# with the Debian packages it lacks for a venv and for building C extensions.
base_python() {
  local py=${PYTHON:-python3}
  command -v "$py" >/dev/null || die "no $py on PATH: install Python >= 3.10"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$py is $("$py" -V 2>&1); gofer needs Python >= 3.10"
  local debs=()
  "$py" -c 'import ensurepip' 2>/dev/null || debs+=("python3-venv")
  "$py" -c 'import os, sysconfig; os.stat(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
    2>/dev/null || debs+=("python3-dev")
  command -v cc >/dev/null || debs+=("gcc")
  [ ${#debs[@]} -eq 0 ] || need_debs "${debs[@]}"
  echo "$py"
}

# install_gofer [EXTRA] [PATH...]: gofer (with pip extra EXTRA, e.g. "test")
# and the given local packages into the venv; skipped when nothing they are
# built from changed since the last install. gofer's wheel is built once per
# state of its sources and kept in the venv, so scripts/demo, scripts/test and
# scripts/bench share one build.
install_gofer() {
  local extra=${1:+[$1]}; shift || true
  if [ ! -x "$PY" ]; then
    local base; base=$(base_python)
    step "creating the virtual environment $VENV"
    "$base" -m venv "$VENV"
    "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
  fi
  local gofer_src
  gofer_src=$(sources_hash src native CMakeLists.txt pyproject.toml)
  # One stamp per set of arguments, holding the hash of the sources.
  local stamp=$VENV/.gofer-installed-$(echo "$extra $*" | sha256sum | cut -c1-12)
  local want; want="$gofer_src $(sources_hash "$@")"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    step "gofer is up to date in $VENV"
    return 0
  fi
  local wheels=$VENV/.gofer-wheel/${gofer_src:0:16} wheel
  wheel=$(ls "$wheels"/gofer-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    step "building gofer's wheel (the first build takes about a minute)"
    rm -rf "$VENV/.gofer-wheel"               # only the current sources' wheel is kept
    (cd "$REPO" && "$PY" -m pip wheel -q --disable-pip-version-check --no-deps \
       --wheel-dir "$wheels" .)
    wheel=$(ls "$wheels"/gofer-*.whl)
  fi
  step "installing gofer$extra${*:+ and $*} into $VENV"
  # The same version from another build is "already satisfied" to pip: replace
  # it first, then add the extra's dependencies and the local packages.
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
  (cd "$REPO" && "$PY" -m pip install -q --disable-pip-version-check "$wheel$extra" "$@")
  echo "$want" > "$stamp"
}

# sources_hash PATH...: one hash of the files git would track under PATHs.
sources_hash() {
  [ $# -eq 0 ] && { echo none; return; }
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard -- "$@" |
     xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

need_go() {
  command -v go >/dev/null ||
    die "no go on PATH: install Go >= 1.26.3 (what the pinned gvisor.dev/gvisor module needs) from https://go.dev/dl/"
}
