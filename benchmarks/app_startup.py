"""Desktop app responsiveness: cold start to a usable window, and time to first pixel of a 500-slice CT.

1. Cold start: a fresh Python process runs ``app.main.build_window`` (QApplication, settings, main window,
   library opened in the background) with an isolated ``M3RET_HOME``; "usable" = the window is shown and the
   event loop has processed its first events (a zero-delay timer set after ``show()`` fired). Measured from
   just before the process is launched, so interpreter start and every import count. The time until the library
   table is filled is reported too. Goal: < 2 s.
2. Time to first pixel: a synthetic 512 x 512 x 500 CT (body, lungs, spine, in HU) written as a DICOM series
   (500 files) and as an uncompressed NIfTI, dropped on a running main window (``open_query_path``): the clock
   runs until the first pixels are rendered (for a big DICOM series the app shows its middle slice first, while
   a worker reads the 500 files) and until the whole volume is in the 3D viewer. Goal: < 1 s to the first pixel.
   Opening a case from the library skips the folder scan (the catalog knows the files), so it is faster.
   The files are read from the OS page cache (they were just written): a cold disk adds its read time.

Run: ``python -m benchmarks.app_startup [--quick] [--repeats N]`` (``--quick``: 256 x 256 x 500, 2 repeats).
Headless machines: ``QT_QPA_PLATFORM=offscreen VTK_DEFAULT_OPENGL_WINDOW=vtkOSOpenGLRenderWindow`` (set here
when there is no display). Results: printed as a markdown table and written to
``benchmarks/results/app_startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "app_startup.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
N_SLICES = 500
GOAL_START_S = 2.0
GOAL_FIRST_PIXEL_S = 1.0

_CHILD = """
import json, sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from app.main import build_window, parse_args
app = QApplication(sys.argv[:1])
window = build_window(parse_args(["--library", sys.argv[1]]), interactive=False)
marks = {}
def usable():
    marks["usable"] = time.time()
def listed(_library):
    marks["library"] = time.time()
    QTimer.singleShot(0, app.quit)
window.libraryOpened.connect(listed)
window.errorShown.connect(lambda message: (marks.setdefault("error", message), app.quit()))
QTimer.singleShot(0, usable)
QTimer.singleShot(60_000, app.quit)
app.exec()
print(json.dumps(marks))
"""


def headless_environment() -> dict[str, str]:
    """The environment for Qt/VTK: offscreen rendering where there is no display."""
    env = dict(os.environ)
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")
    return env


def cold_start(library: Path, home: Path) -> dict[str, float | str]:
    """Seconds from process launch to a usable window, and to the library being listed."""
    env = headless_environment()
    env["M3RET_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", _CHILD, str(library)], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"app start failed (exit {out.returncode}): {out.stderr.strip()[-500:]}")
    marks = json.loads(lines[-1])
    if "error" in marks:
        raise RuntimeError(f"app start reported: {marks['error']}")
    return {"usable_s": marks["usable"] - launched, "library_listed_s": marks["library"] - launched}


# ---- a synthetic CT --------------------------------------------------------------------------------------------


def phantom_slice(z: int, n_slices: int, size: int) -> np.ndarray:
    """One axial slice in HU (``Y X``, int16): air, an elliptic body, two lungs that change along z, a spine."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size  # 0..1
    hu = np.full((size, size), -1000, np.int16)
    hu[((xx - 0.5) / 0.40) ** 2 + ((yy - 0.5) / 0.30) ** 2 <= 1] = 40
    lung = 0.6 + 0.4 * np.sin(np.pi * z / n_slices)  # lungs grow then shrink along the body
    for cx in (0.33, 0.67):
        hu[((xx - cx) / (0.12 * lung)) ** 2 + ((yy - 0.45) / (0.18 * lung)) ** 2 <= 1] = -850
    hu[((xx - 0.5) / 0.05) ** 2 + ((yy - 0.72) / 0.05) ** 2 <= 1] = 700
    return hu


def write_dicom_series(folder: Path, size: int, n_slices: int = N_SLICES) -> Path:
    """A CT series: one file per slice, HU stored with RescaleIntercept -1024, 0.7 mm pixels, 1 mm slices."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    for z in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.PatientID, ds.PatientName, ds.StudyDate = "CT", "BENCH", "Bench^Phantom", "20260101"
        ds.SeriesDescription, ds.InstanceNumber = "benchmark phantom", z + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-180.0, -180.0, float(z)]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (phantom_slice(z, n_slices, size).astype(np.int32) + 1024).astype(np.uint16).tobytes()
        ds.save_as(folder / f"IM{z:04d}.dcm", enforce_file_format=True)
    return folder


def write_nifti(path: Path, size: int, n_slices: int = N_SLICES) -> Path:
    """The same phantom as one uncompressed NIfTI (RAS affine, 0.7 x 0.7 x 1 mm)."""
    import nibabel as nib

    volume = np.stack([phantom_slice(z, n_slices, size) for z in range(n_slices)])  # Z Y X
    affine = np.diag([0.7, 0.7, 1.0, 1.0])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), affine), str(path))  # X Y Z
    return path


# ---- time to first pixel ---------------------------------------------------------------------------------------


def _render(window) -> None:  # noqa: ANN001
    """Render the viewer's canvases now (they would render on the next event loop turn anyway)."""
    from app.viewers.canvas import VtkCanvas

    for canvas in window.viewer.findChildren(VtkCanvas):
        if canvas.isVisible():
            canvas.render_now()


def first_pixel(window, app, path: Path) -> dict[str, float]:  # noqa: ANN001
    """Open ``path`` as the app does on a drop (``MainWindow.open_query_path``: read in a worker, a one-slice
    preview first for a big DICOM series, then the volume in the 3D viewer). Seconds to the first rendered
    pixels and to the whole volume on screen."""
    marks: dict[str, float] = {}

    def seen(name: str) -> None:
        _render(window)
        marks.setdefault(name, time.perf_counter())

    on_preview = window.previewShown.connect(lambda _case: seen("first"))
    on_case = window.caseShown.connect(lambda _case: (seen("volume"), marks.setdefault("first", marks["volume"])))
    started = time.perf_counter()
    window.open_query_path(path, search=False)
    deadline = started + 300
    while "volume" not in marks and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.002)
    window.previewShown.disconnect(on_preview)
    window.caseShown.disconnect(on_case)
    if "volume" not in marks:
        raise RuntimeError(f"{path}: not shown ({window.last_error})")
    assert window.viewer.case.pixels.shape[0] == N_SLICES, window.viewer.case.pixels.shape
    return {"first_pixel_s": marks["first"] - started, "volume_s": marks["volume"] - started}


def first_pixel_catalogued(window, app, series: Path) -> float:  # noqa: ANN001
    """A DICOM series opened from the library: the catalog lists its files, so no folder scan; the worker
    reads the middle file (``app.workers.read_preview``, as ``MainWindow.open_record`` does) and the window
    shows it. Seconds to the rendered preview."""
    from app.workers import create_worker, read_preview

    files = sorted(series.glob("*.dcm"))
    shown: list[float] = []

    def show(preview) -> None:  # noqa: ANN001
        window.show_case(preview, preview=True)
        _render(window)
        shown.append(time.perf_counter())

    started = time.perf_counter()
    create_worker(read_preview, "dicom", files, _connect={"returned": show})
    while not shown and time.perf_counter() < started + 60:
        app.processEvents()
        time.sleep(0.002)
    return shown[0] - started


def time_to_first_pixel(paths: dict[str, Path], repeats: int, home: Path) -> dict[str, list[dict[str, float]]]:
    """Repeated timings per format in a running main window; the first run per process also creates the 3D
    viewer's OpenGL windows (first case opened after start)."""
    os.environ.update({k: v for k, v in headless_environment().items() if k.startswith(("QT_", "VTK_"))})
    os.environ["M3RET_HOME"] = str(home)
    from PySide6.QtWidgets import QApplication

    from app.main import build_window, parse_args

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = build_window(parse_args([]), interactive=False)  # as started by a user: default library opened
    window.resize(1280, 820)
    deadline = time.perf_counter() + 120
    while window.library is None and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.005)
    for _ in range(50):  # the start-up warm-up worker finishes
        app.processEvents()
        time.sleep(0.01)
    timings: dict[str, list[dict[str, float]]] = {}
    for name, path in paths.items():
        timings[name] = []
        for _ in range(repeats):
            timings[name].append(first_pixel(window, app, path))
            for _ in range(20):  # the deferred volume rendering runs here, outside the clock
                app.processEvents()
    series = paths["DICOM series"]
    timings["DICOM series from the library"] = [
        {"first_pixel_s": first_pixel_catalogued(window, app, series)} for _ in range(repeats)
    ]
    window.close()
    return timings


# ---- report ----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_startup", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 x 256 slices, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default 3, quick 2)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    size = 256 if args.quick else 512
    with tempfile.TemporaryDirectory(prefix="m3ret_app_bench_") as tmp:
        root = Path(tmp)
        starts = [cold_start(root / "library", root / f"home{i}") for i in range(repeats)]
        made = time.perf_counter()
        paths = {"DICOM series": write_dicom_series(root / "ct_dicom", size),
                 "NIfTI (.nii)": write_nifti(root / "ct.nii", size)}
        print(f"wrote the {size}x{size}x{N_SLICES} phantom in {time.perf_counter() - made:.1f} s", flush=True)
        pixels = time_to_first_pixel(paths, repeats, root / "home_viewer")

    rows = [("cold start to usable window", [s["usable_s"] for s in starts], GOAL_START_S),
            ("cold start to library listed", [s["library_listed_s"] for s in starts], None)]
    for name, runs in pixels.items():
        rows.append((f"first pixel, {size}x{size}x{N_SLICES} CT, {name}", [r["first_pixel_s"] for r in runs],
                     GOAL_FIRST_PIXEL_S))
        if "volume_s" in runs[0]:
            rows.append((f"whole volume in the 3D viewer, {name}", [r["volume_s"] for r in runs], None))
    print("\n| measurement | first s | median s | min s | goal |\n|---|---:|---:|---:|---|")
    for name, values, goal in rows:
        verdict = "" if goal is None else (f"< {goal:g} s " + ("met" if statistics.median(values) < goal else "missed"))
        print(f"| {name} | {values[0]:.2f} | {statistics.median(values):.2f} | {min(values):.2f} | {verdict} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "slice_size": size, "slices": N_SLICES, "repeats": repeats,
        "cold_start": starts, "first_pixel": pixels,
    }, indent=2))
    print(f"\nraw numbers: {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
