"""The engine's layers: every module of ``models/`` imports only its own layer or the ones below, and neither
the subpackages nor the modules import one another in a cycle (a lazy import inside a function counts too).

The layers, lowest first (the README's layout section lists the same):

0. ``base``: generic helpers (chunks, finite checks, the mask rule, masks kept packed, morphology, resizes of
   masks, sequences, threads, the memory probes: free, resident, peak); imports nothing of the pack.
1. ``host``: the device, precision and progress policy a script, the command line or ComfyUI answers.
2. ``engine``: the UNet, loading, the sampler and its windows.
3. ``depth``, ``stages``: pseudo-depth; conditions and the two stages.
4. ``io``, ``datasets``: media, mask files, downloads and the model catalog; datasets.
5. ``editing``: the composite edits.
6. ``evaluation``: metrics, benchmarks, the synthetic generator.
7. ``training``.
8. ``shot``: a real shot from files to files (the command line's run).
9. the public face: ``models/__init__.py`` and the top-level modules beside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "models"
LAYERS = [("base",), ("host",), ("engine",), ("depth", "stages"), ("io", "datasets"), ("editing",),
          ("evaluation",), ("training",), ("shot",)]
FACE = len(LAYERS)  # models/__init__.py and models/<module>.py


def package_of(module: str) -> str:
    """``models.stages.amodal_stage`` -> ``stages``; ``models`` or ``models.realsize`` -> ``""`` (the face)."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (MODELS / parts[1]).is_dir()):
        return parts[1]
    return ""


def layer_of(package: str) -> int:
    if not package:
        return FACE
    for rank, names in enumerate(LAYERS):
        if package in names:
            return rank
    raise AssertionError(f"models/{package} is in no layer: add it to LAYERS here and to the README's layout.")


def module_imports(root: Path = MODELS) -> dict[str, set[str]]:
    """``{module: {imported module or name, ...}}`` for every module under ``root``, from its relative imports
    (the pack imports itself only relatively), lazy ones inside functions included."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = ["models", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        package = parts if path.name == "__init__.py" else parts[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - (node.level - 1)]
                if node.module:
                    targets.add(".".join([*base, node.module]))
                else:  # from .. import x: x may be a module or a name of the package
                    targets.update(".".join([*base, alias.name]) for alias in node.names)
        found[module] = targets
    return found


def violations(imports: dict[str, set[str]]) -> list[str]:
    """Upward imports, and cycles between subpackages, as readable lines (empty when the layers hold)."""
    problems = []
    edges: dict[str, set[str]] = {}
    for module, targets in imports.items():
        source = package_of(module)
        for target in targets:
            if not target.startswith("models"):
                continue
            into = package_of(target)
            if into == source:
                continue
            if layer_of(into) > layer_of(source):
                problems.append(f"{module} (layer {layer_of(source)}) imports {target} (layer {layer_of(into)}): "
                                "an upward import")
            edges.setdefault(source, set()).add(into)
    problems += [f"cycle between subpackages: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    problems += [f"cycle between modules: {' -> '.join(cycle)}" for cycle in cycles(module_edges(imports))]
    return problems


def module_edges(imports: dict[str, set[str]]) -> dict[str, set[str]]:
    """Module -> the modules of the pack it imports (``from .x import name`` counts as importing ``x``); a
    package's ``__init__`` re-exporting its own modules is not a cycle of theirs."""
    edges = {}
    for module, targets in imports.items():
        found = set()
        for target in targets:
            if target not in imports:
                target = target.rsplit(".", 1)[0]  # a name of a module
            if target in imports and target != module and not target.startswith(module + "."):
                found.add(target)
        edges[module] = found
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of more than one package (depth-first search)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def test_every_module_imports_only_its_layer_or_below_and_no_subpackage_cycle():
    assert violations(module_imports()) == []


def test_the_check_finds_a_planted_upward_import_and_a_planted_cycle():
    """The same check on today's imports plus one planted import each: an engine module importing a stage (upward)
    and two same-layer subpackages importing each other (a cycle)."""
    imports = module_imports()
    upward = {**imports, "models.engine.pipeline": imports["models.engine.pipeline"] | {"models.stages.amodal_stage"}}
    assert any("models.engine.pipeline (layer 2) imports models.stages.amodal_stage (layer 3)" in line
               for line in violations(upward))
    cycle = {**imports, "models.depth.estimator": imports["models.depth.estimator"] | {"models.stages.conditions"},
             "models.stages.conditions": imports["models.stages.conditions"] | {"models.depth.estimator"}}
    assert any(line.startswith("cycle between subpackages") and "depth" in line and "stages" in line
               for line in violations(cycle))
    lazy = {**imports, "models.io.media": imports["models.io.media"] | {"models.io.frame_source"}}
    assert any(line.startswith("cycle between modules") and "models.io.media" in line for line in violations(lazy))


def test_every_subpackage_has_a_layer():
    for path in MODELS.iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            layer_of(path.name)


PACK = MODELS.parent
FRONT_ENDS = ("nodes", "commands")  # with the pack's own root modules (__init__.py, __main__.py)


def front_end_imports(root: Path = PACK) -> dict[str, set[str]]:
    """``{file: {engine module or name it imports}}`` for the nodes, the commands and the pack's root modules."""
    found = {}
    paths = [*sorted(root.glob("*.py")), *(p for name in FRONT_ENDS for p in sorted((root / name).glob("*.py")))]
    for path in paths:
        package = list(path.relative_to(root).parent.parts)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
                if module == "models":
                    targets.update(f"models.{alias.name}" if (MODELS / f"{alias.name}.py").is_file() else "models"
                                   for alias in node.names)
                elif module.startswith("models."):
                    targets.add(module)
        found[str(path.relative_to(root))] = targets
    return found


def face_violations(imports: dict[str, set[str]]) -> list[str]:
    """Front-end imports of anything but the public face: ``models`` itself and its top-level modules
    (``models.settings``, ``models.realsize``)."""
    return [f"{path} imports {target}: import it from the public face (models/__init__.py) instead"
            for path, targets in sorted(imports.items()) for target in sorted(targets)
            if target != "models" and not (target.count(".") == 1 and (MODELS / f"{target[7:]}.py").is_file())]


def test_nodes_and_commands_import_only_the_public_face():
    imports = front_end_imports()
    assert any(targets for path, targets in imports.items() if path.startswith("nodes/"))
    assert face_violations(imports) == []


def test_the_face_check_finds_a_planted_deep_import():
    imports = front_end_imports()
    planted = {**imports, "nodes/stages.py": imports["nodes/stages.py"] | {"models.stages.conditions"}}
    assert face_violations(planted) == ["nodes/stages.py imports models.stages.conditions: import it from the public "
                                        "face (models/__init__.py) instead"]


def test_every_name_of_the_face_resolves():
    import diffusion_vas.models as face

    for name in face.__all__:
        assert getattr(face, name) is not None, name
