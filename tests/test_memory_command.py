"""``diffusion-vas memory`` prints its table and nothing else: no library warning per row."""

from __future__ import annotations

from diffusion_vas.models import estimate_memory


def test_the_memory_estimate_prints_no_library_warning(capfd):
    estimate = estimate_memory((64, 128), frames=2)
    captured = capfd.readouterr()
    assert estimate.total > 0
    assert "float32" not in captured.err + captured.out, captured.err[-2000:]
