"""DICOM networking (optional extra ``pacs``: pynetdicom, imported lazily by the modules that talk DICOM).

- ``nodes``: remote nodes and listener settings (``pacs.ini`` under the user config folder).
- ``contexts``: the storage SOP classes and transfer syntaxes we accept and propose.
- ``inbox``: the per-library folder received instances are written to (atomically, one file per instance).
- ``series_completion``: indexes a received series once it is complete (quiet for N seconds, association done).
- ``storage_scp``: the storage SCP (``m3ret listen``): C-STORE into the inbox, C-ECHO, allowed calling AEs.
- ``query_retrieve``: the SCU: C-ECHO, C-FIND (study/series), C-GET and C-MOVE of a study.
"""

from __future__ import annotations


class PacsError(Exception):
    """A DICOM network operation failed (message is one line, names the node, meant for the user)."""


def require_pynetdicom() -> None:
    """Raise ``PacsError`` with how to install it when pynetdicom is missing."""
    try:
        import pynetdicom  # noqa: F401
    except ImportError as exc:
        raise PacsError("DICOM networking needs pynetdicom: pip install 'm3ret[pacs]'") from exc
