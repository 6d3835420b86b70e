"""The CLI on inputs as people bring them: an MP4 (frame rate carried to the outputs), label masks listed before
the run, --mask-format, mask/frame size mismatches (tiny checkpoints, 1 step, masks only)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_vas.commands import main
from diffusion_vas.commands.run import EXAMPLE
from diffusion_vas.models.io.mask_files import voc_palette
from diffusion_vas.models.io.frame_source import read_frames
from diffusion_vas.models.io.media import frame_rate, write_animation
from conftest import TINY as MODELS

FRAMES = 6
FAST = ["--stage1", str(MODELS.stage1), "--depth", str(EXAMPLE / "depth"), "--steps", "1", "--size", "64x128",
        "--masks-only"]


def example_frames(count: int) -> torch.Tensor:
    return read_frames(EXAMPLE / "rgb", count=count)


def test_mp4_input_writes_mp4_at_the_source_rate_over_every(tmp_path, caplog):
    video = write_animation(tmp_path / "shot.mp4", example_frames(2 * FRAMES), fps=24)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        code = main(["run", "--frames", str(video), "--masks", str(EXAMPLE / "modal"), "--every", "2",
                     "--count", str(FRAMES), "--out", str(out), *FAST, "--write", "masks,overlay,mp4"])
    assert code == 0
    assert frame_rate(out / "obj0" / "amodal_masks.mp4") == pytest.approx(12)
    assert read_frames(out / "obj0" / "overlay.mp4").shape == (FRAMES, 128, 256, 3)
    messages = [r.getMessage() for r in caplog.records]
    assert any("6 masks of 256x128, read as binary" in m and "id 0:" in m for m in messages)
    assert not any("PyAV" in m for m in messages)


def test_label_masks_listed_and_mask_format(tmp_path, caplog, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(FRAMES):
        ids = np.zeros((128, 256), np.uint8)
        ids[20:60, 30 + 4 * t:90 + 4 * t] = 1
        ids[70:120, 150:220] = 3
        ids[0, 0] = 7  # one stray pixel: listed, not processed
        image = Image.fromarray(ids, mode="P")
        image.putpalette(voc_palette().reshape(-1).tolist())
        image.save(masks / f"{t:05d}.png")
    args = ["run", "--frames", str(EXAMPLE / "rgb"), "--masks", str(masks), "--count", str(FRAMES), *FAST]
    with caplog.at_level(logging.INFO):
        assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["obj1", "obj3"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "read as labels" in text and "id 1: 14400 pixels" in text and "id 3: 21000 pixels" in text
    assert "id 7: 6 pixels in 6 frames" in text and "not taken as objects" in text

    assert main([*args, "--out", str(tmp_path / "bin"), "--mask-format", "binary"]) == 1
    assert "every mask is empty (read as binary" in capsys.readouterr().err  # dark label colours as grey levels
    assert main([*args, "--out", str(tmp_path / "one"), "--object-ids", "5"]) == 1
    assert "--object-ids: object_id 5 appears in none" in capsys.readouterr().err


def test_mask_size_mismatch_says_what_differs(tmp_path, capsys, caplog):
    half = tmp_path / "half"
    half.mkdir()
    for k, file in enumerate(sorted((EXAMPLE / "modal").glob("*.png"))[:FRAMES]):
        with Image.open(file) as image:
            image.resize((128, 64), Image.NEAREST).save(half / f"{k:05d}.png")
    args = ["run", "--frames", str(EXAMPLE / "rgb"), "--count", str(FRAMES), *FAST]
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--masks", str(half), "--out", str(tmp_path / "a")]) == 0
    assert any("are 128x64 (WxH) but the frames are 256x128: resizing" in r.getMessage() for r in caplog.records)

    square = tmp_path / "square"
    square.mkdir()
    for k in range(FRAMES):
        Image.fromarray(np.full((100, 100), 255, np.uint8)).save(square / f"{k}.png")
    assert main([*args, "--masks", str(square), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "are 100x100 (WxH) but --frames" in err and "are 256x128, a different aspect ratio" in err

    assert main(["run", "--frames", str(EXAMPLE / "rgb"), *FAST, "--masks", str(square),
                 "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "gives 6 masks but --frames" in err and "gives 25 frames" in err


def test_missing_pyav_refuses_mp4_before_any_work(tmp_path, monkeypatch, capsys):
    import diffusion_vas.commands.run as cli

    monkeypatch.setattr(cli, "pyav_available", lambda: False)
    args = ["run", "--frames", str(EXAMPLE / "rgb"), "--masks", str(EXAMPLE / "modal"), "--count", "3", *FAST]
    assert main([*args, "--out", str(tmp_path / "a")]) == 1
    assert "--write mp4 needs PyAV (a dependency): pip install av" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert main([*args, "--out", str(tmp_path / "b"), "--write", "masks,gif"]) == 0
    assert len(list((tmp_path / "b").rglob("*.png"))) == 3 and len(list((tmp_path / "b").rglob("*.gif"))) == 1
