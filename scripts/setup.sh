#!/usr/bin/env bash
# Creates .venv and installs faultlab with its dev tools. Idempotent and quick when nothing
# changed (a stamp holds the hash of pyproject.toml + setup.py + the list of package files).
#
# The editable install is in setuptools' strict mode: a link tree under build/ whose files are
# symlinks to the checkout, which IDEs and type checkers follow like an installed package. A
# new module needs a re-link, which this script does whenever the list of files changes.
#
# torch is installed first with an exact CPU pin: a looser requirement would pull a multi-GB
# CUDA build on machines without a GPU. Users with GPUs: install the torch build you want first
# (pyproject only asks torch>=2.3), then `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_PIN=${FAULTLAB_TORCH:-torch==2.13.0}
mkdir -p build
exec 9>build/.setup.lock
flock 9  # several shells (or editors) may run this at once: one at a time
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.faultlab-setup
want=$( (cat pyproject.toml setup.py; find core server workers client -type f \
  \( -name '*.py' -o -name '*.yaml' -o -name py.typed \) | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
log=.venv/setup.log
pip_install() {
  if ! .venv/bin/python -m pip install -q "$@" >>"$log" 2>&1; then
    echo "setup: pip install $* failed; see $log" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}
echo "setting up .venv (first run takes a few minutes)..." >&2
pip_install --upgrade pip
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  pip_install "$TORCH_PIN"
fi
pip_install -e ".[dev,bench]" --config-settings editable_mode=strict
.venv/bin/python -c 'import faultlab, torch, torch_geometric, ray' >/dev/null
echo "$want" > "$stamp"
