"""The wheel holds the whole package: every module of it and its data (workflows, the example clip).

The wheel is built from a copy of the repository's tracked files (so the checkout gets no ``build/`` folder), with
the interpreter running the tests and its setuptools (no download). What belongs in the package: every ``.py`` file
except tests/, benchmarks/ and tools/ (nothing of the package imports them, checked below) and setup.py; its data:
workflows/*.json and *.jpg, every file under example_clips/. ``.ci/check-wheel`` installs the same wheel in a fresh
virtual environment and runs it.
"""

from __future__ import annotations

import ast
import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

OUTSIDE = ("tests", "benchmarks", "tools")  # folders of the repository that are no part of the package
NOT_MODULES = {"setup.py"}
DATA = ("workflows", "example_clips")


def tracked_files() -> list[str]:
    """The repository's files (``/``-separated): those git tracks or would (not ignored), or every file outside
    hidden folders and build outputs where this is no git checkout."""
    if (REPO / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, check=True).stdout
        return sorted(name for name in listed.decode("utf-8").split("\0") if name and (REPO / name).is_file())
    return sorted(p.relative_to(REPO).as_posix() for p in REPO.rglob("*") if p.is_file() and not any(
        part.startswith(".") or part in {"__pycache__", "build", "dist"} or part.endswith(".egg-info")
        for part in p.relative_to(REPO).parts))


def package_files(files: list[str]) -> tuple[set[str], set[str]]:
    """``(modules, data)``: the package's ``.py`` files and its data files among ``files``."""
    inside = [name for name in files if name.split("/")[0] not in OUTSIDE]
    modules = {name for name in inside if name.endswith(".py") and name not in NOT_MODULES}
    data = {name for name in inside if name.split("/")[0] in DATA}
    return modules, data


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "-q", "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("diffusion_vas-*.whl")
    return built


def test_the_wheel_holds_every_module_and_data_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    in_package = {name.removeprefix("diffusion_vas/") for name in names if name.startswith("diffusion_vas/")}
    modules, data = package_files(tracked_files())
    assert {"models/base/memory.py", "models/shot/run.py", "commands/run.py", "nodes/loader.py"} <= modules
    assert {name for name in in_package if name.endswith(".py")} == modules
    assert data <= in_package
    assert any(name.startswith("workflows/") and name.endswith(".jpg") for name in data)
    assert "example_clips/synthetic_occlusion/meta.json" in data
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert {name.split("/")[0] for name in names} == {"diffusion_vas", dist_info}  # nothing beside the package


def test_the_wheel_declares_the_command_and_the_links(wheel):
    with zipfile.ZipFile(wheel) as archive:
        info = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(info))
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "diffusion-vas = diffusion_vas.commands:main" in entry_points
    assert "Paper, https://arxiv.org/abs/2412.04623" in metadata.get_all("Project-URL")
    assert "Operating System :: OS Independent" in metadata.get_all("Classifier")


def test_nothing_of_the_package_imports_the_benchmarks_or_tools():
    modules, _ = package_files(tracked_files())
    offenders = []
    for name in sorted(modules):
        for node in ast.walk(ast.parse((REPO / name).read_text(encoding="utf-8"))):
            targets = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(t.split(".")[0] in OUTSIDE or t.startswith(tuple(f"diffusion_vas.{o}" for o in OUTSIDE))
                   for t in targets):
                offenders.append(name)
    assert offenders == []


def test_the_registry_metadata_is_complete():
    """[tool.comfy] as the ComfyUI registry reads it (comfy-cli's config parser): the publisher, the display name, the
    oldest ComfyUI the pack is tested on in the registry's version pattern, and the operating systems."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    comfy = project["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert comfy["requires-comfyui"] == ">=0.8.0"
    assert re.fullmatch(r"(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?(\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?)?",
                        comfy["requires-comfyui"])
    assert "Operating System :: OS Independent" in project["project"]["classifiers"]
