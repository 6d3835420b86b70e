"""Real shots streamed from decode to write (models.shot): the same results as the whole-clip path for every
option, sources read lazily, resume after a kill byte-identical, atomic writes, mismatched resumes refused."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import REPO, TINY
from diffusion_vas.models import SamplingOptions, complete_content, load_pipeline, predict_amodal_masks
from diffusion_vas.models.depth.estimator import load_depth_model, normalize_depth
from diffusion_vas.models.depth.resolution import DepthFromFrames, predict_depth, resize_frames
from diffusion_vas.models.io.frame_source import ImageFolderFrames, VideoFrames, open_frames
from diffusion_vas.models.io.mask_files import read_mask_folder, voc_palette
from diffusion_vas.models.io.frame_source import read_frames
from diffusion_vas.models.io.media import write_animation
from diffusion_vas.models.shot import ShotSettings, run_shot
from diffusion_vas.models.shot.outputs import partial_path

EXAMPLE = REPO / "example_clips" / "synthetic_occlusion"
SIZE = (64, 128)
NET = 70  # Depth Anything's input in these tests: small (a multiple of 14) keeps them fast, the arithmetic the same


# -- sources ------------------------------------------------------------------------------------------------------

def _all_frames(path: Path) -> np.ndarray:
    """Every frame of a video, decoded plainly with PyAV (the reference for the lazy reader)."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_video_frames_select_while_decoding(tmp_path):
    video = write_animation(tmp_path / "shot.mp4", read_frames(EXAMPLE / "rgb"), fps=24)
    every = _all_frames(video)
    for start, count, step in ((0, 0, 1), (3, 0, 4), (1, 5, 3), (24, 0, 1)):
        frames = VideoFrames(video, start, count, step)
        chosen = every[start::step][: count or None]
        assert frames.count == len(chosen) and frames.size == (128, 256) and frames.rate == pytest.approx(24)
        assert frames.names == [f"{i:05d}" for i in range(start, 25, step)][: len(chosen)]
        parts = [slice(0, min(2, frames.count))] + ([slice(2, frames.count)] if frames.count > 2 else [])
        got = torch.cat(list(frames.read(parts))).numpy()
        np.testing.assert_array_equal(got, chosen)
        np.testing.assert_array_equal(read_frames(video, start, count, step).numpy(), chosen)
    in_memory = VideoFrames(io.BytesIO(video.read_bytes()), 2, 0, 5)  # e.g. ComfyUI's VIDEO of an upload
    for _ in range(2):  # every pass decodes its own view of the bytes
        np.testing.assert_array_equal(torch.cat(list(in_memory.read([slice(0, in_memory.count)]))).numpy(),
                                      every[2::5])
    with pytest.raises(ValueError, match="start 25 is past the last of the 25 frames"):
        VideoFrames(video, 25)
    with pytest.raises(ValueError, match="consecutive"):
        list(VideoFrames(video).read([slice(2, 4), slice(0, 2)]))


def test_image_folder_frames_are_read_one_at_a_time(tmp_path):
    frames = ImageFolderFrames(EXAMPLE / "rgb", 2, 6, 2)
    assert frames.count == 6 and frames.size == (128, 256) and frames.names == [f"{i:05d}" for i in range(2, 14, 2)]
    np.testing.assert_array_equal(torch.cat(list(frames.read([slice(0, 4), slice(4, 6)]))).numpy(),
                                  read_frames(EXAMPLE / "rgb")[2:14:2].numpy())
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((10, 21, 3), np.uint8)).save(folder / "b.png")
    with pytest.raises(ValueError, match="different sizes: b.png is 21x10 but a.png is 20x10"):
        list(open_frames(folder).read([slice(0, 2)]))


def test_mask_folder_is_scanned_then_read_lazily(tmp_path):
    for t in range(5):
        ids = np.zeros((40, 60), np.uint8)
        ids[5:20, 5 + t:25 + t] = 1
        ids[25:38, 30:50] = 2
        image = Image.fromarray(ids, mode="P")
        image.putpalette(voc_palette().reshape(-1).tolist())
        image.save(tmp_path / f"{t:03d}.png")
    masks = read_mask_folder(tmp_path)
    assert masks.format == "labels" and masks.ids == [1, 2]
    assert not any(isinstance(v, np.ndarray) for v in vars(masks).values())  # nothing of the pixels is kept
    sequence = masks.sequence(2)
    got = torch.cat(list(sequence.read([slice(0, 3), slice(3, 5)])))
    np.testing.assert_array_equal(got.numpy(), masks.select(2))
    bigger = torch.cat(list(masks.sequence(1, (80, 120)).read([slice(0, 5)])))
    assert bigger.shape == (5, 80, 120) and torch.equal(bigger[:, ::2, ::2], torch.from_numpy(masks.select(1)))
    with pytest.raises(ValueError, match="object_id 7 appears in none"):
        masks.sequence(7)


def test_depth_from_frames_is_the_whole_clip_arithmetic(tmp_path):
    """Fed a few frames at a time it gives what the network on the whole clip gives: the frames resized to the
    processing size, Depth Anything in batches of 4, the output upsampled bilinearly (or, ``input``, kept at the
    frame size in a spill file)."""
    estimator = load_depth_model(TINY.depth)
    frames = read_frames(EXAMPLE / "rgb", count=11)
    net = NET
    small = estimator.predict(resize_frames(frames, SIZE), 4, None, net)
    expected = F.interpolate(small[:, None], size=(128, 256), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(predict_depth(estimator, frames, "processing", SIZE, input_size=net), expected)
    depth = DepthFromFrames(estimator, 11, (128, 256), "processing", SIZE, input_size=net)
    for part in (frames[:3], frames[3:9], frames[9:]):
        depth.feed(part)
    depth.finish()
    assert depth.store.shape == (11, *SIZE)  # only the processing size is kept
    assert torch.equal(torch.cat(list(depth.read([slice(0, 5), slice(5, 11)]))), expected)

    spilled = DepthFromFrames(estimator, 11, (128, 256), "input", SIZE, input_size=net, spill=tmp_path)
    spilled.feed(frames[:7])
    spilled.feed(frames[7:])
    spilled.finish()
    assert spilled.store is None and (tmp_path / "depth_input.f32").stat().st_size == 11 * 128 * 256 * 4
    assert torch.equal(torch.cat(list(spilled.read([slice(0, 11)]))), estimator.predict(frames, 4, None, net))
    spilled.close()
    assert not (tmp_path / "depth_input.f32").exists()


# -- streaming equals the whole-clip path -------------------------------------------------------------------------

def _hd_shot(folder: Path, frames: int = 5) -> tuple[Path, Path]:
    """A 1080p MP4 and a label-mask folder: a textured disc behind a bar, and a fragmented object (hair-like
    speckle) at the frame's left edge."""
    g = torch.Generator().manual_seed(7)
    h, w = 1080, 1920
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    texture = (torch.rand(h // 8, w // 8, 3, generator=g) * 255).to(torch.uint8)
    rgb = texture.repeat_interleave(8, 0).repeat_interleave(8, 1).expand(frames, -1, -1, -1).clone()
    masks = folder / "masks"
    masks.mkdir(parents=True)
    for t in range(frames):
        disc = ((ys - 500) ** 2 + (xs - 1200 - 40 * t) ** 2 <= 280 ** 2) & ~((xs > 1100) & (xs < 1250))
        speckle = ((ys - 700) ** 2 + (xs - 40) ** 2 <= 300 ** 2) & (torch.rand(h, w, generator=g) > 0.6)
        rgb[t][disc] = torch.tensor([200, 60, 40], dtype=torch.uint8)
        ids = np.zeros((h, w), np.uint8)
        ids[disc.numpy()] = 1
        ids[speckle.numpy()] = 2
        image = Image.fromarray(ids, mode="P")
        image.putpalette(voc_palette().reshape(-1).tolist())
        image.save(masks / f"{t:05d}.png")
    return write_animation(folder / "shot.mp4", rgb, fps=24, crf=10), masks


def _whole_clip(frames_path, masks_path, depth_from="processing", region="frame", mask_upscale="smooth",
                keep_visible_pixels=True, samples=1, depth_folder=None):
    """The whole-clip path the command line took before streaming: every frame, mask and depth in memory."""
    frames = read_frames(frames_path)
    found = read_mask_folder(masks_path)
    modal = torch.stack([torch.from_numpy(found.select(i)) for i in found.ids])
    if depth_folder is None:
        raw = predict_depth(load_depth_model(TINY.depth), frames, depth_from, SIZE, input_size=NET)
    else:
        raw = read_frames(depth_folder).float().mean(dim=-1)
    depth = normalize_depth(raw, "clip")
    fast = dict(num_inference_steps=1, samples=samples)
    amodal = predict_amodal_masks(load_pipeline(TINY.stage1), modal, depth, SIZE,
                                  SamplingOptions.for_stage("amodal", **fast), mask_upscale=mask_upscale, region=region)
    content = complete_content(load_pipeline(TINY.stage2), frames, modal, amodal.masks, SIZE,
                               SamplingOptions.for_stage("content", **fast), keep_visible_pixels=keep_visible_pixels,
                               region=region)
    return found.ids, amodal, content


def _streamed(out, frames_path, masks_path, depth_from="processing", region="frame", mask_upscale="smooth",
              keep_visible_pixels=True, samples=1, depth_folder=None, write=("masks", "layer", "rgb")):
    fast = dict(num_inference_steps=1, samples=samples)
    settings = ShotSettings(frames=frames_path, masks=masks_path, out=out, depth=depth_folder,
                            depth_model=str(TINY.depth), depth_from=depth_from, depth_input_size=NET,
                            stage1=str(TINY.stage1),
                            stage2=str(TINY.stage2), size=SIZE, amodal=SamplingOptions.for_stage("amodal", **fast),
                            content=SamplingOptions.for_stage("content", **fast), mask_upscale=mask_upscale,
                            keep_visible_pixels=keep_visible_pixels, region=region, write=write)
    return run_shot(settings)


def _pngs(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def _check_same(out: Path, ids, amodal, content, samples: int):
    for n, object_id in enumerate(ids):
        for k in range(samples):
            row = n * samples + k
            base = out / f"obj{object_id}" / (f"sample{k}" if samples > 1 else "")
            masks = _pngs(base / "amodal_masks")
            np.testing.assert_array_equal(masks, amodal.masks[row].numpy().astype(np.uint8) * 255)  # bit-exact
            rgb = _pngs(base / "amodal_rgb").astype(np.int16)
            expected = (content.rgb[row] * 255).round().to(torch.uint8).numpy().astype(np.int16)
            assert np.abs(rgb - expected).max() <= 1  # float rounding
            layer = _pngs(base / "layer")
            np.testing.assert_array_equal(layer[..., 3], content.alpha[row].numpy().astype(np.uint8) * 255)
            np.testing.assert_array_equal(layer[..., :3], _pngs(base / "amodal_rgb"))


@pytest.mark.parametrize("options", [
    dict(),
    dict(region="object", mask_upscale="reference", keep_visible_pixels=False),
    dict(region="object", samples=2),
    dict(mask_upscale="reference", samples=2, depth_from="input"),
    dict(depth_folder=EXAMPLE / "depth", keep_visible_pixels=False),
])
def test_example_clip_streamed_equals_the_whole_clip_path(tmp_path, options):
    video = write_animation(tmp_path / "shot.mp4", read_frames(EXAMPLE / "rgb"), fps=24, crf=10)
    ids, amodal, content = _whole_clip(video, EXAMPLE / "modal", **options)
    result = _streamed(tmp_path / "out", video, EXAMPLE / "modal", **options)
    assert result.ids == ids == [0] and result.frames == 25
    _check_same(tmp_path / "out", ids, amodal, content, options.get("samples", 1))
    assert not (tmp_path / "out" / ".diffusion-vas" / "stage1_conditions.safetensors").exists()  # cleaned up


@pytest.mark.parametrize("options", [dict(), dict(region="object", mask_upscale="reference")])
def test_1080p_shot_streamed_equals_the_whole_clip_path(tmp_path, options):
    video, masks = _hd_shot(tmp_path)
    ids, amodal, content = _whole_clip(video, masks, **options)
    assert ids == [1, 2]
    _streamed(tmp_path / "out", video, masks, **options)
    _check_same(tmp_path / "out", ids, amodal, content, 1)


def test_default_outputs_and_previews(tmp_path):
    video = write_animation(tmp_path / "shot.mp4", read_frames(EXAMPLE / "rgb", count=9), fps=24)
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, file in enumerate(sorted((EXAMPLE / "modal").glob("*.png"))[:9]):
        Image.open(file).save(masks / f"m{i}.png")
    out = tmp_path / "out"
    fast = dict(num_inference_steps=1)
    run_shot(ShotSettings(frames=video, masks=masks, out=out, depth_model=str(TINY.depth), depth_input_size=NET,
                          stage1=str(TINY.stage1),
                          stage2=str(TINY.stage2), size=SIZE, amodal=SamplingOptions.for_stage("amodal", **fast),
                          content=SamplingOptions.for_stage("content", **fast),
                          write=("masks", "layer", "mp4", "overlay", "gif")))
    obj = out / "obj0"
    assert sorted(p.name for p in obj.iterdir()) == [
        "amodal_masks", "layer", "layer.gif", "layer.mp4", "overlay",
        "overlay.gif", "overlay.mp4"]
    layer = _pngs(obj / "layer")
    assert layer.shape == (9, 128, 256, 4) and layer.dtype == np.uint8
    assert read_frames(obj / "layer.mp4").shape == (9, 128, 256, 3)
    assert Image.open(obj / "overlay.gif").n_frames == 9
    assert [p.stem for p in sorted((obj / "amodal_masks").glob("*.png"))] == [f"{i:05d}" for i in range(9)]
    assert not list(out.rglob("*.partial*"))


# -- resume ----------------------------------------------------------------------------------------------------------

def _command(frames, masks, out, *extra):
    return [sys.executable, "-m", "diffusion_vas", "run", "--frames", str(frames), "--masks", str(masks),
            "--out", str(out), "--stage1", str(TINY.stage1), "--stage2", str(TINY.stage2), "--depth-model",
            str(TINY.depth), "--depth-input-size", str(NET), "--size", "64x128", "--steps", "2", "--quiet",
            "--write", "masks,layer,mp4", *extra]


def _two_objects(tmp_path) -> tuple[Path, Path]:
    frames = read_frames(EXAMPLE / "rgb")
    video = write_animation(tmp_path / "shot.mp4", frames, fps=24)
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, file in enumerate(sorted((EXAMPLE / "modal").glob("*.png"))):
        ids = (np.asarray(Image.open(file).convert("L")) > 128).astype(np.uint8)
        ids[10:40, 200:240] = 2
        image = Image.fromarray(ids, mode="P")
        image.putpalette(voc_palette().reshape(-1).tolist())
        image.save(masks / f"{i:05d}.png")
    return video, masks


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".diffusion-vas" not in p.parts}


def _run_until(command, out: Path, ready, timeout: float = 300) -> bool:
    """Starts ``command`` and SIGKILLs it as soon as ``ready(out)``; returns whether it was killed."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "tests"))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    began = time.monotonic()
    while process.poll() is None and time.monotonic() - began < timeout:
        if ready(out):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.002)
    assert process.wait() == 0, process.stderr.read().decode()
    return False


def test_resume_after_kill_is_byte_identical(tmp_path):
    video, masks = _two_objects(tmp_path)
    whole = tmp_path / "whole"
    subprocess.run(_command(video, masks, whole), check=True, env=dict(os.environ, PYTHONPATH=str(REPO / "tests")))
    expected = _files(whole)
    assert "obj1/layer.mp4" in expected and "obj2/amodal_masks/00024.png" in expected

    stopped = tmp_path / "stopped"
    second = stopped / ".diffusion-vas" / "stage1" / "objects_2.safetensors"
    assert _run_until(_command(video, masks, stopped), stopped, lambda out: second.exists()), "the run ended first"
    assert not (stopped / ".diffusion-vas" / "written" / "complete").exists()
    subprocess.run(_command(video, masks, stopped, "--resume"), check=True,
                   env=dict(os.environ, PYTHONPATH=str(REPO / "tests")))
    assert _files(stopped) == expected

    # killed while writing: no half-written file under a final name, and the resumed run completes it
    writing = tmp_path / "writing"
    layers = writing / "obj2" / "layer"
    assert _run_until(_command(video, masks, writing), writing,
                      lambda out: layers.is_dir() and len(list(layers.glob("*.png"))) >= 3)
    for path in writing.rglob("*.png"):
        if ".partial" not in path.name:
            with Image.open(path) as image:
                image.load()  # every finished name is a whole PNG
    subprocess.run(_command(video, masks, writing, "--resume"), check=True,
                   env=dict(os.environ, PYTHONPATH=str(REPO / "tests")))
    assert _files(writing) == expected
    assert not list(writing.rglob("*.partial*"))


def test_mismatched_resume_is_refused(tmp_path, capsys):
    from diffusion_vas.commands import main

    video, masks = _two_objects(tmp_path)
    out = tmp_path / "out"
    args = _command(video, masks, out)[3:]
    assert main(args + ["--masks-only"]) == 0
    assert main(args + ["--masks-only", "--steps", "3", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "--resume: this run differs" in err and "settings.amodal.num_inference_steps was 2, now 3" in err
    assert main(args + ["--masks-only", "--resume"]) == 0  # the same run: complete already
    assert main(args + ["--resume", "--masks-only", "--out", str(tmp_path / "nothing")]) == 1
    assert "holds no run to continue" in capsys.readouterr().err


def test_partial_names_are_hidden_beside_the_final_one():
    assert partial_path(Path("a/b/00012.png")) == Path("a/b/.00012.partial.png")


@pytest.mark.parametrize("frame,size", [((1080, 1920), (64, 128)), ((1080, 1920), (256, 512)),
                                        ((2160, 3840), (256, 512)), ((90, 172), (64, 128)), ((37, 2000), (64, 128))])
def test_bilinear_resize_reads_only_its_taps(frame, size):
    """Every pixel outside `bilinear_taps` set to NaN: the resize is bit-identical, so none of them is read (the
    depth input and anything built on the taps may leave them unconverted)."""
    from diffusion_vas.models.base.resize import bilinear_taps

    x = torch.rand(2, 3, *frame, generator=torch.Generator().manual_seed(frame[1]))
    rows, cols = bilinear_taps(frame[0], size[0]), bilinear_taps(frame[1], size[1])
    poisoned = torch.full_like(x, float("nan"))
    poisoned[:, :, rows[:, None], cols[None, :]] = x[:, :, rows[:, None], cols[None, :]]
    for a, b in ((x, poisoned), (x.contiguous(memory_format=torch.channels_last),
                                 poisoned.contiguous(memory_format=torch.channels_last))):
        assert torch.equal(F.interpolate(b, size=size, mode="bilinear", align_corners=False),
                           F.interpolate(a, size=size, mode="bilinear", align_corners=False))
    frames = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    whole = F.interpolate((frames.float() / 255).permute(0, 3, 1, 2), size=size, mode="bilinear",
                          align_corners=False).clamp(0, 1).permute(0, 2, 3, 1)
    assert torch.equal(resize_frames(frames, size), whole)


def test_allocator_tuning_is_accepted_on_glibc():
    """The command line keeps freed pages for reuse (models.host.allocator); glibc accepts every setting."""
    import platform

    from diffusion_vas.models.host.allocator import tune_for_long_runs

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc: the command line leaves the allocator as it is")
    assert tune_for_long_runs() is True


def test_overwrite_rewrites_every_file(tmp_path):
    """--overwrite writes every file anew (only --resume keeps the finished files of its own stopped run)."""
    out = tmp_path / "out"
    fast = dict(num_inference_steps=1)

    def run(seed):
        run_shot(ShotSettings(frames=EXAMPLE / "rgb", masks=EXAMPLE / "modal", out=out, count=4,
                              depth=EXAMPLE / "depth", stage1=str(TINY.stage1), size=SIZE, masks_only=True,
                              amodal=SamplingOptions.for_stage("amodal", seed=seed, **fast), write=("masks",),
                              threshold=300, overwrite=True))
        return _pngs(out / "obj0" / "amodal_masks")

    first, second = run(1), run(2)
    assert (first != second).any()
    np.testing.assert_array_equal(second, run(2))


def test_layer_preview_is_grey_outside_the_object_and_the_layer_inside():
    """The layer's MP4/GIF preview: PREVIEW_GREY where the object is not (its RGB is white there), the layer's
    colours where it is; computed per pixel as one 32-bit number."""
    from diffusion_vas.models.shot.run import PREVIEW_GREY, _over_grey

    generator = torch.Generator().manual_seed(2)
    shape = torch.rand(3, 17, 23, generator=generator) > 0.5
    layer = (torch.rand(3, 17, 23, 4, generator=generator) * 255).to(torch.uint8)
    layer[..., :3][~shape] = 255
    layer[..., 3] = shape.to(torch.uint8) * 255
    preview = _over_grey(layer, shape)
    assert preview.shape == layer.shape and preview.dtype == torch.uint8
    assert torch.equal(preview[..., :3][shape], layer[..., :3][shape])
    assert preview[..., :3][~shape].eq(PREVIEW_GREY).all()
