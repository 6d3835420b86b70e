"""The pack on every platform: no module that exists on one platform only is imported when the pack is.

Two checks:

* `platform_only_imports` reads every ``.py`` file of the repository outside ``tests/`` (the package, the
  benchmarks, the tools) and reports a POSIX-only or Windows-only module imported by a statement that runs at
  import: a top-level statement, or one inside a top-level ``if``/``try``/``with``/``for``/class body. An import is
  allowed inside a function, under an ``if`` that tests ``sys.platform``/``os.name``/``platform.system()``, or in the
  body of a ``try`` that catches ``ImportError``/``ModuleNotFoundError``.
* the pack, loaded the way ComfyUI loads a custom node (its folder, whose name is no identifier, imported as a
  package by file location), reads ``NODE_CLASS_MAPPINGS`` and runs ``diffusion-vas run --help`` and the tiny demo in
  a Python where the POSIX-only modules cannot be imported, as on Windows.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, TINY

POSIX_ONLY = frozenset({
    "resource", "fcntl", "termios", "tty", "pty", "pwd", "grp", "spwd", "crypt", "nis", "syslog", "posix", "curses",
    "_curses", "readline", "ossaudiodev", "_posixsubprocess", "_posixshmem",
})
WINDOWS_ONLY = frozenset({"msvcrt", "winreg", "_winreg", "winsound", "_winapi", "_overlapped", "nt"})
PLATFORM_ONLY = POSIX_ONLY | WINDOWS_ONLY
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _is_platform_test(test: ast.expr) -> bool:
    """Whether an ``if`` test reads the platform: ``sys.platform``, ``os.name`` or ``platform.system()``."""
    for node in ast.walk(test):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (node.value.id, node.attr) in {
                ("sys", "platform"), ("os", "name"), ("platform", "system")}:
            return True
    return False


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(kind, ast.Name) and kind.id in IMPORT_ERRORS for kind in kinds)


def _imported(statement: ast.stmt) -> list[str]:
    """The absolute modules an import statement names (``import a.b`` -> ``a.b``; relative imports: none)."""
    if isinstance(statement, ast.Import):
        return [alias.name for alias in statement.names]
    if isinstance(statement, ast.ImportFrom) and not statement.level and statement.module:
        return [statement.module]
    return []


def platform_only_imports(source: str) -> list[tuple[int, str]]:
    """``[(line, module), ...]``: the platform-only modules ``source`` imports when it is imported (see the module
    docstring for what is allowed)."""
    found = []

    def visit(statements: list[ast.stmt]) -> None:
        for statement in statements:
            for module in _imported(statement):
                if module.split(".")[0] in PLATFORM_ONLY:
                    found.append((statement.lineno, module))
            if isinstance(statement, ast.If):
                if not _is_platform_test(statement.test):
                    visit(statement.body)
                    visit(statement.orelse)
            elif isinstance(statement, ast.Try):
                if not any(_catches_import_error(h) for h in statement.handlers):
                    visit(statement.body)
                for handler in statement.handlers:
                    visit(handler.body)
                visit(statement.orelse)
                visit(statement.finalbody)
            elif isinstance(statement, (ast.With, ast.For, ast.While, ast.ClassDef)):
                visit(statement.body)
                visit(getattr(statement, "orelse", []))
            # a function's body runs when it is called, not when the module is imported

    visit(ast.parse(source).body)
    return found


def repository_sources() -> list[Path]:
    """Every ``.py`` file of the repository outside ``tests/`` (and outside virtual environments or caches)."""
    return sorted(p for p in REPO.rglob("*.py")
                  if not any(part.startswith(".") or part in {"tests", "__pycache__", "build"}
                             for part in p.relative_to(REPO).parts))


def test_no_platform_only_module_is_imported_at_import_time():
    sources = repository_sources()
    assert REPO / "models" / "shot" / "run.py" in sources and REPO / "nodes" / "loader.py" in sources
    problems = [f"{path.relative_to(REPO)}:{line}: imports {module} at import time (move it into the function that "
                f"needs it, or guard it with try/except ImportError or a sys.platform check)"
                for path in sources for line, module in platform_only_imports(path.read_text(encoding="utf-8"))]
    assert problems == []


def test_the_check_finds_planted_platform_only_imports_and_allows_the_guarded_ones():
    planted = textwrap.dedent("""\
        import os
        import resource
        from fcntl import flock
        if os.environ.get("X"):
            import termios
        try:
            import pwd
        except OSError:
            pass
        class Lock:
            import msvcrt
        def peak():
            import resource
        if sys.platform == "win32":
            import msvcrt
        else:
            import fcntl
        if os.name == "nt":
            import winreg
        try:
            import grp
        except (ValueError, ImportError):
            grp = None
        try:
            import readline
        except ModuleNotFoundError:
            import curses
        import os.path, posixpath, ctypes
        """)
    assert platform_only_imports(planted) == [(2, "resource"), (3, "fcntl"), (5, "termios"), (7, "pwd"),
                                              (11, "msvcrt"), (27, "curses")]


# The pack's own imports of POSIX-only modules refused, as on Windows: ``import`` raises ModuleNotFoundError when
# the importing module is one of the pack's (even for a module Python loaded already), and notes each refusal.
# Only the pack's: Python's own modules and the dependencies (torch, filelock, tarfile, getpass, ...) choose these
# modules by the platform they run on, which is Linux here; on Windows they choose others, which this machine
# cannot stand in for. The pack's guarded imports (`base.memory.peak_rss`) take their fallback here.
BOOTSTRAP = """\
import builtins, importlib, importlib.util, json, os, sys
BLOCKED = set(json.loads(sys.argv[1]))
folder = sys.argv[2]  # as ComfyUI's nodes.load_custom_node: the folder's path, dots replaced, is the module name
name = folder.replace(".", "_x_")
refused = []

real_import = builtins.__import__

def refusing_import(module, globals=None, locals=None, fromlist=(), level=0):
    by = (globals or {}).get("__name__", "")  # the importing module
    if not level and module.split(".")[0] in BLOCKED and (by == name or by.startswith(name + ".")):
        refused.append([by[len(name) + 1:], module])
        raise ModuleNotFoundError(f"No module named {module!r} (refused: POSIX-only)", name=module)
    return real_import(module, globals, locals, fromlist, level)

builtins.__import__ = refusing_import
spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"))
pack = importlib.util.module_from_spec(spec)
sys.modules[name] = pack
spec.loader.exec_module(pack)
try:  # the check of the check: a module of the pack importing `resource` at its top
    importlib.import_module(name + ".planted")
except ModuleNotFoundError as err:
    planted = str(err)
else:
    planted = None
nodes = sorted(pack.NODE_CLASS_MAPPINGS)
commands = importlib.import_module(name + ".commands")
try:
    commands.main(["run", "--help"])
except SystemExit as stop:
    assert stop.code == 0, stop.code
code = commands.main(json.loads(sys.argv[3]))
loaded = sorted(m[len(name) + 1:] for m in sys.modules if m.startswith(name + "."))
print(json.dumps({"planted": planted, "nodes": nodes, "demo": code, "loaded": loaded, "refused": refused}))
"""


def comfyui_custom_node_copy(root: Path) -> Path:
    """The pack as a ComfyUI user has it: its files in ``custom_nodes/<a folder name that is no identifier>``."""
    folder = root / "custom_nodes" / "ComfyUI Diffusion-VAS.main"
    folder.mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "pyproject.toml"):
        shutil.copy2(REPO / name, folder / name)
    for name in ("models", "nodes", "commands", "example_clips", "workflows"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def test_the_pack_loads_as_comfyui_loads_it_and_runs_the_demo_without_posix_only_modules(tmp_path):
    folder = comfyui_custom_node_copy(tmp_path)
    (folder / "planted.py").write_text("import resource\n", encoding="utf-8")
    out = tmp_path / "demo out"
    demo = ["demo", "--out", str(out), "--stage1", str(TINY.stage1), "--stage2", str(TINY.stage2),
            "--depth", str(folder / "example_clips" / "synthetic_occlusion" / "depth"), "--count", "4",
            "--steps", "1", "--size", "64x128", "--quiet"]
    result = subprocess.run([sys.executable, "-c", BOOTSTRAP, json.dumps(sorted(POSIX_ONLY)), str(folder),
                             json.dumps(demo)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"DiffusionVASLoader", "AmodalMaskSVD", "AmodalContentSVD", "CompositeEdit"} <= set(report["nodes"])
    assert "'resource' (refused: POSIX-only)" in report["planted"]
    assert report["demo"] == 0
    # the shot (which imported `resource` at its top before) and the C allocator's tuning ran; the peak-memory probe
    # asked for `resource` and, refused, left the figure out
    assert {"models.shot.run", "models.host.allocator", "models.base.memory", "nodes.loader"} <= set(report["loaded"])
    assert {tuple(pair) for pair in report["refused"]} == {("planted", "resource"), ("models.base.memory", "resource")}
    assert len(list((out / "obj0" / "amodal_masks").glob("*.png"))) == 4


def test_peak_memory_is_in_bytes_on_every_platform(monkeypatch):
    """``ru_maxrss`` is KiB on Linux and bytes on macOS; Windows has no ``resource`` and reads psutil's peak working
    set, and without psutil the figure is left out (None), never a wrong number."""
    import types

    from diffusion_vas.models.base import memory

    usage = types.SimpleNamespace(ru_maxrss=1000)
    monkeypatch.setitem(sys.modules, "resource", types.SimpleNamespace(RUSAGE_SELF=0, getrusage=lambda who: usage))
    process = types.SimpleNamespace(memory_info=lambda: types.SimpleNamespace(peak_wset=123456, rss=4096))
    monkeypatch.setitem(sys.modules, "psutil", types.SimpleNamespace(Process=lambda: process))
    for platform, expected in (("linux", 1000 * 1024), ("freebsd14", 1000 * 1024), ("darwin", 1000),
                               ("win32", 123456)):
        monkeypatch.setattr(sys, "platform", platform)
        assert memory.peak_rss() == expected, platform
    monkeypatch.setitem(sys.modules, "psutil", None)  # not installed: `import psutil` raises ImportError
    assert memory.peak_rss() is None
    monkeypatch.setitem(sys.modules, "resource", None)
    monkeypatch.setattr(sys, "platform", "linux")
    assert memory.peak_rss() is None


def test_the_measured_peak_is_this_process_s_in_bytes():
    """On Linux against the kernel's own peak in ``/proc/self/status`` (``VmHWM``, in kB) and the resident memory
    now; the kernel updates its peak lazily, so the figures agree to within a few MiB, not exactly."""
    from diffusion_vas.models.base.memory import peak_rss, resident_memory

    status = Path("/proc/self/status")
    if not status.is_file():
        pytest.skip("no /proc on this platform")
    now, peak = resident_memory(), peak_rss()
    hwm = next(int(line.split()[1]) * 1024 for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
    assert abs(peak - hwm) < 16 * 2**20 and now < peak + 16 * 2**20
    assert 50 * 2**20 < peak < 64 * 2**30  # a Python with torch loaded: hundreds of MiB


def test_the_allocator_tuning_declines_without_glibc(monkeypatch):
    """Windows (no C library by that name: ``CDLL`` raises OSError) and macOS or musl builds without ``mallopt``:
    the tuning says it could not, and raises nothing."""
    import ctypes

    from diffusion_vas.models.host import allocator

    def missing(name):
        raise OSError(f"could not find {name}")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert allocator.tune_for_long_runs() is False
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a C library without mallopt
    assert allocator.tune_for_long_runs() is False
