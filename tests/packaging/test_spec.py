"""The packaging rules (``pyinstaller.spec`` + ``packaging/bundle_rules.py``) checked without building.

- the spec, executed with stand-ins for PyInstaller's build classes, declares one folder with two executables
  and excludes torch & co. from both analyses;
- the exclusion and pruning rules never drop a module the product imports;
- the product runs with torch/trainer/onnx made unimportable (what the bundle relies on);
- a bundle already built in ``dist/m3ret`` holds no torch (skipped where none was built).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "pyinstaller.spec"
DIST = REPO / "dist" / "m3ret"


def _load(name: str) -> ModuleType:
    """Import a module of ``packaging/`` by path (the folder is not a package: it would shadow PyPI packaging)."""
    sys.path.insert(0, str(REPO / "packaging"))
    try:
        spec = importlib.util.spec_from_file_location(f"m3ret_packaging_{name}", REPO / "packaging" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"m3ret_packaging_{name}"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "packaging"))


rules = _load("bundle_rules")


class _Recorder:
    """Stand-in for PyInstaller's Analysis/PYZ/EXE/COLLECT: records its arguments."""

    def __init__(self, kind: str, *args, **kwargs) -> None:
        self.kind, self.args, self.kwargs = kind, args, kwargs
        self.binaries: list = []
        self.datas: list = []
        self.pure: list = []
        self.scripts = [("script", str(args[0][0]) if kind == "Analysis" else "", "PYSOURCE")]


@pytest.fixture(scope="module")
def spec_calls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[_Recorder]]:
    """Execute pyinstaller.spec with recording stand-ins; returns the objects it made, by kind."""
    pytest.importorskip("PyInstaller", reason="PyInstaller not installed (pip install -e .[package])")
    made: dict[str, list[_Recorder]] = {"Analysis": [], "PYZ": [], "EXE": [], "COLLECT": []}

    def factory(kind: str):
        def make(*args, **kwargs):
            obj = _Recorder(kind, *args, **kwargs)
            made[kind].append(obj)
            return obj

        return make

    namespace = {name: factory(name) for name in made} | {
        "SPECPATH": str(REPO),
        "workpath": str(tmp_path_factory.mktemp("pyinstaller_work")),
        "__file__": str(SPEC),
    }
    old_path = list(sys.path)
    try:
        exec(compile(SPEC.read_text(), str(SPEC), "exec"), namespace)
    finally:
        sys.path[:] = old_path
    return made


def test_spec_builds_one_folder_with_two_executables(spec_calls) -> None:
    exes = {exe.kwargs["name"]: exe for exe in spec_calls["EXE"]}
    assert set(exes) == {"m3ret", "m3ret-app"}
    assert exes["m3ret"].kwargs["console"] is True
    assert exes["m3ret-app"].kwargs["console"] is False
    assert all(exe.kwargs["exclude_binaries"] for exe in exes.values())  # binaries live in the shared folder
    (collect,) = spec_calls["COLLECT"]
    assert collect.kwargs["name"] == "m3ret"
    assert {a.kwargs["name"] for a in collect.args if isinstance(a, _Recorder) and a.kind == "EXE"} == set(exes)


def test_spec_entry_points_are_the_installed_scripts(spec_calls) -> None:
    scripts = {Path(a.args[0][0]).name for a in spec_calls["Analysis"]}
    assert scripts == {"m3ret_cli.py", "m3ret_app.py"}
    cli_entry = (REPO / "packaging" / "m3ret_cli.py").read_text()
    app_entry = (REPO / "packaging" / "m3ret_app.py").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "from engine.cli import main" in cli_entry and 'm3ret = "engine.cli:main"' in pyproject
    assert "from app.main import main" in app_entry and 'm3ret-app = "app.main:main"' in pyproject


def test_spec_excludes_torch_trainer_onnx_everywhere(spec_calls) -> None:
    must_never = {"torch", "trainer", "tensorboard", "matplotlib", "onnx", "IPython", "tkinter", "ray",
                  "engine.cluster"}
    assert must_never <= set(rules.NEVER_BUNDLE)
    for analysis in spec_calls["Analysis"]:
        assert must_never <= set(analysis.kwargs["excludes"]), analysis.args[0]
    (cli,) = [a for a in spec_calls["Analysis"] if a.args[0][0].endswith("m3ret_cli.py")]
    assert {"PySide6", "vtkmodules", "app"} <= set(cli.kwargs["excludes"])  # the command line has no GUI


def test_spec_bundles_the_models_folder(spec_calls) -> None:
    models = sorted(p.name for p in (REPO / "resources" / "models").glob("*") if p.is_file())
    for analysis in spec_calls["Analysis"]:
        bundled = sorted(Path(src).name for src, dest in analysis.kwargs["datas"] if dest == "resources/models")
        assert bundled == models


# Optional extras the product imports inside a function only when asked for (``m3ret index --ray``), with a clear
# one-line error where they are absent (the packaged app); their own files are left out of the bundle.
LAZY_OPTIONAL = ("engine.cluster",)


def _imports(folder: Path, top_level_only: bool = False) -> set[str]:
    """Every dotted module name imported under ``folder`` (absolute imports; files of LAZY_OPTIONAL packages are
    skipped); ``top_level_only``: only imports at module level."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        module = ".".join(path.relative_to(folder.parent).with_suffix("").parts)
        if any(module == lazy or module.startswith(lazy + ".") for lazy in LAZY_OPTIONAL):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in (tree.body if top_level_only else ast.walk(tree)):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", ["engine", "app"])
def test_excluded_modules_are_not_imported_by_the_product(package: str) -> None:
    imported = _imports(REPO / package)
    excluded = set(rules.NEVER_BUNDLE) | set(rules.PRUNE_MODULES)
    if package == "engine":
        excluded |= set(rules.GUI_ONLY_MODULES) - {"engine"}
    clashes = sorted(name for name in imported if any(name == ex or name.startswith(ex + ".") for ex in excluded)
                     and not any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY_OPTIONAL))
    assert not clashes, f"{package} imports modules the bundle leaves out: {clashes}"
    eager = sorted(name for name in _imports(REPO / package, top_level_only=True)
                   if any(name == lazy or name.startswith(lazy + ".") for lazy in LAZY_OPTIONAL))
    assert not eager, f"{package} imports optional extras at module level: {eager}"


def test_forbidden_files_finds_torch_in_modules_and_files() -> None:
    bad = [
        "torch.nn.functional",
        "torch/lib/libtorch_cpu.so",
        "_internal/torch/_C.cpython-311-x86_64-linux-gnu.so",
        "libtorch_cpu.so",
        "lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so",
        "onnx/onnx_cpp2py_export.cpython-311-x86_64-linux-gnu.so",
        "trainer.export",
        "_libjpeg.cpython-311-x86_64-linux-gnu.so",  # pylibjpeg-libjpeg is GPL: dropped from the product
        "libjpeg.utils",
    ]
    good = [
        "onnxruntime/capi/libonnxruntime.so.1",
        "onnxruntime.capi._pybind_state",
        "numpy._core.multiarray",
        "PySide6/Qt/lib/libQt6Core.so.6",
        "vtkmodules/libvtkRenderingOpenGL2.so",
        "engine.encoder",
        "resources/models/m3ret-default.onnx",
        "libjpeg.so.62",  # the system JPEG library Qt's plug-in links
        "PySide6/Qt/plugins/imageformats/libqjpeg.so",
    ]
    assert rules.forbidden_files(bad) == bad
    assert rules.forbidden_files(good) == []


def test_prune_toc_drops_unused_qt_and_links_to_it() -> None:
    toc = [
        ("PySide6/Qt/lib/libQt6Quick.so.6", "/x/libQt6Quick.so.6", "BINARY"),
        ("libQt6Network.so.6", "PySide6/Qt/lib/libQt6Network.so.6", "SYMLINK"),
        ("PySide6/Qt/translations/qtbase_de.qm", "/x/qtbase_de.qm", "DATA"),
        ("PySide6/Qt/plugins/platforms/libqvnc.so", "/x/libqvnc.so", "BINARY"),
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/x/libqxcb.so", "BINARY"),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", "/x/libqoffscreen.so", "BINARY"),
        ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK"),
        ("PySide6/Qt/lib/libQt6OpenGL.so.6", "/x/libQt6OpenGL.so.6", "BINARY"),
        ("vtkmodules/libvtkRenderingOpenGL2.so", "/x/libvtkRenderingOpenGL2.so", "BINARY"),
    ]
    assert [dest for dest, _, _ in rules.prune_toc(toc)] == [
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "libQt6Core.so.6",
        "PySide6/Qt/lib/libQt6OpenGL.so.6",
        "vtkmodules/libvtkRenderingOpenGL2.so",
    ]


_BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not in the packaged app")
sys.meta_path.insert(0, Block())
"""


def _run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    blocked = sorted(set(rules.NEVER_BUNDLE))
    script = _BLOCKER.format(blocked=blocked) + code
    env = os.environ | {"QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)


def test_command_line_runs_without_torch(tmp_path: Path, shared_data: Path) -> None:
    """What the frozen CLI relies on: the engine works with torch, trainer and onnx unimportable."""
    xray = next((shared_data / "xray").rglob("*.png"))
    proc = _run_blocked(f"from engine.cli import main; raise SystemExit(main(['inspect', {str(xray)!r}]))", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert xray.name in proc.stdout + proc.stderr


def test_app_imports_without_torch(tmp_path: Path) -> None:
    if not (REPO / "app" / "main.py").is_file():
        pytest.skip("app/main.py not written yet")
    proc = _run_blocked("import app.main; assert callable(app.main.main)", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_built_bundle_has_no_torch() -> None:
    """A bundle built with ``make package`` holds both executables and nothing from the trainer side."""
    if not (DIST / "m3ret").is_file():
        pytest.skip("no bundle in dist/m3ret (build it with `make package`)")
    pytest.importorskip("PyInstaller", reason="reading the executables' archives needs PyInstaller")
    report = _load("check_bundle").inspect_bundle(DIST)
    assert set(report.executables) == {"m3ret", "m3ret-app"}
    assert report.forbidden == []
    assert all(n > 100 for n in report.executables.values())  # the frozen archives were read
