"""A reader that kills its own process on files named ``crash*`` (imported by spawned reader processes)."""

from __future__ import annotations

import os
import signal

from engine.indexer import prepare_unit as real_prepare_unit


def prepare_or_crash(unit, limits, params, modality=None):  # noqa: ANN001, ANN201 (same signature as prepare_unit)
    """``engine.indexer.prepare_unit``, except that a ``crash*`` file SIGKILLs the reader process."""
    if unit.files[0].name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_prepare_unit(unit, limits, params, modality)
