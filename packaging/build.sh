#!/usr/bin/env bash
# Build the packaged app: dist/m3ret/ with m3ret-app (GUI) and m3ret (CLI), then check it (size, no torch).
# Usage: packaging/build.sh                       pruned build (the one we ship) into dist/m3ret
#        M3RET_PACKAGE_PRUNE=0 DISTPATH=build/unpruned packaging/build.sh
#                                                 unpruned build (only torch & co. excluded), for comparison
# Prints the build time and the bundle report, and writes both to $DISTPATH/m3ret-build.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
DISTPATH="${DISTPATH:-dist}"
"$PY" -c "import PyInstaller" 2>/dev/null || "$PY" -m pip install -q -e ".[package]"
start=$(date +%s.%N)
"$PY" -m PyInstaller --noconfirm --log-level "${PYI_LOG_LEVEL:-WARN}" \
  --distpath "$DISTPATH" --workpath "build/pyinstaller-$(basename "$DISTPATH")" pyinstaller.spec
end=$(date +%s.%N)
seconds=$("$PY" -c "print(round($end - $start, 1))")
echo "build time: ${seconds} s (prune=${M3RET_PACKAGE_PRUNE:-1})"
"$PY" packaging/check_bundle.py "$DISTPATH/m3ret"
"$PY" packaging/check_bundle.py "$DISTPATH/m3ret" --json \
  | "$PY" -c "import json,sys; r=json.load(sys.stdin); r['build_seconds']=$seconds; r['prune']='${M3RET_PACKAGE_PRUNE:-1}'; print(json.dumps(r, indent=2))" \
  > "$DISTPATH/m3ret-build.json"
