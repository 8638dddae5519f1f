#!/usr/bin/env bash
# Build the one-folder Linux bundle into dist/radstation/ and print its size.
# Usage: installers/build_linux.sh [python]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
"$PY" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller installers/radstation.spec
du -sh dist/radstation | awk '{print "bundle size: " $1 " (dist/radstation)"}'
