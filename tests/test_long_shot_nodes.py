"""Long shots inside ComfyUI: the nodes read a VIDEO (core Load Video, Select Frames) a few frames at a time and hand
results on as a VIDEO rendered when it is saved. The same graph on IMAGE frames (the same decoded pixels) is the
reference: masks equal, colours and every Composite Edit mode equal to the 8-bit level the video carries."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import REPO, TINY
from diffusion_vas.models.depth.estimator import load_depth_model, normalize_depth
from diffusion_vas.models.depth.resolution import depth_of_frames
from diffusion_vas.models.editing.composite import MODES
from diffusion_vas.models.io.frame_source import VideoFrames
from diffusion_vas.models.io.frame_source import read_frames
from diffusion_vas.models.io.media import write_animation
from diffusion_vas.nodes import composite, depth, loader, masks, stages, video
from diffusion_vas.nodes.bool_mask import BoolMask

EXAMPLE = REPO / "example_clips" / "synthetic_occlusion"
FAST = dict(steps=2, width=128, height=64)
START, EVERY = 1, 3  # frames 1, 4, ..., 22 of the 25: 8 frames


class CoreVideo:
    """Stands in for core Load Video's VIDEO (a file behind ``get_stream_source``)."""

    def __init__(self, path):
        self.path = path

    def get_stream_source(self):
        return str(self.path)

    def get_frame_rate(self):
        return Fraction(24)


def run(cls, **inputs):
    spec = cls.INPUT_TYPES()
    assert not set(inputs) - {*spec.get("required", {}), *spec.get("optional", {})}
    with torch.inference_mode():
        return getattr(cls(), cls.FUNCTION)(**inputs)


def decoded(path) -> torch.Tensor:
    """Every frame of a video as PyAV decodes it, ``[T, H, W, 3]`` uint8."""
    import av

    with av.open(str(path)) as container:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]))


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    path = write_animation(tmp_path_factory.mktemp("shot") / "shot.mp4", read_frames(EXAMPLE / "rgb"), fps=24)
    return CoreVideo(path), decoded(path)[START::EVERY]


@pytest.fixture(scope="module")
def models():
    return (run(loader.DiffusionVASLoader, model=str(TINY.stage1), precision="fp32")[0],
            run(loader.DiffusionVASLoader, model=str(TINY.stage2), precision="fp32")[0])


def test_select_frames_decodes_nothing_and_reads_the_chosen_frames(shot):
    core, frames = shot
    (chosen,) = run(video.SelectVideoFrames, video=core, start_frame=START, frame_count=0, every_nth=EVERY)
    assert isinstance(chosen.frames, VideoFrames) and chosen.get_frame_count() == 8
    assert chosen.get_frame_rate() == 8 and chosen.get_dimensions() == (256, 128)
    assert torch.equal(torch.cat(list(chosen.frames.read([slice(0, 3), slice(3, 8)]))), frames)
    (fewer,) = run(video.SelectVideoFrames, video=chosen, start_frame=2, frame_count=3, every_nth=1)
    assert torch.equal(torch.cat(list(fewer.frames.read([slice(0, 3)]))), frames[2:5])
    with pytest.raises(ValueError, match="start_frame/frame_count/every_nth"):
        run(video.SelectVideoFrames, video=core, start_frame=100, frame_count=0, every_nth=1)


def test_masks_follow_the_videos_selection_held_as_bool(shot):
    core, _ = shot
    (chosen,) = run(video.SelectVideoFrames, video=core, start_frame=START, frame_count=0, every_nth=EVERY)
    (bool_masks,) = run(masks.LoadModalMasks, folder=str(EXAMPLE / "modal"), object_id=0, start_frame=0,
                        frame_count=0, every_nth=1, reference_images=chosen)
    (float_masks,) = run(masks.LoadModalMasks, folder=str(EXAMPLE / "modal"), object_id=0, start_frame=START,
                         frame_count=0, every_nth=EVERY)
    assert held_as_bool(bool_masks, float_masks > 0.5)
    with pytest.raises(ValueError, match="one mask per frame"):  # widgets selecting a second time: 3 masks for 8
        run(masks.LoadModalMasks, folder=str(EXAMPLE / "modal"), object_id=0, start_frame=START, frame_count=0,
            every_nth=EVERY * 3, reference_images=chosen)


def test_depth_of_a_video_is_at_the_processing_size(shot):
    core, frames = shot
    (chosen,) = run(video.SelectVideoFrames, video=core, start_frame=START, frame_count=0, every_nth=EVERY)
    (out,) = run(depth.PseudoDepth, images=chosen, model=str(TINY.depth), input_size=70, width=128, height=64)
    assert out.shape == (8, 64, 128, 3)
    estimator = load_depth_model(TINY.depth)
    store = depth_of_frames(estimator, chosen.frames, "processing", (64, 128), 4, 70).store
    assert torch.equal(out[..., 0], normalize_depth(store, "clip"))
    # the IMAGE path gives the same depth at the frames' size (made there from the same processing-size depth)
    (full,) = run(depth.PseudoDepth, images=frames.float() / 255, model=str(TINY.depth), input_size=70,
                  width=128, height=64)
    small = torch.nn.functional.interpolate(full[..., 0][:, None], size=(64, 128), mode="bilinear",
                                            antialias=True, align_corners=False)[:, 0]
    assert float((small - out[..., 0]).abs().mean()) < 0.02


@pytest.fixture(scope="module")
def graphs(shot, models):
    """The long-shot graph on the VIDEO and the same graph on IMAGE frames of the same decoded pixels."""
    core, frames = shot
    model1, model2 = models
    (chosen,) = run(video.SelectVideoFrames, video=core, start_frame=START, frame_count=0, every_nth=EVERY)
    (modal,) = run(masks.LoadModalMasks, folder=str(EXAMPLE / "modal"), object_id=0, start_frame=0, frame_count=0,
                   every_nth=1, reference_images=chosen)
    (scene_depth,) = run(depth.PseudoDepth, images=chosen, model=str(TINY.depth), input_size=70, width=128, height=64)
    long = dict(video=chosen, modal=modal)
    long["amodal"], long["probability"], _ = run(stages.AmodalMaskSVD, model=model1, modal_masks=modal,
                                                 depth=scene_depth, seed=3, **FAST)
    long["rgb"], long["alpha"], long["content"] = run(stages.AmodalContentSVD, model=model2, images=chosen,
                                                      modal_masks=modal, amodal_masks=long["amodal"], seed=4, **FAST)
    images = frames.float() / 255
    short = dict(images=images, modal=modal.float())
    short["amodal"], _, _ = run(stages.AmodalMaskSVD, model=model1, modal_masks=short["modal"], depth=scene_depth,
                                seed=3, **FAST)
    short["rgb"], short["alpha"], short["content"] = run(stages.AmodalContentSVD, model=model2, images=images,
                                                         modal_masks=short["modal"], amodal_masks=short["amodal"],
                                                         seed=4, **FAST)
    return long, short


def held_as_bool(mask: torch.Tensor, expected: torch.Tensor) -> bool:
    """A MASK of the VIDEO path: float32 0/1 to ComfyUI (the values of ``expected``), held as bool."""
    return (isinstance(mask, BoolMask) and mask.dtype == torch.float32 and mask.bits.dtype == torch.bool
            and torch.equal(mask.bits, expected) and torch.equal(mask, expected.float()))


def frames_of(clip: video.FrameVideo) -> torch.Tensor:
    """Every frame a VIDEO renders, as the 8-bit frames it saves."""
    return video.to_uint8(torch.cat(list(clip.frames.read(clip.parts()))))


def test_stage_nodes_on_a_video_equal_the_image_graph(graphs):
    long, short = graphs
    assert held_as_bool(long["amodal"], short["amodal"] > 0.5)
    assert long["probability"].shape == (8, 64, 128, 3)  # the soft map at the model's size
    assert held_as_bool(long["alpha"], short["alpha"] > 0.5)
    assert long["rgb"].shape == (8, 64, 128, 3)  # the model's own colours, for a look
    assert long["content"].get_dimensions() == (256, 128) and long["content"].get_frame_count() == 8
    assert torch.equal(frames_of(long["content"]), video.to_uint8(short["rgb"]))
    assert torch.equal(frames_of(short["content"]), video.to_uint8(short["rgb"]))


@pytest.mark.parametrize("mode", MODES)
def test_composite_edit_on_a_video_equals_the_image_graph(graphs, mode):
    long, short = graphs
    occluder = torch.from_numpy(np.stack([np.asarray(read_frames(EXAMPLE / "occluder")[i, ..., 0]) > 128
                                          for i in range(START, 25, EVERY)]))
    common = dict(mode=mode, occluder_masks=occluder.float(), offset_x=9, offset_y=-4, feather=1.5)
    with_modal = dict(modal_masks=short["modal"]) if mode in ("xray", "move") else {}
    image, mask, edit = run(composite.CompositeEdit, images=short["images"], amodal_rgb=short["rgb"],
                            amodal_masks=short["alpha"], **with_modal, **common)
    preview, long_mask, long_edit = run(composite.CompositeEdit, images=long["video"], amodal_rgb=long["content"],
                                        amodal_masks=long["alpha"], **with_modal, **common)
    assert torch.equal(frames_of(long_edit), video.to_uint8(image))
    assert torch.equal(frames_of(edit), video.to_uint8(image))
    assert held_as_bool(long_mask, mask >= 0.5)
    assert preview.shape == (8, 128, 256, 3)  # every frame of a short shot, at its size (under 512 px wide)
    assert torch.allclose(preview, video.to_uint8(image).float() / 255)


def test_a_video_is_saved_part_by_part_as_mp4(graphs, tmp_path):
    long, _ = graphs
    clip = long["content"]
    path = tmp_path / "completed.mp4"
    clip.save_to(str(path), format="auto", codec="auto", metadata={"prompt": {"1": "x"}})
    saved = decoded(path)
    assert saved.shape == (8, 128, 256, 3)
    # H.264 in 4:2:0 of the same frames (the tiny model paints colour noise, which 4:2:0 chroma blurs)
    assert float((saved.float() - frames_of(clip).float()).abs().mean()) < 8
    buffer = io.BytesIO()
    clip.save_to(buffer)
    assert buffer.getbuffer().nbytes > 0
    with pytest.raises(ValueError, match="MP4"):
        clip.save_to(str(tmp_path / "x.webm"), format="webm")
    with pytest.raises(ValueError, match="H.264"):
        clip.save_to(str(tmp_path / "x.mp4"), codec="vp9")


def test_every_frame_at_once_only_when_asked(graphs, caplog):
    long, _ = graphs
    result = long["content"].get_components()  # ComfyUI's VideoComponents there, a tuple without it
    images, rate = (result.images, result.frame_rate) if hasattr(result, "images") else result
    assert images.shape == (8, 128, 256, 3) and images.dtype == torch.float32 and rate == 8
    assert "at once" in caplog.text


def test_a_video_where_frames_are_expected_is_named():
    with pytest.raises(ValueError, match="images: expected IMAGE frames or a VIDEO"):
        video.frame_sequence(object(), "images")
