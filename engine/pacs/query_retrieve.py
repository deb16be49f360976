"""The query/retrieve SCU: C-ECHO, C-FIND (study and series level), C-GET and C-MOVE of a study.

Every failure is a ``PacsError`` with one line naming the node: connection refused, no answer within the node's
timeout, association rejected (with the peer's reason), or a failure status. C-GET stores what arrives into the
library's inbox (like the listener) and returns the series folders to index; C-MOVE asks the node to send the
study to a destination AE (normally our own listener, ``engine.pacs.storage_scp``).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from engine.pacs import PacsError, require_pynetdicom
from engine.pacs.contexts import IMAGE_STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from engine.pacs.inbox import Inbox, InstanceRefused
from engine.pacs.nodes import Node, valid_ae_title

log = logging.getLogger(__name__)

MAX_CONTEXTS = 128
STUDY_KEYS = ("PatientID", "PatientName", "StudyDate", "StudyTime", "AccessionNumber", "StudyDescription",
              "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")
SERIES_KEYS = ("Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances")


@dataclass
class SeriesMatch:
    """One series found by C-FIND."""

    series_uid: str
    fields: dict[str, str]


@dataclass
class StudyMatch:
    """One study found by C-FIND, with its series when they were asked for."""

    study_uid: str
    fields: dict[str, str]
    series: list[SeriesMatch] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"StudyInstanceUID": self.study_uid, **self.fields,
                "series": [{"SeriesInstanceUID": s.series_uid, **s.fields} for s in self.series]}


@dataclass
class RetrieveProgress:
    """Sub-operations of a C-GET/C-MOVE so far (``remaining`` None when the node does not say)."""

    completed: int
    failed: int
    warning: int
    remaining: int | None


@dataclass
class RetrieveResult:
    """What a C-GET or C-MOVE did; ``series_dirs``: inbox folders written (C-GET only)."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    series_dirs: list[Path] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


ProgressCallback = Callable[[RetrieveProgress], None]


# ---- association plumbing --------------------------------------------------------------------------------------


def _check_reachable(node: Node) -> None:
    """A TCP connect first, so 'nobody listens' and 'no answer' are told apart from a DICOM rejection."""
    try:
        with socket.create_connection((node.host, node.port), timeout=node.timeout):
            pass
    except ConnectionRefusedError:
        raise PacsError(f"node {node}: connection refused (is the DICOM service running on that port?)") from None
    except TimeoutError:
        raise PacsError(f"node {node}: no answer within {node.timeout:g} s") from None
    except OSError as exc:
        raise PacsError(f"node {node}: cannot connect ({exc.strerror or exc})") from None


@contextmanager
def _association(node: Node, calling_ae: str, contexts: list[tuple[str, list[str]]],
                 roles: list[Any] | None = None, handlers: list[Any] | None = None) -> Iterator[Any]:
    """An established association with ``node`` (released on exit); ``PacsError`` naming the node otherwise."""
    require_pynetdicom()
    from pynetdicom import AE, evt

    _check_reachable(node)
    ae = AE(ae_title=valid_ae_title(calling_ae))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout
    ae.connection_timeout = node.timeout
    ae.maximum_pdu_size = 0
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    rejection: list[str] = []

    def on_acse(event: Any) -> None:
        primitive = event.primitive
        if getattr(primitive, "result", None) in (0x01, 0x02):
            rejection.append(f"{primitive.reason_str} ({primitive.source_str})")

    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=roles or None,
                         evt_handlers=[(evt.EVT_ACSE_RECV, on_acse), *(handlers or [])])
    if not assoc.is_established:
        if assoc.is_rejected:
            reason = rejection[0] if rejection else "no reason given"
            raise PacsError(f"node {node}: association rejected: {reason} (is our AE title "
                            f"{calling_ae!r} known to the node?)")
        raise PacsError(f"node {node}: association failed (aborted or no answer within {node.timeout:g} s)")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _status_failed(status: Dataset | None, node: Node, what: str) -> None:
    if status is None or "Status" not in status:
        raise PacsError(f"node {node}: no answer to {what} within {node.timeout:g} s (or the association dropped)")
    code = int(status.Status)
    if code not in (0x0000, 0xFF00, 0xFF01) and not 0xB000 <= code <= 0xBFFF:
        comment = f": {status.ErrorComment}" if "ErrorComment" in status else ""
        raise PacsError(f"node {node}: {what} failed with status 0x{code:04X}{comment}")


# ---- C-ECHO ------------------------------------------------------------------------------------------------------


def echo(node: Node, calling_ae: str) -> None:
    """C-ECHO ``node``; ``PacsError`` naming it when it does not answer with success."""
    require_pynetdicom()
    from pynetdicom.sop_class import Verification

    with _association(node, calling_ae, [(Verification, [_implicit()])]) as assoc:
        status = assoc.send_c_echo()
        _status_failed(status, node, "C-ECHO")


def _implicit() -> str:
    from pydicom.uid import ImplicitVRLittleEndian

    return ImplicitVRLittleEndian


# ---- C-FIND ------------------------------------------------------------------------------------------------------


def find_studies(node: Node, calling_ae: str, patient_id: str = "", accession: str = "", study_date: str = "",
                 with_series: bool = True) -> list[StudyMatch]:
    """Studies matching the keys (empty = any; ``study_date`` ``YYYYMMDD`` or a ``A-B`` range), with their series."""
    require_pynetdicom()
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FindModel

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    for key in STUDY_KEYS:
        setattr(query, key, "")
    query.PatientID = patient_id
    query.AccessionNumber = accession
    query.StudyDate = study_date.replace("-", "") if len(study_date) == 10 and study_date.count("-") == 2 \
        else study_date
    studies: list[StudyMatch] = []
    with _association(node, calling_ae, [(FindModel, _syntaxes())]) as assoc:
        for identifier in _find(assoc, query, FindModel, node):
            uid = str(identifier.get("StudyInstanceUID", ""))
            if uid:
                studies.append(StudyMatch(uid, _fields(identifier, STUDY_KEYS)))
        if with_series:
            for study in studies:
                series_query = Dataset()
                series_query.QueryRetrieveLevel = "SERIES"
                series_query.StudyInstanceUID = study.study_uid
                series_query.SeriesInstanceUID = ""
                for key in SERIES_KEYS:
                    setattr(series_query, key, "")
                for identifier in _find(assoc, series_query, FindModel, node):
                    uid = str(identifier.get("SeriesInstanceUID", ""))
                    if uid:
                        study.series.append(SeriesMatch(uid, _fields(identifier, SERIES_KEYS)))
    return studies


def _find(assoc: Any, query: Dataset, model: str, node: Node) -> Iterator[Dataset]:
    for status, identifier in assoc.send_c_find(query, model):
        _status_failed(status, node, "C-FIND")
        if identifier is not None and int(status.Status) in (0xFF00, 0xFF01):
            yield identifier


def _values(identifier: Dataset, key: str) -> list[str]:
    """The values of ``key`` (none, one or several) as strings."""
    value = identifier.get(key, "")
    values = value if isinstance(value, (MultiValue, list, tuple)) else [value]
    return [str(v) for v in values if v not in (None, "")]


def _fields(identifier: Dataset, keys: tuple[str, ...]) -> dict[str, str]:
    return {key: "\\".join(_values(identifier, key)) for key in keys}


def _syntaxes() -> list[str]:
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    return [ExplicitVRLittleEndian, ImplicitVRLittleEndian]


# ---- C-GET -------------------------------------------------------------------------------------------------------


def _retrieve_query(study_uid: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    return query


def _storage_contexts(sop_classes: list[str]) -> list[tuple[str, list[str]]]:
    """Storage contexts to offer as C-GET's SCP: one per (SOP class, transfer syntax) while they fit in the 127
    left (so the node sends each instance as it holds it, no transcoding), else one per SOP class."""
    if sop_classes and len(sop_classes) * len(TRANSFER_SYNTAXES) < MAX_CONTEXTS:
        return [(sop, [ts]) for sop in sop_classes for ts in TRANSFER_SYNTAXES]
    return [(sop, list(TRANSFER_SYNTAXES)) for sop in (sop_classes or IMAGE_STORAGE_SOP_CLASSES)]


def study_sop_classes(node: Node, calling_ae: str, study_uid: str) -> list[str]:
    """The image SOP classes of a study (C-FIND ``SOPClassesInStudy``); empty when the node does not say."""
    require_pynetdicom()
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FindModel

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    query.SOPClassesInStudy = ""
    classes: list[str] = []
    with _association(node, calling_ae, [(FindModel, _syntaxes())]) as assoc:
        for identifier in _find(assoc, query, FindModel, node):
            classes += _values(identifier, "SOPClassesInStudy")
    return [c for c in dict.fromkeys(classes) if c in IMAGE_STORAGE_SOP_CLASSES]


def get_study(node: Node, calling_ae: str, study_uid: str, inbox: Inbox,
              progress: ProgressCallback | None = None) -> RetrieveResult:
    """C-GET a study from ``node`` into ``inbox``; the series folders written are in the result."""
    require_pynetdicom()
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GetModel

    sop_classes = study_sop_classes(node, calling_ae, study_uid)
    storage = _storage_contexts(sop_classes)
    contexts = [(GetModel, _syntaxes()), *storage]
    roles = [build_role(sop, scp_role=True) for sop in dict.fromkeys(sop for sop, _ in storage)]
    result = RetrieveResult()
    seen: set[Path] = set()
    lock = threading.Lock()

    def on_store(event: Any) -> int:
        try:
            stored = inbox.store(event.encoded_dataset())
        except InstanceRefused as exc:
            with lock:
                result.refused.append(str(exc))
            log.warning("node %s sent an instance we refused: %s", node, exc)
            return 0xA900
        except OSError as exc:
            log.warning("cannot write a retrieved instance to %s: %s", inbox.root, exc)
            return 0xA700
        with lock:
            if stored.series_dir not in seen:
                seen.add(stored.series_dir)
                result.series_dirs.append(stored.series_dir)
        return 0x0000

    with _association(node, calling_ae, contexts, roles, [(evt.EVT_C_STORE, on_store)]) as assoc:
        _collect(assoc.send_c_get(_retrieve_query(study_uid), GetModel), result, node, "C-GET", progress)
    return result


def _collect(responses: Iterator[tuple[Dataset, Dataset | None]], result: RetrieveResult, node: Node, what: str,
             progress: ProgressCallback | None) -> None:
    for status, _identifier in responses:
        _status_failed(status, node, what)
        result.completed = int(status.get("NumberOfCompletedSuboperations", result.completed))
        result.failed = int(status.get("NumberOfFailedSuboperations", result.failed))
        result.warning = int(status.get("NumberOfWarningSuboperations", result.warning))
        remaining = status.get("NumberOfRemainingSuboperations")
        if progress is not None:
            progress(RetrieveProgress(result.completed, result.failed, result.warning,
                                      None if remaining is None else int(remaining)))
    if result.failed:
        log.warning("node %s: %s: %d sub-operation(s) failed", node, what, result.failed)


# ---- C-MOVE ------------------------------------------------------------------------------------------------------


def move_study(node: Node, calling_ae: str, study_uid: str, destination_ae: str,
               progress: ProgressCallback | None = None) -> RetrieveResult:
    """C-MOVE a study from ``node`` to ``destination_ae`` (an AE the node knows, e.g. our listener)."""
    require_pynetdicom()
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MoveModel

    result = RetrieveResult()
    with _association(node, calling_ae, [(MoveModel, _syntaxes())]) as assoc:
        responses = assoc.send_c_move(_retrieve_query(study_uid), valid_ae_title(destination_ae), MoveModel)
        _collect(responses, result, node, "C-MOVE", progress)
    return result
