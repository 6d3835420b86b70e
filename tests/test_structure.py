"""The engine stands alone: importing it loads no node module and changes nothing on disk or in ComfyUI."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_engine_imports_without_nodes(tmp_path):
    code = (
        "import json, sys; import diffusion_vas.models, diffusion_vas.models.host, diffusion_vas.models.evaluation; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('diffusion_vas.nodes') or m == 'cli')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert list(tmp_path.iterdir()) == [], "importing the engine must not write files"


def test_mappings_are_built_on_first_access():
    import diffusion_vas

    assert "NODE_CLASS_MAPPINGS" in diffusion_vas.__all__
    mappings = diffusion_vas.NODE_CLASS_MAPPINGS
    assert {"DiffusionVASLoader", "LoadModalMasks", "PseudoDepth", "AmodalMaskSVD", "AmodalContentSVD",
            "CompositeEdit", "EvaluateAmodal"} <= set(mappings)
    assert set(diffusion_vas.NODE_DISPLAY_NAME_MAPPINGS) == set(mappings)


def test_engine_and_cli_import_nothing_from_nodes():
    offenders = []
    for path in [*(REPO / "models").rglob("*.py"), *(REPO / "commands").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        if "nodes" in {part for line in text.splitlines() if line.lstrip().startswith(("from ", "import "))
                       for part in line.replace(".", " ").split()}:
            offenders.append(str(path.relative_to(REPO)))
        if "import comfy" in text or "import folder_paths" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_stage_seeds_and_defaults_have_one_source():
    from diffusion_vas.models import STAGE_SEEDS, SamplingOptions
    from diffusion_vas.nodes import stages

    for node, stage in ((stages.AmodalMaskSVD, "amodal"), (stages.AmodalContentSVD, "content")):
        spec = node.INPUT_TYPES()
        defaults = SamplingOptions.for_stage(stage)
        assert spec["required"]["seed"][1]["default"] == STAGE_SEEDS[stage] == defaults.seed
        assert spec["required"]["steps"][1]["default"] == defaults.num_inference_steps
        assert spec["optional"]["motion_bucket_id"][1]["default"] == defaults.motion_bucket_id
    from diffusion_vas.commands import build_parser

    args = build_parser().parse_args(["run", "--frames", "f", "--masks", "m", "--out", "o"])
    assert (args.seed, args.content_seed) == (STAGE_SEEDS["amodal"], STAGE_SEEDS["content"])
