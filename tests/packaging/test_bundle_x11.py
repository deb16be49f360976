"""The BUILT app (``dist/m3ret``) on a real X display of a machine without Qt's xcb libraries (issue 12).

Runs ``packaging/smoke_test.py``'s X11 checks on an existing bundle: with ``libxcb-icccm4``, ``libxcb-keysyms1``,
``libxcb-cursor0`` and ``libxkbcommon-x11-0`` hidden from the system (private mount namespace, ``ldd`` proves it)
the window comes up from the bundle's own copies; with the GL libraries the bundle takes from the system hidden,
the app exits at once naming ``libegl1 libglx0``, in its log too. Skips with the reason where there is no bundle
(CI builds one only in the slow ``test_smoke.py``), no Xvfb, or no way to make the namespace (root or unprivileged
user namespaces with overlayfs).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def smoke_module():  # noqa: ANN201 (packaging/smoke_test.py)
    spec = importlib.util.spec_from_file_location("m3ret_smoke_test", REPO / "packaging" / "smoke_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_packaged_app_on_x11_without_the_xcb_libraries(tmp_path: Path, output_dir: Path) -> None:
    dist = Path(os.environ.get("M3RET_DIST", REPO / "dist" / "m3ret"))
    if not (dist / "m3ret-app").is_file():
        pytest.skip(f"no built bundle at {dist} (run `make package`; CI builds one only in test_smoke.py)")
    smoke = smoke_module()
    cases, query = smoke.make_synthetic_cases(tmp_path / "cases")
    run = smoke.SmokeRun()
    screenshot = output_dir / "packaged_app_x11.png"
    smoke.run_x11_without_libraries(run, dist / "m3ret-app", [], smoke.isolated_env(tmp_path), screenshot, query,
                                    dist, tmp_path)
    skipped = [f"{key}: {value}" for key, value in run.facts.items() if str(value).startswith("skipped")]
    if not run.steps:
        pytest.skip("; ".join(skipped) or "no X11 check ran")
    failures = [(s.name, s.note, s.output[-800:]) for s in run.steps if not s.ok]
    assert not failures, failures
    assert not skipped, skipped
    assert [s.name.split(":")[-1].strip() for s in run.steps] == ["starts (bundled copies)", "names what to install"]
