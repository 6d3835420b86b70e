"""What a command prints on a clean run: no transformers warning about torchvision (the engine needs only the
CLIP mean/std from preprocessor_config.json, never the CLIP image processor object), no repeated warnings."""

from __future__ import annotations

import subprocess
import sys

from conftest import TINY
from diffusion_vas.commands.run import EXAMPLE


def test_a_run_prints_no_torchvision_warning(tmp_path):
    command = [sys.executable, "-m", "diffusion_vas", "run", "--frames", str(EXAMPLE / "rgb"),
               "--masks", str(EXAMPLE / "modal"), "--count", "3", "--out", str(tmp_path / "out"),
               "--stage1", str(TINY.stage1), "--depth-model", str(TINY.depth), "--steps", "1", "--size", "48x96",
               "--masks-only"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "torchvision" not in output and "ImageProcessor" not in output
    assert output.count("--size 48x96 is not a multiple of 64") == 1  # warned once, like the nodes
    warnings = [line for line in output.splitlines() if "warn" in line.lower() or "not a multiple" in line]
    assert len(warnings) == len(set(warnings)), warnings
    assert (tmp_path / "out" / "obj0" / "amodal_masks.mp4").is_file()
