"""``m3ret evaluate [--by label|TAG] [--k 1,5,10] [--plot FILE.png] [--json]``: retrieval quality on your library.

Leave-one-out over the cases that have the key (``engine.evaluate``): P@K and mAP@R per label value and per
modality, same-patient exclusion when patient ids exist, the library's model beside the raw-pixel baseline.
``--plot`` writes a PNG bar chart of P@K (the first K) per label for both. Exit status 0, 1 when there is
nothing to score, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from engine.charts import grouped_bar_chart_png
from engine.cli.library_args import UsageError, guarded, open_library
from engine.cli.main import add_json_option, add_library_option
from engine.evaluate import evaluate_library
from engine.labels import LABEL_KEY


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``evaluate``."""
    parser = subparsers.add_parser("evaluate", help="leave-one-out retrieval quality on the library's labels",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--by", default=LABEL_KEY, metavar="KEY", help="label or tag to score by (default label)")
    parser.add_argument("--k", default="1,5,10", metavar="K,...", help="cut-offs for P@K (default 1,5,10)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="bar chart of P@K per label")
    add_library_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=guarded("evaluate", run))
    return parser


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise UsageError(f"--k {text!r}: expected comma-separated integers") from exc
    if not ks or ks[0] < 1:
        raise UsageError(f"--k {text!r}: every K must be at least 1")
    return ks


def run(args: argparse.Namespace) -> int:
    ks = parse_ks(args.k)
    with open_library(args) as library:
        results = evaluate_library(library, key=args.by, ks=ks)
    if args.plot is not None:
        args.plot.write_bytes(plot_png(results))
    if args.json:
        json.dump(_json_safe(results), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(format_table(results))
        if args.plot is not None:
            print(f"plot: {args.plot}")
    return 0


def plot_png(results: dict) -> bytes:
    """Bar chart of P@(first K) per label value, model vs raw pixels."""
    metric = f"P@{results['ks'][0]}"
    methods = results["methods"]
    labels = sorted(methods["model"]["per_label"])
    series = {name: [methods[name]["per_label"][lab][metric] for lab in labels] for name in methods}
    return grouped_bar_chart_png(labels, series, f"{metric} per {results['key']} ({results['n_cases']} cases)",
                                 y_label=metric)


def format_table(results: dict) -> str:
    """Rows: overall, each label value, each modality; columns: metric for model and raw pixels."""
    metrics = [f"P@{k}" for k in results["ks"]] + ["mAP@R"]
    methods = results["methods"]
    names = [f"{results['key']} {n}" for n in methods["model"]["per_label"]] + ["modality XX"]
    width = max(len(n) for n in names) + 1
    head = f"{'':<{width}}{'n':>5}  " + "  ".join(f"{m + ' model':>12}{m + ' raw':>11}" for m in metrics)
    lines = [f"{results['n_cases']} cases by {results['key']!r}; model {results['model_id']}; "
             f"same-patient exclusion: {'on' if results['same_patient_excluded'] else 'no patient ids'}", head]

    def row(name: str, model_row: dict, raw_row: dict) -> str:
        cells = "  ".join(f"{_fmt(model_row[m]):>12}{_fmt(raw_row[m]):>11}" for m in metrics)
        return f"{name:<{width}}{model_row['n_scored']:>5}  {cells}"

    lines.append(row("all", methods["model"]["overall"], methods["raw_pixels"]["overall"]))
    for section, title in (("per_label", results["key"]), ("per_modality", "modality")):
        for name in sorted(methods["model"][section]):
            lines.append(row(f"{title} {name}", methods["model"][section][name], methods["raw_pixels"][section][name]))
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _json_safe(value: object) -> object:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
