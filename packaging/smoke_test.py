"""Smoke test of the BUILT app (``dist/m3ret/``): command line and GUI, offline, nothing written into the bundle.

1. checks the bundle (both executables, no torch/trainer/onnx inside, size);
2. copies a few real files of every kind from the shared data (PNG X-rays and ultrasound stills, an ultrasound
   video, CT NIfTI volumes, a CT DICOM series, a JPEG 2000 MR DICOM series) -- or generates PNG/NIfTI files where
   the shared data is absent -- into a temporary folder;
3. with ``M3RET_HOME`` (and ``HOME``/XDG folders) in that temporary folder and the network cut (``unshare -n``
   where the kernel allows it), runs ``m3ret --help``, ``m3ret index``, ``m3ret stats``, ``m3ret search``, timing
   each, and the GUI ``m3ret-app --screenshot PNG --quit-after-ms N`` offscreen (Qt offscreen platform, VTK OSMesa);
4. on a real X display (Xvfb), as on a desktop WITHOUT Qt's xcb libraries (``libxcb-icccm4``, ``libxcb-keysyms1``,
   ``libxcb-cursor0``, ``libxkbcommon-x11-0``, hidden in a private mount namespace, ``hide_libraries.py``): the app
   starts (the bundle carries them) or says exactly what to install; and without the GL libraries the bundle takes
   from the system (``libEGL.so.1``, ``libGLX.so.0``) it exits at once naming ``libegl1 libglx0``, in the log too;
5. checks ``dist/m3ret`` is byte-for-byte unchanged (sizes and modification times of every file).

Usage: ``python packaging/smoke_test.py [--dist dist/m3ret] [--report packaging/LAST_SMOKE_RUN.md]``.
Exit status 0 when every step passed. The model used is the bundled default; where the bundle has none yet
(before the trainer's export lands), a random-init export is made and passed through ``M3RET_MODEL``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_bundle import inspect_bundle  # noqa: E402
from hide_libraries import hide_libraries_prefix, not_found_by_ldd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GUI_QUIT_AFTER_MS = 4000  # time for the query to be read, embedded and searched
DEFAULT_MODEL_REL = Path("_internal") / "resources" / "models" / "m3ret-default.onnx"
QXCB_REL = Path("_internal") / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so"
# issue 12: what a fresh Debian/Ubuntu desktop lacks for Qt's xcb plugin (library -> apt package)
XCB_EXTRAS = {"libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
              "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0"}
# libraries the bundle takes from the system (not bundled): hidden to see the app name their packages
SYSTEM_GL = {"libEGL.so.1": "libegl1", "libGLX.so.0": "libglx0"}


@dataclass
class Step:
    """One command of the smoke test: what ran, how long, whether it passed, the tail of its output."""

    name: str
    command: list[str]
    seconds: float
    rc: int
    ok: bool
    output: str
    note: str = ""
    started_epoch: float = 0.0


@dataclass
class SmokeRun:
    steps: list[Step] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)


def network_prefix() -> list[str]:
    """``unshare -n`` (run without any network interface) where this kernel lets us, else nothing."""
    unshare = shutil.which("unshare")
    for prefix in ([unshare, "-n"], [unshare, "-rn"]) if unshare else ():
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    return []


def evict_page_cache(folder: Path) -> bool:
    """Drop the bundle's files from the OS page cache (a true cold start of the next run); False where unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return True


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and link under ``folder`` -> (size, mtime_ns): compared before/after to prove nothing changed."""
    out = {}
    for path in folder.rglob("*"):
        st = path.lstat()
        out[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def pick_real_cases(data: Path, dest: Path) -> tuple[list[Path], Path]:
    """Copy a few test-split files of each kind into ``dest``; returns (copied paths, a query file not copied)."""
    rows = list(csv.DictReader((data / "manifest.csv").open()))
    wanted = {  # (modality, is_dir, suffix) -> how many
        ("xray", False, ".png"): 4,
        ("ultrasound", False, ".png"): 2,
        ("ultrasound", False, ".mp4"): 1,
        ("ct", False, ".nii.gz"): 2,
        ("ct", True, ""): 1,
        ("mri", False, ".jpg"): 2,
    }
    copied: list[Path] = []
    query = None
    for (modality, is_dir, suffix), n in wanted.items():
        candidates = sorted(
            (r for r in rows if r["modality"] == modality and r["split"] in ("test", "val")),
            key=lambda r: r["path"],
        )
        candidates = [r for r in candidates if (data / r["path"]).is_dir() == is_dir and r["path"].endswith(suffix)]
        if suffix == ".mp4":  # the smallest video keeps the run short
            candidates.sort(key=lambda r: (data / r["path"]).stat().st_size)
        for row in candidates[:n]:
            copied.append(_copy(data / row["path"], dest / modality))
        if modality == "xray" and len(candidates) > n:
            query = data / candidates[n]["path"]
    formats = data / "formats" / "manifest.csv"
    if formats.is_file():  # compressed vendor DICOM series (JPEG 2000, JPEG): exercise the bundled codecs
        for codec in ("jp2k", "jpg"):
            for row in csv.DictReader(formats.open()):
                src = data / "formats" / row["path"]
                if src.is_dir() and any(f.name.startswith(codec) for f in src.iterdir()):
                    copied.append(_copy(src, dest / f"dicom_{codec}"))
                    break
    assert query is not None, "no X-ray left for the query"
    return copied, query


def _copy(src: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / src.name
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        shutil.copy2(src, target)
    return target


def make_synthetic_cases(dest: Path) -> tuple[list[Path], Path]:
    """Where the shared data is absent: a few PNG images and NIfTI volumes made here."""
    import cv2
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(5):
        img = (rng.random((64, 64)) * 60 + 100 * (i % 2)).astype(np.uint8)
        cv2.circle(img, (32, 32), 8 + 4 * i, 255, -1)
        paths.append(dest / f"image_{i}.png")
        cv2.imwrite(str(paths[-1]), img)
    for i in range(2):
        vol = rng.normal(0, 50, (32, 32, 24)).astype(np.int16)
        paths.append(dest / f"volume_{i}.nii.gz")
        nib.save(nib.Nifti1Image(vol, np.diag([2.0, 2.0, 3.0, 1.0])), str(paths[-1]))
    query = paths.pop(0)
    return paths, query


def ensure_model(dist: Path, workdir: Path, model: Path | None = None) -> tuple[dict[str, str], str]:
    """Env for the commands and a description of the model: ``model`` where given, the bundled default, else a
    random-init export."""
    if model is not None:
        return {"M3RET_MODEL": str(model.resolve())}, f"{model.name} (given with --model, via M3RET_MODEL)"
    if (dist / DEFAULT_MODEL_REL).is_file():
        return {}, f"bundled default ({DEFAULT_MODEL_REL.as_posix()})"
    path = workdir / "random-init.onnx"
    try:
        from trainer.export import export_random_init  # dev venv only: torch never enters the bundle

        export_random_init(path)
        how = "random-init export (trainer.export.export_random_init)"
    except Exception as exc:  # noqa: BLE001  (no torch / no trainer: the tests' pooling graph is enough)
        sys.path.insert(0, str(REPO / "tests" / "engine"))
        from conftest import build_pooling_model

        build_pooling_model(path)
        how = f"tiny pooling graph (tests/engine/conftest.py; trainer export unavailable: {exc})"
    return {"M3RET_MODEL": str(path)}, f"NOT bundled (no default model yet): {how}, via M3RET_MODEL"


def run_step(run: SmokeRun, name: str, command: list[str], env: dict[str, str], check=None,
             timeout: float = 600, expect_rc: int = 0) -> Step:
    """Run one command, time it, keep the tail of its output; ``check(output) -> str | None`` names a failure;
    ``expect_rc``: the exit status that passes."""
    started_epoch, start = time.time(), time.perf_counter()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, output = -9, f"TIMEOUT after {timeout} s\n{exc.stdout or ''}{exc.stderr or ''}"
    seconds = time.perf_counter() - start
    problem = None if rc == expect_rc else f"exit status {rc}"
    if problem is None and "Traceback (most recent call last)" in output:
        problem = "a Python traceback in the output"
    if problem is None and check is not None:
        problem = check(output)
    step = Step(name, command, seconds, rc, problem is None, output[-3000:], problem or "", started_epoch)
    run.steps.append(step)
    print(f"[{'ok' if step.ok else 'FAIL'}] {name}: {seconds:.2f} s {problem or ''}", flush=True)
    return step


def timed_repeats(run: SmokeRun, name: str, command: list[str], env: dict[str, str], repeats: int = 3,
                  cold_folder: Path | None = None) -> None:
    """A cold run (``cold_folder`` evicted from the page cache first) then the median of ``repeats`` warm runs."""
    cold = cold_folder is not None and evict_page_cache(cold_folder)
    first = run_step(run, f"{name} ({'cold' if cold else 'first'} run)", command, env)
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True)
        warm.append(time.perf_counter() - start)
    run.facts[f"{name}: {'cold run (bundle evicted from page cache)' if cold else 'first run'}"] = \
        f"{first.seconds:.2f} s"
    run.facts[f"{name}: warm median of {repeats}"] = f"{statistics.median(warm):.2f} s"


def isolated_env(tmp: Path) -> dict[str, str]:
    """The commands' whole environment: ``M3RET_HOME`` = ``tmp/m3ret_home``, ``HOME`` and XDG folders under
    ``tmp/user`` (anything written outside ``M3RET_HOME`` is found there)."""
    fake_home = tmp / "user"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "M3RET_HOME": str(tmp / "m3ret_home"),
        "HOME": str(fake_home),
        "XDG_DATA_HOME": str(fake_home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(fake_home / ".config"),
        "XDG_CACHE_HOME": str(fake_home / ".cache"),
        "XDG_STATE_HOME": str(fake_home / ".local" / "state"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }


def smoke(dist: Path, screenshot: Path, gui: bool = True, model: Path | None = None) -> SmokeRun:
    run = SmokeRun()
    dist = dist.resolve()
    cli, app = dist / "m3ret", dist / "m3ret-app"
    report = inspect_bundle(dist)
    run.facts["bundle size"] = f"{report.size_bytes / 2**20:.0f} MiB in {report.n_files} files"
    build_json = dist.parent / "m3ret-build.json"  # written by packaging/build.sh
    if build_json.is_file():
        build = json.loads(build_json.read_text())
        run.facts["build time (packaging/build.sh)"] = f"{build['build_seconds']:.0f} s (prune={build['prune']})"
    run.facts["forbidden modules in bundle"] = ", ".join(report.forbidden[:10]) or "none (no torch/trainer/onnx/...)"
    run.steps.append(Step("bundle check", ["check_bundle.inspect_bundle", str(dist)], 0.0, 0, report.ok,
                          str(report.executables), "" if report.ok else f"forbidden {report.forbidden[:5]}"))
    before = snapshot(dist)
    prefix = network_prefix()
    run.facts["network"] = (
        f"cut: every command ran under `unshare {' '.join(prefix[1:])}` (loopback only)"
        if prefix else "NOT cut (unshare unavailable here)"
    )

    with tempfile.TemporaryDirectory(prefix="m3ret-smoke-") as tmp_name:
        tmp = Path(tmp_name)
        fake_home = tmp / "user"
        env = isolated_env(tmp)
        model_env, model_note = ensure_model(dist, tmp, model)
        env.update(model_env)
        run.facts["model"] = model_note

        from engine.config import shared_data_dir

        data = shared_data_dir()
        cases_dir = tmp / "cases"
        if data is not None:
            cases, query = pick_real_cases(data, cases_dir)
            run.facts["cases"] = f"{len(cases)} real files/series from {data.name}/ (xray, ultrasound png+mp4, " \
                                 "ct nii.gz + DICOM, mri jpg, JPEG 2000 + JPEG DICOM)"
        else:
            cases, query = make_synthetic_cases(cases_dir)
            run.facts["cases"] = f"{len(cases)} generated PNG/NIfTI files (shared data absent)"

        timed_repeats(run, "m3ret --help", [*prefix, str(cli), "--help"], env, cold_folder=dist)
        run_step(run, "m3ret index", [*prefix, str(cli), "index", str(cases_dir)], env,
                 check=lambda out: _check_indexed(out, len(cases), tmp / "m3ret_home"))
        timed_repeats(run, "m3ret stats", [*prefix, str(cli), "stats"], env)
        run_step(run, "m3ret search", [*prefix, str(cli), "search", str(query), "-k", "5", "--json"], env,
                 check=lambda out: _check_results(out, cases_dir))
        export_dir = tmp / "export"  # de-identified copies need dicognito (and its data file) in the bundle
        run_step(run, "m3ret export (de-identified)", [*prefix, str(cli), "export", "--query", str(query), "-k", "3",
                                                      "--copies", "--out", str(export_dir), "--json"], env,
                 check=lambda out: _check_export(export_dir, 3))
        if gui:
            run_gui(run, app, [*prefix], env, screenshot, query, dist)
            run_x11_without_libraries(run, app, prefix, env, screenshot.with_name("packaged_app_x11.png"), query,
                                      dist, tmp)
            logs = "".join(p.read_text(errors="replace") for p in (tmp / "m3ret_home" / "logs").glob("*.log"))
            bad = [line for line in logs.splitlines() if " ERROR " in line or "Traceback" in line]
            run.steps.append(Step("app log has no errors", ["grep", "ERROR", "m3ret-app.log"], 0.0, 0, not bad,
                                  "\n".join(bad[:20]), f"{len(bad)} error line(s)" if bad else ""))
        run.facts["written under M3RET_HOME"] = ", ".join(sorted(
            p.relative_to(tmp / "m3ret_home").as_posix() for p in (tmp / "m3ret_home").glob("*/*")
        )) or "nothing"
        stray = sorted(p.relative_to(fake_home).as_posix() for p in fake_home.rglob("*") if p.is_file()) \
            if fake_home.exists() else []
        run.facts["written under HOME outside M3RET_HOME"] = ", ".join(stray[:10]) or "nothing"
        run.steps.append(Step("nothing written under HOME outside M3RET_HOME", ["find", str(fake_home)], 0.0, 0,
                              not stray, "", f"stray files: {stray[:5]}" if stray else ""))

    after = snapshot(dist)
    changed = sorted(set(before.items()) ^ set(after.items()))
    run.steps.append(Step("dist/m3ret unchanged after the runs", ["snapshot"], 0.0, 0, not changed, "",
                          f"changed: {[name for name, _ in changed][:10]}" if changed else ""))
    print(f"[{'ok' if not changed else 'FAIL'}] dist/m3ret unchanged", flush=True)
    return run


def run_gui(run: SmokeRun, app: Path, prefix: list[str], env: dict[str, str], screenshot: Path, query: Path,
            dist: Path) -> None:
    """Start the GUI offscreen twice (bundle evicted from the page cache, then warm) with the query file; each run
    saves a screenshot after ``GUI_QUIT_AFTER_MS`` and quits."""
    gui_env = env | {"QT_QPA_PLATFORM": "offscreen", "VTK_DEFAULT_OPENGL_WINDOW": "vtkOSOpenGLRenderWindow"}
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    for attempt in ("cold", "warm"):
        screenshot.unlink(missing_ok=True)
        label = attempt if attempt == "warm" or evict_page_cache(dist) else "first"
        step = run_step(
            run, f"m3ret-app offscreen + screenshot ({label})",
            [*prefix, str(app), "--screenshot", str(screenshot), "--quit-after-ms", str(GUI_QUIT_AFTER_MS),
             str(query)],
            gui_env, check=lambda out: _check_png(screenshot), timeout=300,
        )
        run.facts[f"GUI start to first shown window ({label})"] = _time_to_shown(step) or \
            f"~{max(0.0, step.seconds - GUI_QUIT_AFTER_MS / 1000):.2f} s (start-to-exit minus quit-after-ms)"
        run.facts[f"GUI start to exit, incl. {GUI_QUIT_AFTER_MS} ms wait ({label})"] = f"{step.seconds:.2f} s"


def start_xvfb() -> tuple[subprocess.Popen | None, str]:
    """An Xvfb on a free display: (process, ":N"), or (None, why not)."""
    if shutil.which("Xvfb") is None:
        return None, "Xvfb not installed (apt-get install xvfb)"
    number = next((n for n in range(90, 140) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                   and not Path(f"/tmp/.X{n}-lock").exists()), None)
    if number is None:
        return None, "no free X display number"
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            return None, "Xvfb did not start"
        time.sleep(0.1)
    return server, f":{number}"


def run_x11_without_libraries(run: SmokeRun, app: Path, prefix: list[str], env: dict[str, str], screenshot: Path,
                              query: Path, dist: Path, tmp: Path) -> None:
    """The packaged app on a real X display (Xvfb, Qt's xcb platform) of a machine without some libraries, each
    hidden in a private mount namespace (``hide_libraries.py``; ``ldd`` on the bundled plugin proves it):

    1. without ``XCB_EXTRAS`` (issue 12): the bundle carries its own copies, so the window must come up
       (screenshot); where the bundle lacks some, the app must exit naming exactly their packages;
    2. without ``SYSTEM_GL`` (taken from the system, never bundled): exit 1 within 10 s, one message naming
       ``sudo apt-get install libegl1 libglx0``, in the app log too, and never Qt's own platform-plugin abort.
    """
    internal = dist / "_internal"
    plugin = dist / QXCB_REL
    server, display = start_xvfb()
    if server is None:
        run.facts["X11 without Qt's xcb libraries"] = f"skipped: {display}"
        return
    try:
        x_env = {k: v for k, v in env.items() if k not in ("QT_QPA_PLATFORM", "VTK_DEFAULT_OPENGL_WINDOW")}
        x_env["DISPLAY"] = display
        bundled = sorted(name for name in XCB_EXTRAS if (internal / name).is_file())
        hide = hide_libraries_prefix(sorted(XCB_EXTRAS))
        if hide is None:
            run.facts["X11 without Qt's xcb libraries"] = "skipped: cannot hide libraries here (needs root or " \
                                                         "unprivileged user namespaces with overlayfs)"
            return
        hidden = not_found_by_ldd(hide, plugin)
        run.facts["X11: hidden from the system (ldd on the bundled libqxcb.so: not found)"] = ", ".join(hidden)
        run.facts["X11: of those, carried by the bundle (_internal/)"] = ", ".join(bundled) or "none"
        lacking = sorted(set(XCB_EXTRAS) - set(bundled))
        screenshot.unlink(missing_ok=True)
        name = f"m3ret-app in X11 without {', '.join(sorted(XCB_EXTRAS.values()))}"
        if hidden != sorted(XCB_EXTRAS):
            run.steps.append(Step(name, ["ldd", str(plugin)], 0.0, 1, False, "", f"not hidden: ldd says {hidden}"))
        elif not lacking:  # the bundle's own copies are used: the desktop comes up
            run_step(run, f"{name}: starts (bundled copies)",
                     [*hide, *prefix, str(app), "--screenshot", str(screenshot), "--quit-after-ms",
                      str(GUI_QUIT_AFTER_MS), str(query)], x_env,
                     check=lambda out: _check_png(screenshot) if "window shown" in out else "no window shown",
                     timeout=300)
            run.facts["X11 screenshot (without the four system libraries)"] = f"`{screenshot}`"
        else:
            packages = " ".join(sorted(XCB_EXTRAS[n] for n in lacking))
            _expect_install_message(run, f"{name}: names what to install", [*hide, *prefix, str(app)], x_env,
                                    f"sudo apt-get install {packages}", tmp / "home_no_xcb")

        hide_gl = hide_libraries_prefix(sorted(SYSTEM_GL)) or []
        # what the app's own loader misses (the bootloader puts _internal/ on LD_LIBRARY_PATH)
        system = not_found_by_ldd(hide_gl, plugin, os.environ | {"LD_LIBRARY_PATH": str(internal)})
        if system != sorted(SYSTEM_GL):
            run.facts["X11 without libegl1, libglx0"] = f"skipped: not hidden from the app's view (ldd: {system})"
            return
        _expect_install_message(run, "m3ret-app in X11 without libegl1, libglx0 (not bundled): names what to install",
                                [*hide_gl, *prefix, str(app)], x_env,
                                "sudo apt-get install " + " ".join(sorted(SYSTEM_GL.values())), tmp / "home_no_gl")
    finally:
        server.terminate()
        server.wait(timeout=10)


def _expect_install_message(run: SmokeRun, name: str, command: list[str], env: dict[str, str], expected: str,
                            home: Path) -> None:
    """The app must exit 1 within 10 s with one message holding ``expected``, logged, without Qt's own abort."""
    env = env | {"M3RET_HOME": str(home)}  # its own log: the deliberate error stays out of the main run's log

    def check(out: str) -> str | None:
        if "m3ret-app: error:" not in out or expected not in out:
            return f"no message naming {expected!r}"
        if "Could not load the Qt platform plugin" in out or "qt.qpa" in out:
            return "Qt's own platform-plugin message shown"
        log_file = home / "logs" / "m3ret-app.log"
        if not log_file.is_file() or expected not in log_file.read_text(errors="replace"):
            return "the message is not in the app log"
        return None

    step = run_step(run, name, command, env, check=check, timeout=60, expect_rc=1)
    if step.ok and step.seconds >= 10:
        step.ok, step.note = False, f"took {step.seconds:.1f} s (expected under 10 s)"
        print(f"[FAIL] {name}: {step.note}", flush=True)


def _check_indexed(output: str, n_cases: int, home: Path) -> str | None:
    """None when ``m3ret index`` added every copied file/series without a failure, under ``M3RET_HOME``."""
    if not home.is_dir():
        return "nothing written under M3RET_HOME"
    added, failed = re.search(r"(\d+) added", output), re.search(r"(\d+) failed", output)
    if added is None or failed is None:
        return "no index summary printed"
    if int(failed.group(1)) or int(added.group(1)) < n_cases:
        return f"{added.group(1)} added, {failed.group(1)} failed for {n_cases} files/series"
    return None


def _check_results(output: str, cases_dir: Path) -> str | None:
    """None when ``m3ret search --json`` printed results pointing at indexed files, else what is wrong."""
    try:
        results = json.loads(output[output.index("{"):])["results"]
    except (ValueError, KeyError) as exc:
        return f"no JSON results ({exc})"
    if not results:
        return "no results"
    if not all(str(cases_dir) in json.dumps(r) for r in results):
        return "a result outside the indexed folder"
    return None


def _check_export(out_dir: Path, n_cases: int) -> str | None:
    """None when ``m3ret export --copies`` wrote the report and ``n_cases`` case folders, else what is wrong."""
    missing = [n for n in ("report.html", "report.csv", "report.json", "export.json") if not (out_dir / n).is_file()]
    if missing:
        return f"missing {missing}"
    folders = [p for p in out_dir.glob("case*") if p.is_dir() and any(p.iterdir())]
    return None if len(folders) == n_cases else f"{len(folders)} case folders, expected {n_cases}"


def _check_png(path: Path) -> str | None:
    """None when ``path`` is a PNG with more than one colour (a window was drawn), else what is wrong."""
    if not path.is_file():
        return f"no screenshot at {path}"
    import cv2

    img = cv2.imread(str(path))
    if img is None:
        return f"{path}: not a readable image"
    if int(img.max()) == int(img.min()):
        return f"{path}: blank image ({img.shape})"
    return None


def _time_to_shown(step: Step) -> str | None:
    """Process start to the app's first event-loop turn with the window shown (its ``window shown at epoch T``)."""
    match = re.search(r"window shown at epoch ([0-9.]+)", step.output)
    if match is None:
        return None
    return f"{float(match.group(1)) - step.started_epoch:.2f} s (process start to window shown, event loop running)"


def write_report(run: SmokeRun, path: Path, dist: Path, screenshot: Path) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Last smoke run of the packaged app",
        "",
        f"`python packaging/smoke_test.py` on {now}, {platform.platform()}, {os.cpu_count()} CPUs; "
        f"bundle `{dist}`; result: **{'PASS' if run.ok else 'FAIL'}**.",
        "",
        "| fact | value |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in run.facts.items()],
        "",
        "| step | seconds | result |",
        "|---|---|---|",
        *[f"| {s.name} | {s.seconds:.2f} | {'ok' if s.ok else 'FAIL: ' + s.note} |" for s in run.steps],
        "",
        f"Screenshot: `{screenshot}`.",
        "",
        "## Output tails",
        "",
    ]
    for step in run.steps:
        if step.output:
            command = " ".join("'<hide_libraries.py script>'" if "\n" in arg else arg for arg in step.command)
            lines += [f"### {step.name}", "", "```", f"$ {command}", step.output.strip()[-1500:],
                      "```", ""]
    path.write_text(_anonymise_paths("\n".join(lines)))


def _anonymise_paths(text: str) -> str:
    """The report without this machine's absolute paths: repo -> ``.``, data -> ``$M3RET_DATA``, temp -> ``$TMP``."""
    from engine.config import shared_data_dir

    data = shared_data_dir()
    if data is not None:
        text = text.replace(str(data.resolve()), "$M3RET_DATA").replace(str(data), "$M3RET_DATA")
    text = re.sub(r"/[^\s'\"`]*/m3ret-smoke-[A-Za-z0-9_]+", "$TMP", text)
    return text.replace(str(REPO) + "/", "").replace(str(REPO), ".")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist" / "m3ret")
    parser.add_argument("--screenshot", type=Path, default=REPO / "test-output" / "packaged_app.png")
    parser.add_argument("--report", type=Path, default=None, help="write a Markdown report here")
    parser.add_argument("--no-gui", action="store_true", help="skip the GUI step")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model to use instead of the bundled one")
    args = parser.parse_args(argv)
    if not (args.dist / "m3ret").is_file():
        print(f"{args.dist}: no built bundle (run `make package` first)", file=sys.stderr)
        return 2
    run = smoke(args.dist, args.screenshot, gui=not args.no_gui, model=args.model)
    if args.report:
        write_report(run, args.report, args.dist, args.screenshot)
    for key, value in run.facts.items():
        print(f"  {key}: {value}")
    print("SMOKE TEST", "PASSED" if run.ok else "FAILED")
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
