"""``python -m engine.demo --data DIR`` (``make demo``): index a data folder with the bundled model, search once.

With the shared development data (``DIR/manifest.csv``) the test split is indexed, each modality labelled from the
manifest (XR, MR, CT, US, ES), except one held-back X-ray that is then used as the query; the results table shows
each hit's manifest label next to the query's. With any other folder, the whole folder is indexed and its first
readable file is the query (reported as "this case", the results are the others). The library goes to
``--library``, else ``$M3RET_HOME`` (``libraries/demo``) when that is set, where a second run only indexes what
changed; else to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from engine.cli.index import ProgressBar
from engine.cli.search import format_results
from engine.config import shared_data_dir, user_data_dir
from engine.encoder import ModelError, default_model_path
from engine.indexer import index_paths
from engine.io.case import Case
from engine.io.scan import read_path
from engine.library import Library, LibraryError
from engine.modality import modality_code
from engine.search import SearchError, SearchFilters, search_by_path


def manifest_plan(data: Path, split: str = "test") -> tuple[dict[str, list[Path]], Path, dict[str, str]]:
    """({modality code: files to index}, held-back query file, {absolute path: label}) from the manifest."""
    rows = [r for r in csv.DictReader((data / "manifest.csv").open(encoding="utf-8")) if r["split"] == split]
    if not rows:
        raise SystemExit(f"{data / 'manifest.csv'}: no rows in split {split!r}")
    labels = {str((data / r["path"]).absolute()): f"{r['modality']}/{r['label']}" for r in rows}
    query_row = next((r for r in rows if r["modality"] == "xray"), rows[0])
    groups: dict[str, list[Path]] = {}
    for row in rows:
        if row is not query_row:
            code = modality_code(row["modality"]) or "OT"
            groups.setdefault(code, []).append((data / row["path"]).absolute())
    return groups, (data / query_row["path"]).absolute(), labels


def first_readable_file(folder: Path) -> Path:
    """The file (or series folder) of the first case the readers find under ``folder``."""
    for item in read_path(folder):
        if isinstance(item, Case):
            return item.path
    raise SystemExit(f"{folder}: no readable file to search with")


def demo_library_dir(explicit: Path | None) -> tuple[Path, Path | None]:
    """(library folder, temporary folder to remove at the end or None): --library, else $M3RET_HOME's demo
    library, else a fresh temporary folder."""
    if explicit is not None:
        return explicit, None
    if os.environ.get("M3RET_HOME"):
        return user_data_dir() / "libraries" / "demo", None
    temporary = Path(tempfile.mkdtemp(prefix="m3ret-demo-"))
    return temporary / "library", temporary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: the shared data)")
    parser.add_argument("--library", type=Path, default=None, help="library folder (default: see above)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the bundled one)")
    parser.add_argument("--workers", type=int, default=None, help="reader processes")
    parser.add_argument("-k", type=int, default=10, help="results to show")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    library_dir, temporary = demo_library_dir(args.library)
    try:
        return run_demo(args, library_dir)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
            print(f"(temporary library {library_dir} removed; pass --library DIR to keep one)")


def run_demo(args: argparse.Namespace, library_dir: Path) -> int:
    """Index and search (see the module docstring); returns the exit status."""
    data = args.data or shared_data_dir()
    if data is None or not data.exists():
        print("demo: no data folder: pass --data DIR (or set M3RET_DATA)", file=sys.stderr)
        return 2
    data = data.resolve()  # `make demo` passes ../shared/data: show clean absolute paths
    model = args.model or default_model_path()
    if not model.is_file():
        print(f"demo: model not found: {model} (export one with the trainer, or pass --model)", file=sys.stderr)
        return 1
    if (data / "manifest.csv").is_file():
        groups, query, labels = manifest_plan(data)
    else:
        query = first_readable_file(data)
        groups, labels = {"": [data]}, {}

    print(f"library: {library_dir}\nmodel:   {model}")
    show = sys.stderr.isatty()
    try:
        with Library.open(library_dir, model_path=model) as library:
            for modality, paths in groups.items():
                print(f"indexing {len(paths)} path(s) {('as ' + modality) if modality else ''}...", flush=True)
                with ProgressBar(show) as bar:
                    report = index_paths(library, paths, progress=bar.update, workers=args.workers,
                                         modality=modality or None)
                print(f"  {report.summary()}")
                for failure in report.failures[:5]:
                    print(f"  failed: {failure}")
            stats = library.catalog.stats()
            print(f"library holds {stats['cases']} cases: {stats['by_modality']}")
            case, results = search_by_path(library, query, k=args.k, filters=SearchFilters())
    except (LibraryError, ModelError, SearchError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    query_label = labels.get(str(query), "")
    print(f"\nquery (held back, not indexed): {query}  [{case.kind}, {query_label or case.modality}]")
    print(format_results(results, this_case=results.this_case))
    if labels:
        hits = [labels.get(str(Path(r.path).absolute()), "?") for r in results]
        same = sum(h == query_label for h in hits)
        print(f"\nlabels of the hits: {', '.join(hits)}\n{same}/{len(hits)} share the query's label ({query_label})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
