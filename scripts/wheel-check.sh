#!/usr/bin/env bash
# Builds the wheel and runs it the way a user would: installed into a fresh venv outside the
# checkout, called from a directory outside the checkout. This catches what the editable
# install hides: a module or data file missing from the wheel, an import of a checkout folder
# (`import server`), a dependency missing from pyproject.toml.
#
# The wheel is built from a clean export of the checkout (the files git tracks or would track),
# never in place: setuptools' build/lib keeps deleted modules, which would end up in the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
PY=${PYTHON:-python3}
TORCH_PIN=${FAULTLAB_TORCH:-torch==2.13.0}
start=$SECONDS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/faultlab-wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log=$tmp/pip.log
step() { echo "wheel-check [$((SECONDS - start)) s]: $*" >&2; }
pip_in() {  # pip_in VENV ARGS...: quiet pip, log shown only on failure
  local venv=$1
  shift
  if ! "$venv/bin/python" -m pip "$@" >>"$log" 2>&1; then
    echo "wheel-check: pip $* failed:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

step "exporting the checkout"
mkdir "$tmp/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$tmp/src"
else
  tar --exclude=./.venv --exclude=./build --exclude='./*.egg-info' -cf - . | tar -xf - -C "$tmp/src"
fi

step "building the wheel"
"$PY" -m venv "$tmp/venv"
venv=$tmp/venv
pip_in "$venv" wheel -q --no-deps -w "$tmp/dist" "$tmp/src"
wheel=$(ls "$tmp"/dist/faultlab-*.whl)
step "built $(basename "$wheel")"

step "installing $TORCH_PIN, then the wheel, into a fresh venv"
pip_in "$venv" install -q "$TORCH_PIN"
pip_in "$venv" install -q "$wheel"

work=$tmp/run
mkdir "$work"
cd "$work"
export FAULTLAB_HOME=$work/home
unset PYTHONPATH
fl=$venv/bin/faultlab

step "checking the installed package lives in the venv"
"$venv/bin/python" - "$venv" "$root" <<'PY'
import importlib
import importlib.resources
import sys
from pathlib import Path

venv, checkout = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
for name in ("faultlab", "faultlab.server", "faultlab.workers", "faultlab.client", "faultlab.v1"):
    path = Path(importlib.import_module(name).__file__ or "").resolve()
    if not path.is_relative_to(venv) or path.is_relative_to(checkout):
        sys.exit(f"wheel-check: {name} imported from {path}, not from the venv {venv}")
for package, resource in (("faultlab", "py.typed"), ("faultlab.client", "demo.yaml")):
    if not importlib.resources.files(package).joinpath(resource).is_file():
        sys.exit(f"wheel-check: {package} is missing {resource}")
for name in ("server", "workers", "client", "core"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    sys.exit(f"wheel-check: the wheel installs a top-level `{name}` package")
PY

step "faultlab zoo"
"$fl" zoo --json >"$tmp/zoo.json"
"$venv/bin/python" -c 'import json, sys; json.load(open(sys.argv[1]))' "$tmp/zoo.json"

shopt -s nullglob
specs=("$root"/examples/*.yaml)
if [ ${#specs[@]} -eq 0 ]; then
  step "no examples/*.yaml found"
  exit 1
fi
for spec in "${specs[@]}"; do
  step "faultlab validate examples/$(basename "$spec")"
  "$fl" validate "$spec"
done

step "ok"
