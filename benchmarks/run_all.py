"""Run every benchmark: each ``benchmarks/*.py`` module with a top-level ``main(argv)``, one after another.

Each runs in its own Python process, so one benchmark's threads, imports (some native libraries must be loaded in
a given order) or crash cannot disturb the next. ``--quick`` is passed through to every benchmark.
Run: ``python -m benchmarks.run_all [--quick] [--only NAME,NAME]``.
"""

from __future__ import annotations

import argparse
import ast
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

BENCH_DIR = Path(__file__).resolve().parent
RUNNER = "import sys; from benchmarks.{name} import main; sys.exit(main(sys.argv[1:]))"


def has_main(path: Path) -> bool:
    """True when the module defines a top-level function ``main`` (read with ``ast``, without importing it)."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError) as error:
        logger.warning("%s: cannot parse (%s), skipped", path.name, error)
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body)


def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    """Names of the benchmark modules in ``bench_dir``, sorted; this runner and private modules excluded."""
    return [
        path.stem
        for path in sorted(bench_dir.glob("*.py"))
        if not path.stem.startswith("_") and path.stem != "run_all" and has_main(path)
    ]


def run_one(name: str, argv: list[str]) -> tuple[int, float]:
    """Run ``benchmarks.<name>.main(argv)`` in a fresh interpreter; returns (exit code, seconds)."""
    started = time.perf_counter()
    rc = subprocess.call([sys.executable, "-c", RUNNER.format(name=name), *argv], cwd=BENCH_DIR.parent)
    return rc, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; exit code 1 when any failed, 2 when a name given to ``--only`` does not exist."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="passed to every benchmark: small sizes only")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    args = parser.parse_args(argv)
    names = discover()
    if args.only:
        wanted = [name for name in args.only.split(",") if name]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            logger.error("unknown benchmark(s) %s; available: %s", ", ".join(unknown), ", ".join(names))
            return 2
        names = wanted
    passthrough = ["--quick"] if args.quick else []
    results = []
    for name in names:
        logger.info("=== %s %s", name, " ".join(passthrough))
        rc, seconds = run_one(name, passthrough)
        results.append((name, rc, seconds))
    for name, rc, seconds in results:
        logger.info("%-24s %s in %.0f s", name, "ok" if rc == 0 else f"FAILED (exit {rc})", seconds)
    return 1 if any(rc != 0 for _, rc, _ in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
