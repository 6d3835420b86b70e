"""Video in and out (models.io.media): the source frame rate carries over to the written videos."""

from __future__ import annotations

import pytest
import torch

from diffusion_vas.models.io.frame_source import read_frames
from diffusion_vas.models.io.media import frame_rate, output_frame_rate, write_animation, write_png_frames


def test_output_videos_keep_the_source_rate_divided_by_every(tmp_path):
    frames = torch.arange(12, dtype=torch.uint8)[:, None, None, None].expand(12, 32, 48, 3) * 20
    source = write_animation(tmp_path / "source.mp4", frames, fps=30)
    assert frame_rate(source) == pytest.approx(30)
    assert read_frames(source, step=4).shape == (3, 32, 48, 3)
    rate = output_frame_rate(frame_rate(source), every=4, default=8)
    assert rate == 7.5
    assert frame_rate(write_animation(tmp_path / "out.mp4", frames[::4], fps=rate)) == pytest.approx(7.5)

    folder = tmp_path / "frames"
    write_png_frames(folder, frames)
    assert frame_rate(folder) is None
    assert output_frame_rate(frame_rate(folder), every=2, default=8) == 8.0
    assert output_frame_rate(29.97, every=3, default=8) == pytest.approx(9.99)
    with pytest.raises(ValueError, match="fps must be positive"):
        write_animation(tmp_path / "bad.gif", frames, fps=0)
