"""``diffusion-vas memory`` prints its table and nothing else: no library warning per row."""

from __future__ import annotations

import subprocess
import sys


def test_the_memory_estimate_prints_no_library_warning():
    """In a process of its own, as the command runs (the libraries' loggers write to its standard error)."""
    script = ("from diffusion_vas.models import estimate_memory\n"
              "print(estimate_memory((64, 128), frames=2).total > 0)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr[-2000:]
    assert "float32" not in result.stderr, result.stderr[-2000:]
