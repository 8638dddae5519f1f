#!/usr/bin/env bash
# Build the one-folder Linux bundle into dist/radstation/ and print its size and build time.
# Usage: installers/build_linux.sh [--check] [python]   (default python: .venv/bin/python)
#   --check   run `dist/radstation/radstation selfcheck` on the result (decoders, migrations, demo, worker)
# The build runs under `nice`: it takes minutes of CPU and should not starve an interactive session.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK=0
if [[ "${1:-}" == "--check" ]]; then CHECK=1; shift; fi
PY=${1:-.venv/bin/python}
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    echo "build_linux.sh: PyInstaller is not installed for $PY (pip install pyinstaller)" >&2
    exit 2
fi
start=$(date +%s)
nice -n 10 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller installers/radstation.spec
secs=$(( $(date +%s) - start ))
mib=$(du -sm dist/radstation | cut -f1)
echo "bundle size: ${mib} MiB (dist/radstation), build time: ${secs} s"
if [[ $CHECK == 1 ]]; then
    home=$(mktemp -d)
    trap 'rm -rf "$home"' EXIT
    RADSTATION_HOME="$home" QT_QPA_PLATFORM=offscreen dist/radstation/radstation selfcheck
fi
