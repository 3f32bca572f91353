#!/usr/bin/env bash
# The README's screenshots, taken with headless Chromium (Debian package `chromium`) 1400 px wide.
#   docs/img/report.png: the HTML report of examples/fault-digits.yaml (≈400 single-bit flips in
#   the weights of digits_cnn), run through the embedded Client on a throw-away store.
# Usage: scripts/screenshots.sh   (about a minute on 2 cores once the zoo model is cached)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python - "$work" <<'PY'
import sys
from pathlib import Path

from faultlab.client import Client

work = Path(sys.argv[1])
with Client(store=f"sqlite://{work / 'store.db'}") as client:
    job = client.submit("examples/fault-digits.yaml")
    job.wait()
    (work / "report.html").write_text(job.report().to_html())
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2600 \
  --user-data-dir="$work/profile" --screenshot=docs/img/report.png "file://$work/report.html" \
  2>/dev/null
echo "wrote docs/img/report.png"
