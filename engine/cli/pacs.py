"""``m3ret pacs echo|find|get|move``: query a PACS and retrieve studies into the library (query/retrieve SCU).

``--node`` is ``AE@HOST:PORT`` or a node name from pacs.ini. ``get`` (C-GET) stores the study in the library's
inbox and indexes it; ``move`` (C-MOVE) asks the node to send it to ``--dest`` (default: our AE title): when that is
us, a listener runs in this process on the settings' port for the transfer and the study is indexed, unless
``--no-listen`` says that ``m3ret listen`` is already running. Errors (refused, timed out, rejected, failed) are
one line naming the node; exit status 1. Needs the ``pacs`` extra (pynetdicom).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from tqdm import tqdm

from engine.cli.library_args import add_model_option, guarded
from engine.cli.listen import add_settings_option, open_receiving_library
from engine.cli.main import add_json_option, add_library_option
from engine.indexer import IndexReport, index_paths
from engine.pacs import PacsError
from engine.pacs.nodes import PacsSettings, valid_ae_title
from engine.pacs.query_retrieve import RetrieveProgress, RetrieveResult, StudyMatch

RUNTIME_ERROR = 1
MOVE_WAIT_S = 600.0  # at most this long for the moved study to be indexed after the C-MOVE ended


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``pacs`` and its ``echo``, ``find``, ``get``, ``move``."""
    parser = subparsers.add_parser("pacs", help="query a PACS and retrieve studies (C-ECHO/FIND/GET/MOVE)",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--node", required=True, metavar="NODE", help="AE@HOST:PORT or a node name from pacs.ini")
        sub.add_argument("--ae-title", default=None, metavar="AE", help="our AE title (default: settings, M3RET)")
        add_settings_option(sub)
        sub.set_defaults(func=guarded(f"pacs {name}", _runner(name)))
        return sub

    action("echo", "C-ECHO a node")
    find = action("find", "C-FIND studies (and their series)")
    find.add_argument("--patient-id", default="", metavar="ID")
    find.add_argument("--accession", default="", metavar="NUMBER")
    find.add_argument("--study-date", default="", metavar="DATE", help="YYYYMMDD or YYYYMMDD-YYYYMMDD")
    add_json_option(find)
    for name, help_text in (("get", "C-GET studies into the library and index them"),
                            ("move", "C-MOVE studies to a destination AE (our listener by default), index them")):
        sub = action(name, help_text)
        sub.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
        add_library_option(sub)
        add_model_option(sub)
        add_json_option(sub)
    move = actions.choices["move"]
    move.add_argument("--dest", default=None, metavar="AE", help="destination AE title (default: our AE title)")
    move.add_argument("--port", type=int, default=None, help="port of the in-process listener (default: settings)")
    move.add_argument("--no-listen", action="store_true",
                      help="do not start a listener (m3ret listen already receives for --dest)")
    return parser


def _runner(name: str):  # noqa: ANN202
    body = {"echo": _echo, "find": _find, "get": _get, "move": _move}[name]

    def run(args: argparse.Namespace) -> int:
        try:
            settings = PacsSettings.load(args.settings)
            return body(args, settings)
        except PacsError as exc:
            print(f"m3ret pacs {name}: error: {exc}", file=sys.stderr)
            return RUNTIME_ERROR

    return run


def _calling(args: argparse.Namespace, settings: PacsSettings) -> str:
    return valid_ae_title(args.ae_title or settings.ae_title)


def _echo(args: argparse.Namespace, settings: PacsSettings) -> int:
    from engine.pacs.query_retrieve import echo

    node = settings.node(args.node)
    echo(node, _calling(args, settings))
    print(f"{node}: C-ECHO ok")
    return 0


def _find(args: argparse.Namespace, settings: PacsSettings) -> int:
    from engine.pacs.query_retrieve import find_studies

    node = settings.node(args.node)
    studies = find_studies(node, _calling(args, settings), patient_id=args.patient_id, accession=args.accession,
                           study_date=args.study_date)
    if args.json:
        json.dump([s.to_json() for s in studies], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    _print_studies(studies)
    return 0


def _print_studies(studies: list[StudyMatch]) -> None:
    print(f"{'patient id':<16} {'date':<8} {'accession':<12} {'mod':<8} {'series':>6} {'inst':>5}  study uid")
    for s in studies:
        f = s.fields
        print(f"{f['PatientID'][:16]:<16} {f['StudyDate']:<8} {f['AccessionNumber'][:12]:<12} "
              f"{f['ModalitiesInStudy'][:8]:<8} {f['NumberOfStudyRelatedSeries']:>6} "
              f"{f['NumberOfStudyRelatedInstances']:>5}  {s.study_uid}")
        for series in s.series:
            g = series.fields
            print(f"    series {g['SeriesNumber']:>4} {g['Modality']:<4} {g['NumberOfSeriesRelatedInstances']:>5} "
                  f"inst  {g['SeriesDescription'][:40]}  {series.series_uid}")
    print(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}")


class _RetrieveBar:
    """Per-instance progress of a C-GET/C-MOVE on stderr (a tqdm bar on a terminal, else nothing)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self._bar = tqdm(desc=label, unit=" inst", file=sys.stderr, leave=False) if enabled else None

    def __call__(self, progress: RetrieveProgress) -> None:
        if self._bar is None:
            return
        done = progress.completed + progress.failed + progress.warning
        if progress.remaining is not None:
            self._bar.total = done + progress.remaining
        self._bar.n = done
        self._bar.set_postfix(failed=progress.failed, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _get(args: argparse.Namespace, settings: PacsSettings) -> int:
    from engine.pacs.inbox import Inbox
    from engine.pacs.query_retrieve import get_study

    node = settings.node(args.node)
    calling = _calling(args, settings)
    with open_receiving_library(args, settings) as library:
        inbox = Inbox(library.path)
        results = _each_study(args, "C-GET", lambda uid, bar: get_study(node, calling, uid, inbox, progress=bar))
        series = [d for _, r in results for d in r.series_dirs]
        report = index_paths(library, series) if series else IndexReport()
        total = library.catalog.count_cases()
    return _print_retrieved(args, "get", node, results, report, total)


def _move(args: argparse.Namespace, settings: PacsSettings) -> int:
    from engine.pacs.query_retrieve import move_study
    from engine.pacs.storage_scp import StorageSCP

    node = settings.node(args.node)
    calling = _calling(args, settings)
    dest = valid_ae_title(args.dest or calling)
    listen = dest == calling and not args.no_listen
    with open_receiving_library(args, settings) as library:
        scp = StorageSCP(library, calling, args.port or settings.port, [node.ae_title], settle_s=0.0) \
            if listen else None
        if scp is not None:
            scp.start()
        try:
            results = _each_study(args, "C-MOVE", lambda uid, bar: move_study(node, calling, uid, dest, progress=bar))
            if scp is not None and not scp.completion.wait_idle(MOVE_WAIT_S):
                raise PacsError(f"node {node}: the moved instances were not all indexed within {MOVE_WAIT_S:g} s")
        finally:
            if scp is not None:
                scp.stop()
        report = _merged(scp.completion.reports) if scp is not None else IndexReport()
        total = library.catalog.count_cases()
    return _print_retrieved(args, "move", node, results, report, total)


def _each_study(args: argparse.Namespace, label: str,
                retrieve: Callable[[str, _RetrieveBar], RetrieveResult]) -> list[tuple[str, RetrieveResult]]:
    """``retrieve(study_uid, progress)`` for every STUDY_UID, with a progress bar on a terminal."""
    results = []
    for study_uid in args.study_uids:
        bar = _RetrieveBar(f"{label} {study_uid[-20:]}", not args.json and sys.stderr.isatty())
        try:
            results.append((study_uid, retrieve(study_uid, bar)))
        finally:
            bar.close()
    return results


def _merged(reports: list[IndexReport]) -> IndexReport:
    merged = IndexReport()
    for r in reports:
        merged.n_added += r.n_added
        merged.n_updated += r.n_updated
        merged.n_unchanged += r.n_unchanged
        merged.n_failed += r.n_failed
        merged.failures += r.failures
        merged.seconds += r.seconds
    return merged


def _print_retrieved(args: argparse.Namespace, action: str, node: object, results: list[tuple[str, RetrieveResult]],
                     report: IndexReport, total: int) -> int:
    if args.json:
        doc = {
            "node": str(node),
            "studies": [{"StudyInstanceUID": uid, "completed": r.completed, "failed": r.failed,
                         "warning": r.warning, "refused": r.refused} for uid, r in results],
            "indexed": {"added": report.n_added, "updated": report.n_updated, "unchanged": report.n_unchanged,
                        "failed": report.n_failed,
                        "failures": [{"path": str(f.path), "reason": f.reason} for f in report.failures]},
            "cases_in_library": total,
        }
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for uid, r in results:
            print(f"C-{action.upper()} {uid}: {r.completed} instance(s), {r.failed} failed, {r.warning} warning(s)")
            for reason in r.refused:
                print(f"  refused: {reason}")
        for failure in report.failures:
            print(f"  {failure}")
        print(f"indexed: {report.summary()}; {total} case(s) in the library")
    return 0 if all(r.failed == 0 and not r.refused for _, r in results) else RUNTIME_ERROR
