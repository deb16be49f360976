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


def prepare_or_abort(unit, limits, params, modality=None):  # noqa: ANN001, ANN201 (same signature as prepare_unit)
    """``engine.indexer.prepare_unit``, except that an ``abort*`` file aborts the process (like a gdcm SIGABRT)."""
    if unit.files[0].name.startswith("abort"):
        os.abort()
    return real_prepare_unit(unit, limits, params, modality)


def prepare_slowly(unit, limits, params, modality=None):  # noqa: ANN001, ANN201 (same signature as prepare_unit)
    """``engine.indexer.prepare_unit`` taking 0.1 s longer (leaves time to kill the indexer mid-run)."""
    import time

    time.sleep(0.1)
    return real_prepare_unit(unit, limits, params, modality)


def prepare_or_hang(unit, limits, params, modality=None):  # noqa: ANN001, ANN201 (same signature as prepare_unit)
    """``engine.indexer.prepare_unit``, except that a ``hang*`` file blocks forever where no signal reaches it
    (like a decoder looping in native code)."""
    if unit.files[0].name.startswith("hang"):
        import signal
        import time

        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            time.sleep(1)
    return real_prepare_unit(unit, limits, params, modality)
