"""Robustness run: index >= 10,000 generated malformed inputs with the real ``m3ret index`` command.

Inputs come from ``tests.engine.robustness.generator`` (reproducible from ``--seed``): truncated / bit-flipped /
zeroed files of every format, DICOM of many transfer syntaxes with inconsistent headers, broken series, bombs
(JPEG, PNG, DICOM JPEG-LS, deflate TIFF, gzip NIfTI), degenerate images / videos / volumes, DICOMDIRs, FIFOs,
links to ``/dev/zero``, link loops and a file name that is not UTF-8. One ``m3ret index`` process (the default
reader setting of this machine, the bundled model unless ``--model``) indexes them all into a fresh library.

Reported: exit status, crashes (the command killed by a signal or a non-zero status; reader processes that
crashed are failures of their file, counted apart), hangs (the run not finished within ``--timeout``), peak
RSS of the whole process tree (sampled every 50 ms from ``/proc``; ``getrusage`` of the children as a
cross-check), wall time, units accounted for (every input is a case's source file or at/under a failure), and
stderr noise (lines, tracebacks). Results: a markdown table on stdout and ``benchmarks/results/robustness.json``.

Run: ``python -m benchmarks.robustness [--inputs 10000] [--seed 14] [--model PATH|tiny] [--timeout 3600]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "robustness.json"


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux ``/proc``)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


class _PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, _tree_rss(self.pid))
            time.sleep(0.05)


def _catalog(library: Path) -> tuple[set[str], set[str], int]:
    """(case source files, failure paths, cases) straight from the catalog (paths as the catalog keeps them)."""
    with sqlite3.connect(library / "catalog.sqlite") as conn:
        def text(value: object) -> str:
            return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)
        files = {text(r[0]) for r in conn.execute("SELECT path FROM source_files")}
        failures = {text(r[0]) for r in conn.execute("SELECT path FROM failures")}
        cases = conn.execute("SELECT count(*) FROM cases").fetchone()[0]
    return files, failures, int(cases)


def run(inputs: int, seed: int, model: Path | None, timeout: float, keep: bool) -> dict:
    from tests.engine.robustness.generator import generate, unaccounted

    work = Path(tempfile.mkdtemp(prefix="m3ret-robustness-"))
    try:
        started = time.monotonic()
        generated = generate(work / "inputs", inputs, seed=seed)
        generate_s = time.monotonic() - started
        library = work / "library"
        command = [sys.executable, "-m", "engine.cli", "index", str(work / "inputs"), "--library", str(library),
                   "--json"] + (["--model", str(model)] if model else [])
        env = dict(os.environ, M3RET_HOME=str(work / "home"))
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sampler = _PeakSampler(proc.pid)
        sampler.start()
        hung = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            hung = True
            proc.kill()
            out, err = proc.communicate()
        wall_s = time.monotonic() - started
        sampler.done.set()
        sampler.join()
        children_maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        report = json.loads(out) if proc.returncode == 0 and out.strip() else {}
        case_files, failure_paths, n_cases = _catalog(library)
        missing = unaccounted(generated, case_files, failure_paths)
        stderr = err.decode("utf-8", "replace")
        journal = library / "reading.journal"  # a crash: the unit the command died reading (engine.crash_journal)
        crashed_on = json.loads(journal.read_text())["key"] if journal.is_file() and journal.stat().st_size else None
        reasons = [f["reason"] for f in report.get("failures", [])]
        return {
            "inputs": len(generated), "seed": seed, "generate_s": round(generate_s, 1),
            "exit_status": proc.returncode, "crashes": int(proc.returncode != 0 and not hung),
            "hangs": int(hung), "crashed_on": crashed_on, "stderr_tail": stderr.splitlines()[-3:],
            "reader_crashes": sum("crash" in r for r in reasons),
            "timeouts": sum("time budget" in r for r in reasons),
            "cases": n_cases, "failures": len(failure_paths), "unaccounted": len(missing),
            "unaccounted_examples": [str(p) for p in missing[:10]],
            "peak_rss_tree_mb": round(sampler.peak / 2**20), "peak_rss_largest_process_mb": round(children_maxrss / 2**20),
            "wall_s": round(wall_s, 1), "stderr_lines": len(stderr.splitlines()),
            "stderr_tracebacks": stderr.count("Traceback"),
            "model": str(model) if model else "bundled default",
            "machine": f"{os.cpu_count()} cores, python {sys.version.split()[0]}",
        }
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--model", default=None,
                        help="ONNX model (default: the bundled one); 'tiny': the tests' 32-d pooling encoder, "
                             "so the run measures the readers rather than the encoder")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before the run counts as hung")
    parser.add_argument("--quick", action="store_true", help="500 inputs (a smoke run)")
    parser.add_argument("--keep", action="store_true", help="keep the generated inputs and library")
    args = parser.parse_args(argv)
    model = Path(args.model) if args.model and args.model != "tiny" else None
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "tiny":
            from tests.engine.conftest import build_pooling_model

            model = build_pooling_model(Path(tmp) / "tiny.onnx")
        result = run(500 if args.quick else args.inputs, args.seed, model, args.timeout, args.keep)
    if args.model == "tiny":
        result["model"] = "tests' 32-d pooling encoder (--model tiny)"
    print("| inputs | exit | crashes | hangs | unaccounted | cases | failures | reader crashes | timeouts |"
          " peak RSS (tree) | wall |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {result['inputs']} | {result['exit_status']} | {result['crashes']} | {result['hangs']} |"
          f" {result['unaccounted']} | {result['cases']} | {result['failures']} | {result['reader_crashes']} |"
          f" {result['timeouts']} | {result['peak_rss_tree_mb']} MB | {result['wall_s']} s |")
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    ok = not result["crashes"] and not result["hangs"] and not result["unaccounted"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
