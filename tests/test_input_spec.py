"""The nodes' inputs are generated from one declarative spec (`models.settings`); this file keeps what they were
before that, input by input (type, default, range, step, tooltip, the advanced flag, hidden inputs), and checks
that the generated ``INPUT_TYPES`` are exactly that. A deliberate change (a new optional input at the end, a
better tooltip) updates the record with ``python tests/test_input_spec.py --update`` and shows in the diff.

Model lists depend on the folders found, so they are read with an empty models folder: the published names only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RECORD = Path(__file__).resolve().parent / "data" / "node_input_types.json"


def current_input_types() -> dict:
    """Every node's ``INPUT_TYPES()`` as JSON values (tuples as lists)."""
    from diffusion_vas import NODE_CLASS_MAPPINGS

    return json.loads(json.dumps({name: cls.INPUT_TYPES() for name, cls in NODE_CLASS_MAPPINGS.items()}))


def test_generated_input_types_equal_the_record(monkeypatch, tmp_path):
    monkeypatch.setenv("DIFFUSION_VAS_MODELS_DIR", str(tmp_path))
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    current = current_input_types()
    assert list(current) == list(record), "nodes added, removed or reordered"
    for node, sections in record.items():
        assert list(current[node]) == list(sections), f"{node}: sections differ"
        for section, inputs in sections.items():
            assert list(current[node][section]) == list(inputs), f"{node}.{section}: input names or order differ"
            for name, declared in inputs.items():
                assert current[node][section][name] == declared, f"{node}.{section}.{name} differs"


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    import os
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as empty:
        os.environ["DIFFUSION_VAS_MODELS_DIR"] = empty
        RECORD.write_text(json.dumps(current_input_types(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RECORD}")
