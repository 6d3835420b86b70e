"""The README's node reference is what the nodes say of themselves (tools/node_reference.py prints it)."""

from __future__ import annotations

import contextlib
import importlib.util
import io

from conftest import REPO


def test_the_readmes_node_reference_is_the_nodes_own():
    spec = importlib.util.spec_from_file_location("node_reference", REPO / "tools" / "node_reference.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        tool.main()
    reference = printed.getvalue().strip()
    assert reference in (REPO / "README.md").read_text(encoding="utf-8"), (
        "README.md's node reference differs from the nodes: python tools/node_reference.py, and put its output in "
        "README.md's Nodes section")
