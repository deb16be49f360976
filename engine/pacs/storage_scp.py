"""The storage SCP behind ``m3ret listen``: C-STORE into the library's inbox, C-ECHO, allowed calling AE titles.

Each accepted instance is checked (it must name its study, series and SOP instance with valid UIDs) and written
atomically into ``<library>/inbox``; an instance that fails the check is refused with a DICOM failure status and
a one-line reason (the sender sees it as the C-STORE status's Error Comment), and the listener goes on. Complete
series are indexed by ``engine.pacs.series_completion``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.library import Library
from engine.pacs import PacsError, require_pynetdicom
from engine.pacs.contexts import IMAGE_STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from engine.pacs.inbox import Inbox, InstanceRefused, StoredInstance
from engine.pacs.nodes import valid_ae_title
from engine.pacs.series_completion import IndexedCallback, SeriesCompletion

log = logging.getLogger(__name__)

ANY_CALLER = "*"
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DATASET_MISMATCH = 0xA900  # "Data Set does not match SOP Class": no or invalid UIDs
STATUS_CANNOT_UNDERSTAND = 0xC000
CLOSE_GRACE_S = 2.0  # a closed connection without a release or abort event is an abort after this long

InstanceCallback = Callable[[StoredInstance, str], None]


@dataclass
class Refusal:
    """An instance the listener refused: who sent it and why."""

    calling_ae: str
    sop_instance_uid: str
    reason: str


@dataclass
class ListenerStats:
    """Counters of a running listener (read from any thread; written under the listener's lock)."""

    received: int = 0
    duplicates: int = 0
    refused: list[Refusal] = field(default_factory=list)


class StorageSCP:
    """A storage SCP writing into ``library``'s inbox and indexing complete series into it."""

    def __init__(self, library: Library, ae_title: str, port: int, allow: list[str], settle_s: float,
                 bind: str = "0.0.0.0", on_instance: InstanceCallback | None = None,
                 on_indexed: IndexedCallback | None = None) -> None:
        require_pynetdicom()
        self.ae_title = valid_ae_title(ae_title)
        self.port = int(port)
        self.bind = bind
        if not allow:
            raise PacsError("no calling AE title is allowed to send: give --allow AE (or allow = in pacs.ini; "
                            f"'{ANY_CALLER}' allows every caller)")
        self.allow = [a if a == ANY_CALLER else valid_ae_title(a) for a in allow]
        self.inbox = Inbox(library.path)
        self.completion = SeriesCompletion(library, settle_s, on_indexed)
        self.on_instance = on_instance
        self.stats = ListenerStats()
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        self._ended_keys: set[int] = set()
        self._server: Any = None

    # ---- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the port (``PacsError`` naming it when that fails) and start indexing complete series."""
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 0  # no limit: big instances in few PDUs
        for sop_class in IMAGE_STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(Verification)
        if ANY_CALLER not in self.allow:
            ae.require_calling_aet = list(self.allow)
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_RELEASED, self._on_released),
            (evt.EVT_ABORTED, self._on_aborted),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]
        try:
            self._server = ae.start_server((self.bind, self.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise PacsError(f"cannot listen on {self.bind}:{self.port} ({exc.strerror or exc})") from exc
        self.port = self._server.server_address[1]
        self.completion.resume(self.inbox)
        self.completion.start()
        log.info("listening as %s on %s:%d (allowed callers: %s), inbox %s", self.ae_title, self.bind, self.port,
                 ", ".join(self.allow), self.inbox.root)

    def stop(self, flush: bool = False) -> None:
        """Close the port and stop the indexing thread (``flush``: index what is complete first)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.completion.stop(flush=flush)

    def __enter__(self) -> "StorageSCP":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- handlers (pynetdicom's association threads) -------------------------------------------------------

    def _on_echo(self, event: Any) -> int:
        log.info("C-ECHO from %s", _calling_ae(event))
        return STATUS_SUCCESS

    def _on_store(self, event: Any) -> Any:
        calling = _calling_ae(event)
        sop_uid = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "")
        try:
            stored = self.inbox.store(event.encoded_dataset())
        except InstanceRefused as exc:
            status = STATUS_CANNOT_UNDERSTAND if exc.unparseable else STATUS_DATASET_MISMATCH
            return self._refuse(calling, sop_uid, str(exc), status)
        except OSError as exc:
            return self._refuse(calling, sop_uid, f"cannot write to the inbox ({exc})", STATUS_OUT_OF_RESOURCES)
        except Exception as exc:  # noqa: BLE001 (one bad instance never stops the listener)
            return self._refuse(calling, sop_uid, f"{type(exc).__name__}: {exc}", STATUS_CANNOT_UNDERSTAND)
        with self._lock:
            self.stats.received += 1
            self.stats.duplicates += not stored.new
        self.completion.arrived(stored.series_dir, self._key(event.assoc))
        log.debug("stored %s from %s", stored.path, calling)
        if self.on_instance is not None:
            self.on_instance(stored, calling)
        return STATUS_SUCCESS

    def _refuse(self, calling: str, sop_uid: str, reason: str, status: int) -> Any:
        from pydicom.dataset import Dataset

        log.warning("refused instance %s from %s: %s", sop_uid or "?", calling, reason)
        with self._lock:
            self.stats.refused.append(Refusal(calling, sop_uid, reason))
        answer = Dataset()
        answer.Status = status
        answer.ErrorComment = reason[:64]
        return answer

    # An association ends with EVT_RELEASED (complete) or EVT_ABORTED (A-ABORT or a dropped connection). The
    # reactor thread fires those; the connection thread may report the closed socket first, so a connection
    # closed with neither seen is taken as aborted only after CLOSE_GRACE_S.

    def _key(self, assoc: Any) -> int:
        with self._lock:
            key = getattr(assoc, "_m3ret_key", None)
            if key is None:
                key = assoc._m3ret_key = next(self._keys)
            return int(key)

    def _on_released(self, event: Any) -> None:
        self._ended(self._key(event.assoc), aborted=False)

    def _on_aborted(self, event: Any) -> None:
        self._ended(self._key(event.assoc), aborted=True)

    def _on_closed(self, event: Any) -> None:
        key = self._key(event.assoc)
        timer = threading.Timer(CLOSE_GRACE_S, self._closed, (key,))
        timer.daemon = True
        timer.start()

    def _ended(self, key: int, aborted: bool) -> None:
        with self._lock:
            if key in self._ended_keys:
                return
            self._ended_keys.add(key)
        self.completion.association_ended(key, aborted=aborted)

    def _closed(self, key: int) -> None:
        with self._lock:
            if key in self._ended_keys:  # released or aborted: nothing more will come for it
                self._ended_keys.discard(key)
                return
        self.completion.association_ended(key, aborted=True)


def _calling_ae(event: Any) -> str:
    title = event.assoc.requestor.ae_title
    return title.decode("ascii", "replace").strip() if isinstance(title, bytes) else str(title).strip()

