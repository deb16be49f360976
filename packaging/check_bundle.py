"""Inspect a built bundle (``dist/m3ret/``): size, and no torch / trainer / onnx / tkinter anywhere in it.

Looks at every file of the folder AND at the Python modules frozen inside each executable's PYZ archive.
Usage: ``python packaging/check_bundle.py [dist/m3ret] [--json]``; exit status 1 when something forbidden ships.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_rules import bundle_size_bytes, forbidden_files  # noqa: E402

EXECUTABLES = ("m3ret", "m3ret-app")


@dataclass
class BundleReport:
    """What a built bundle holds: size in bytes, frozen modules per executable, forbidden entries."""

    folder: str
    size_bytes: int
    n_files: int
    executables: dict[str, int] = field(default_factory=dict)  # name -> number of frozen modules
    forbidden: list[str] = field(default_factory=list)
    largest: list[tuple[str, int]] = field(default_factory=list)  # top-level entries of _internal by size

    @property
    def ok(self) -> bool:
        return not self.forbidden and all(name in self.executables for name in EXECUTABLES)


def frozen_modules(executable: Path) -> list[str]:
    """Module names in the PYZ archive embedded in a PyInstaller executable (needs PyInstaller installed)."""
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(executable))
    return list(archive.open_embedded_archive("PYZ.pyz").toc)


def inspect_bundle(folder: Path) -> BundleReport:
    """Size, frozen modules and forbidden entries of the bundle in ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    rel = [p.relative_to(folder).as_posix() for p in files]
    report = BundleReport(str(folder), bundle_size_bytes(folder), len(files))
    report.forbidden += forbidden_files(rel)
    for name in EXECUTABLES:
        exe = folder / name
        if exe.is_file():
            modules = frozen_modules(exe)
            report.executables[name] = len(modules)
            report.forbidden += [f"{name}:{m}" for m in forbidden_files(modules)]
    internal = folder / "_internal"
    if internal.is_dir():
        sizes = [
            (p.name, bundle_size_bytes(p) if p.is_dir() else p.lstat().st_size)
            for p in internal.iterdir()
            if not p.is_symlink()  # the top-level links to libraries in sub-folders take no space
        ]
        report.largest = sorted(sizes, key=lambda item: -item[1])[:12]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=Path("dist/m3ret"))
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"{args.folder}: no bundle (build it with `make package`)", file=sys.stderr)
        return 2
    report = inspect_bundle(args.folder)
    if args.json:
        print(json.dumps(asdict(report) | {"ok": report.ok}, indent=2))
    else:
        print(f"{report.folder}: {report.size_bytes / 2**20:.0f} MiB in {report.n_files} files")
        for name, n in report.executables.items():
            print(f"  {name}: {n} frozen modules")
        for name, size in report.largest:
            print(f"  _internal/{name}: {size / 2**20:.1f} MiB")
        missing = [name for name in EXECUTABLES if name not in report.executables]
        if missing:
            print(f"MISSING executables: {missing}")
        if report.forbidden:
            print(f"FORBIDDEN in bundle ({len(report.forbidden)}): {report.forbidden[:20]}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
