"""Run a command as on a machine WITHOUT some system libraries: hide them in a private mount namespace.

``hide_libraries_prefix(["libxcb-icccm.so.4", ...])`` returns an argv prefix,
``unshare -m --propagation private [-r] sh -c SCRIPT sh DIRS NAMES``: inside the namespace, each folder holding one of
the libraries (found with ``ldconfig -p``, symlinks resolved) gets an overlay whose upper layer holds a whiteout for
every file of that library (``libxcb-icccm.so.4`` and ``libxcb-icccm.so.4.0.0``), so the dynamic loader, ``ldd``
and ``dlopen`` find nothing, exactly as where the package is not installed; then the command is ``exec``-ed. Nothing
changes outside the namespace, and everything is undone when the command exits. Needs root, or an unprivileged user
namespace with overlayfs (Linux 5.11+); ``None`` where neither works here.

Used by ``packaging/smoke_test.py`` (the packaged app on a desktop without Qt's xcb libraries) and the app's
start-up check tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# What the namespace runs: $1 = folders to cover (space-separated), $2 = library names; then the command.
_SCRIPT = r"""
set -e
dirs=$1; names=$2; shift 2
work=$(mktemp -d)
mount -t tmpfs tmpfs "$work"  # the layers live in memory: nothing is left behind in /tmp
i=0
for dir in $dirs; do
  i=$((i + 1)); mkdir -p "$work/$i/upper" "$work/$i/work"
  for name in $names; do
    for file in "$dir/$name" "$dir/$name".*; do
      [ -e "$file" ] || [ -L "$file" ] || continue
      mknod "$work/$i/upper/$(basename "$file")" c 0 0
    done
  done
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$work/$i/upper,workdir=$work/$i/work" "$dir"
done
umount -l "$work"; rmdir "$work"  # the overlays keep their layers; the empty folder goes
exec "$@"
"""


def library_folders(names: list[str]) -> list[Path]:
    """Real folders (symlinks resolved) holding the system's copies of ``names``, as ``ldconfig -p`` lists them."""
    ldconfig = shutil.which("ldconfig") or ("/sbin/ldconfig" if Path("/sbin/ldconfig").exists() else None)
    if ldconfig is None:
        return []
    out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=False).stdout
    folders: set[Path] = set()
    for line in out.splitlines():
        match = re.match(r"\s*(\S+) \(.*\) => (\S+)", line)
        if match and match.group(1) in names:
            folders.add(Path(os.path.realpath(match.group(2))).parent)
    return sorted(folders)


def hide_libraries_prefix(names: list[str]) -> list[str] | None:
    """The argv prefix that runs a command with ``names`` hidden (see the module docstring); ``None`` where this
    machine cannot make the namespace. Libraries the system does not have at all need no hiding."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    folders = " ".join(str(f) for f in library_folders(names))
    for flags in (["-m"], ["-r", "-m"]):
        prefix = [unshare, *flags, "--propagation", "private", "sh", "-c", _SCRIPT, "sh", folders, " ".join(names)]
        try:
            trial = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if trial.returncode == 0:
            return prefix
    return None


def not_found_by_ldd(prefix: list[str], target: Path, environ: dict[str, str] | None = None) -> list[str]:
    """Libraries ``ldd target`` reports as not found when run under ``prefix`` (proof the hiding works)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    out = subprocess.run([*prefix, ldd, str(target)], capture_output=True, text=True, env=environ, check=False).stdout
    return sorted({line.split("=>")[0].strip() for line in out.splitlines() if "=> not found" in line})
