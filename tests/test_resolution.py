"""Native-resolution results: mask upscaling modes, visible pixels kept, colour matching, zoom crops and paste-backs,
checked with an oracle sampler (the ground truth behind the pipeline's ``sample`` interface) on hand-built clips;
and a 4K clip through the nodes on the tiny checkpoints."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY

from diffusion_vas.models import complete_content, predict_amodal_masks
from diffusion_vas.models.evaluation.oracle import OracleSampler, oracle_mask_frames, oracle_rgb_frames
from diffusion_vas.models.stages import conditions as C
from diffusion_vas.models.stages import amodal_stage, content_stage
from diffusion_vas.models.base.sequences import TensorDepth, TensorFrames, tensor_masks
from diffusion_vas.models.base.chunking import MaskFormat, dilate
from diffusion_vas.models.stages.content_blend import (_columns_upsampled, colour_gains, compose_chunk,
                                                       upsampled_rows)
from diffusion_vas.models.stages.region import Box, object_box

SIZE = (32, 64)  # processing size of the oracle tests


def disk_clip(frames=3, height=90, width=172, centre=(45, 60), radius=20, bar=(70, 90)):
    """A textured disk (the object) behind a vertical bar (the occluder): rgb, modal, amodal, object colours."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    amodal = ((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= radius ** 2).expand(frames, -1, -1)
    occluder = ((xs >= bar[0]) & (xs < bar[1])).expand(frames, -1, -1)
    colours = torch.stack([0.4 + 0.3 * torch.sin(xs / 5.0), 0.5 + 0.2 * torch.cos(ys / 7.0),
                           torch.full_like(xs, 0.6, dtype=torch.float32)], dim=-1).float().expand(frames, -1, -1, -1)
    background = torch.full((frames, height, width, 3), 0.2)
    rgb = torch.where(amodal[..., None], colours, background)
    rgb = torch.where(occluder[..., None], torch.tensor([0.9, 0.1, 0.1]), rgb)
    return rgb.contiguous(), (amodal & ~occluder)[None], amodal[None], colours[None]


def boxes_for(modal, region):
    return amodal_stage.object_boxes(tensor_masks(modal, "modal"), SIZE, region, 1.0)


# -- zoom crops and paste-backs ---------------------------------------------------------------------------------

def test_crop_and_paste_back_are_exact_inside_and_padded_outside():
    x = torch.arange(5 * 6, dtype=torch.float32).view(1, 5, 6)
    box = Box(top=-2, left=3, height=4, width=5)  # reaches past the top and the right edge
    crop = box.crop(x)
    assert crop.shape == (1, 4, 5)
    assert torch.equal(crop[0, 2:, :3], x[0, :2, 3:]) and crop[0, :2].eq(0).all() and crop[0, :, 3:].eq(0).all()
    replicated = box.crop(x, pad="replicate")
    assert torch.equal(replicated[0, 0, :3], x[0, 0, 3:]) and torch.equal(replicated[0, 2, 3:], x[0, 0, 5].expand(2))
    into = torch.full_like(x, -1.0)
    box.paste(crop, into)
    assert torch.equal(into[0, :2, 3:], x[0, :2, 3:]) and into[0, 2:].eq(-1).all() and into[0, :, :3].eq(-1).all()
    rgb = torch.rand(2, 5, 6, 3)
    assert torch.equal(box.crop(rgb, spatial="channels_last")[:, 2:, :3], rgb[:, :2, 3:])


def test_object_box_keeps_the_processing_aspect_and_centres_the_object():
    box = object_box((10, 20, 30, 30), (256, 512), context=1.0, max_zoom=100)  # extent 20 x 10 px
    assert (box.height, box.width) == (40, 80)  # 2 x 20 high, widened to 2:1
    assert box.top + box.height / 2 == 20 and box.left + box.width / 2 == 25
    assert object_box((0, 0, 2, 2), (256, 512), context=0.0, max_zoom=4).size == (64, 128)  # zoom limit


def test_object_at_a_frame_corner_is_padded_never_stretched():
    rgb, modal, amodal, colours = disk_clip(height=90, width=172, centre=(5, 4), radius=12, bar=(150, 160))
    box = boxes_for(modal, "object")[0]
    assert box.top < 0 and box.left < 0 and box.width == 2 * box.height  # past the corner, 2:1
    truth = oracle_mask_frames(amodal, [box], SIZE)
    result = predict_amodal_masks(OracleSampler(truth), modal, torch.rand(3, 90, 172), SIZE, region="object",
                                  mask_upscale="reference")
    rows, cols, crop_rows, crop_cols = box.inside((90, 172))
    expected = torch.zeros(3, 90, 172, dtype=torch.bool)
    expected[:, rows, cols] = C.resize_masks_nearest(result.masks_processed[0], box.size)[:, crop_rows, crop_cols]
    assert torch.equal(result.masks[0], expected | modal[0])
    assert not result.masks[0, :, 40:, 60:].any(), "nothing is pasted outside the crop"


# -- stage 1: upscaling modes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("frame", [(90, 172), (37, 61), (256, 512), (1080, 1920)])
def test_reference_upscaling_equals_opencv_nearest(frame):
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    torch.manual_seed(0)
    modal = torch.zeros(1, 2, *frame, dtype=torch.bool)
    frames = torch.rand(1, 2, 3, *SIZE)
    result = predict_amodal_masks(OracleSampler(frames), modal, torch.rand(2, *frame), SIZE, mask_upscale="reference")
    for t in range(2):
        small = result.masks_processed[0, t].numpy().astype(np.uint8)
        expected = cv2.resize(small, (frame[1], frame[0]), interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(result.masks[0, t].numpy(), expected.astype(bool))


def test_smooth_upscaling_follows_the_true_edge_better():
    rgb, modal, amodal, _ = disk_clip(height=360, width=720, centre=(180, 250), radius=110, bar=(300, 340))
    truth = oracle_mask_frames(amodal, boxes_for(modal, "frame"), SIZE)
    depth = torch.rand(3, 360, 720)
    errors = {}
    for mode in ("smooth", "reference"):
        masks = predict_amodal_masks(OracleSampler(truth), modal, depth, SIZE, mask_upscale=mode).masks
        assert bool((masks | ~modal).all()), "every visible pixel is kept"
        errors[mode] = (masks ^ amodal).sum().item()
    assert errors["smooth"] < 0.8 * errors["reference"], errors


def test_object_region_recovers_a_small_object_better():
    rgb, modal, amodal, _ = disk_clip(height=540, width=960, centre=(300, 500), radius=12, bar=(495, 503))
    depth = torch.rand(3, 540, 960)
    iou = {}
    for region in ("frame", "object"):
        boxes = boxes_for(modal, region)
        masks = predict_amodal_masks(OracleSampler(oracle_mask_frames(amodal, boxes, SIZE)), modal, depth, SIZE,
                                     region=region).masks
        iou[region] = ((masks & amodal).sum() / (masks | amodal).sum()).item()
    assert iou["object"] > 0.95 and iou["object"] > iou["frame"] + 0.05, iou


# -- stage 2: visible pixels, colour matching -------------------------------------------------------------------

@pytest.mark.parametrize("region", ["frame", "object"])
def test_visible_pixels_are_the_footage_exactly(region):
    rgb, modal, amodal, colours = disk_clip()
    boxes = boxes_for(modal, region)
    frames = oracle_rgb_frames(colours, amodal, boxes, SIZE)
    result = complete_content(OracleSampler(frames), rgb, modal, amodal, SIZE, region=region)
    out = result.rgb[0]
    assert torch.equal(out[modal[0]], rgb[modal[0]])
    assert out[~amodal[0]].eq(1.0).all(), "white outside the object"
    assert torch.equal(result.alpha[0], amodal[0] | modal[0])


def test_colour_matching_removes_a_gain_offset():
    rgb, modal, amodal, colours = disk_clip(height=180, width=344, centre=(90, 120), radius=60, bar=(140, 180))
    boxes = boxes_for(modal, "frame")
    hidden = amodal[0] & ~modal[0]
    core = hidden.clone()
    core[:, :, :146] = False  # away from the blended border
    core[:, :, 174:] = False
    core[:, :60] = False  # and away from the outline, where the low-res render mixes in the white outside
    core[:, 120:] = False
    for keep, limit in ((False, None), (True, 0.05)):  # 0.05: the 5x-downsampled render's own error
        frames = oracle_rgb_frames(colours, amodal, boxes, SIZE, gain=0.7)
        out = complete_content(OracleSampler(frames), rgb, modal, amodal, SIZE, keep_visible_pixels=keep).rgb[0]
        ratio = out[core].mean(dim=0) / colours[0][core].mean(dim=0)
        if keep:
            assert (ratio - 1).abs().max() < limit, ratio
        else:
            assert (ratio < 0.85).all(), ratio  # the render as it is: 0.7 darker (white bleeds in at the edge)


def test_colour_gains_by_hand():
    footage = torch.full((2, 8, 8, 3), 0.5)
    render = torch.full((2, 8, 8, 3), 0.25)
    visible = torch.zeros(2, 8, 8, dtype=torch.bool)
    visible[:, :, :5] = True
    hidden = ~visible
    hidden[1] = False  # frame 1 has no border: it takes the clip's mean gain
    gains = colour_gains(footage, render, visible, hidden, band=2)
    assert torch.allclose(gains, torch.full((2, 3), 2.0))


# -- 4K through the nodes ---------------------------------------------------------------------------------------

def test_a_4k_clip_runs_through_the_nodes():
    from diffusion_vas.nodes import loader, stages

    frames, height, width = 2, 2160, 3840
    rgb, modal, _, _ = disk_clip(frames=frames, height=height, width=width, centre=(1000, 1800), radius=300,
                                 bar=(1900, 2000))
    depth = torch.linspace(0, 1, width).expand(frames, height, width)[..., None].expand(-1, -1, -1, 3)
    model1 = loader.DiffusionVASLoader().load(model=str(TINY.stage1), precision="fp32")[0]
    model2 = loader.DiffusionVASLoader().load(model=str(TINY.stage2), precision="fp32")[0]
    fast = dict(steps=1, width=128, height=64, seed=1)
    masks, probability = stages.AmodalMaskSVD().predict(model1, modal[0].float(), depth, region="object", **fast)[:2]
    assert masks.shape == (frames, height, width) and probability.shape == (frames, height, width, 3)
    assert bool((masks.bool() | ~modal[0]).all())
    images, alpha = stages.AmodalContentSVD().complete(model2, rgb, modal[0].float(), masks, **fast)[:2]
    assert images.shape == (frames, height, width, 3) and torch.equal(alpha.bool(), masks.bool())
    assert torch.equal(images[modal[0]], rgb[modal[0]])


# -- pseudo-depth at the processing size ------------------------------------------------------------------------

def test_pseudo_depth_processing_equals_the_network_on_resized_frames():
    import torch.nn.functional as F

    from diffusion_vas.models.depth.estimator import load_depth_model, normalize_depth
    from diffusion_vas.models.depth.resolution import resize_frames
    from diffusion_vas.nodes.depth import PseudoDepth

    torch.manual_seed(0)
    images = torch.rand(2, 90, 172, 3)
    common = dict(model=str(TINY.depth), normalization="clip", batch_size=2, precision="fp32", input_size=28)
    node = PseudoDepth()
    (depth,) = node.estimate(images, depth_from="processing", width=64, height=32, **common)
    estimator = load_depth_model(TINY.depth, "cpu", torch.float32)
    small = resize_frames(images, (32, 64))
    assert torch.equal(small[0], F.interpolate(images.permute(0, 3, 1, 2), size=(32, 64), mode="bilinear",
                                               align_corners=False).permute(0, 2, 3, 1)[0].clamp(0, 1))
    raw = estimator.predict(small, 2, None, 28)
    expected = normalize_depth(F.interpolate(raw[:, None], size=(90, 172), mode="bilinear",
                                             align_corners=False)[:, 0], "clip")
    assert depth.shape == (2, 90, 172, 3)
    assert torch.allclose(depth[..., 0], expected, atol=1e-6)
    (full,) = node.estimate(images, depth_from="input", **common)
    assert torch.allclose(full[..., 0], normalize_depth(estimator.predict(images, 2, None, 28), "clip"), atol=1e-6)
    assert not torch.allclose(full, depth, atol=1e-3), "the two resolutions give different depth"


# -- command line at scale --------------------------------------------------------------------------------------

def test_cli_keeps_source_frame_names_and_refuses_a_full_output_folder(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from diffusion_vas.commands import main

    frames, masks, depth = tmp_path / "frames", tmp_path / "masks", tmp_path / "depth"
    for folder in (frames, masks, depth):
        folder.mkdir()
    for t in range(6):
        Image.fromarray(np.full((32, 64, 3), 40 * t, np.uint8)).save(frames / f"shot_{t + 100}.png")
        mask = np.zeros((32, 64), np.uint8)
        mask[4:14, 6 + t:20 + t] = 255
        Image.fromarray(mask).save(masks / f"shot_{t + 100}.png")
        Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (32, 1))).save(depth / f"d{t}.png")
    out = tmp_path / "out"
    args = ["run", "--frames", str(frames), "--masks", str(masks), "--out", str(out), "--stage1", str(TINY.stage1),
            "--depth", str(depth), "--steps", "1", "--size", "32x64", "--masks-only", "--quiet", "--start", "2",
            "--every", "2", "--region", "object", "--mask-upscale", "reference"]
    assert main(args) == 0
    written = sorted(p.name for p in (out / "obj0" / "amodal_masks").glob("*.png"))
    assert written == ["shot_102.png", "shot_104.png"], "results are named after their source frames"
    capsys.readouterr()
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "not empty" in error and "--overwrite" in error
    assert main(args + ["--overwrite"]) == 0


# -- lean conditions: the chunked, in-place paths give the reference's values -------------------------------------

@pytest.mark.parametrize("frame", [(90, 172), (64, 128), (270, 481), (37, 2000)])
def test_frame_conditions_equal_the_reference_arithmetic(frame):
    """Depth normalized a frame at a time in place, masks binarized per chunk and resized on threads, footage
    converted per frame: the same values as the reference's whole-clip functions in `conditions`."""
    g = torch.Generator().manual_seed(frame[1])
    depth = torch.rand(9, *frame, generator=g) * 7 - 2
    modal = torch.rand(1, 9, *frame, generator=g)
    rgb = torch.rand(9, *frame, 3, generator=g)
    box = [Box(0, 0, *frame)]
    size = (64, 128)
    depth_store, _ = amodal_stage.depth_store(TensorDepth(depth), box, size, torch.device("cpu"))
    assert torch.equal(depth_store[0].unsqueeze(1).repeat(1, 3, 1, 1), C.depth_condition(depth, size))
    modal_store = amodal_stage.modal_store(tensor_masks(modal, "modal"), box, size)
    assert torch.equal(amodal_stage.modal_pixels(modal_store[0]), C.modal_condition(modal[0], size))
    conditions = content_stage.prepare(TensorFrames(rgb), tensor_masks(modal, "modal"), tensor_masks(modal > 0.7, "a"),
                                       box, size)
    video, _ = conditions.videos()
    assert torch.equal(video.row(0), C.modal_rgb_condition(rgb, C.modal_condition(modal[0], size)))


def test_grey_depth_image_is_used_as_a_view_and_colour_depth_as_the_channel_mean(caplog):
    from diffusion_vas.nodes.adapters import depth_image_frames

    grey = torch.rand(3, 20, 30)
    image = grey[..., None].expand(-1, -1, -1, 3)
    assert depth_image_frames(image, (20, 30), "test").data_ptr() == image.data_ptr()
    coloured = torch.rand(3, 20, 30, 3)
    with caplog.at_level("WARNING"):
        assert torch.equal(depth_image_frames(coloured, (20, 30), "test"), coloured.mean(dim=-1))
    assert "coloured" in caplog.text
    with pytest.raises(ValueError, match="NaN"):
        depth_image_frames(image.clone().index_fill_(1, torch.tensor([3]), float("nan")), (20, 30), "test")


def test_float32_masks_are_read_with_the_reference_rule_by_one_comparison():
    """``x >= FLOAT32_ON`` decides exactly what the reference's ``round(x * 255) > 128`` decides: every float32
    within 2^16 ulps of the cutoff, the 8-bit levels, and values outside 0..1."""
    from diffusion_vas.models.base.chunking import FLOAT32_ON

    cutoff = torch.tensor([FLOAT32_ON]).view(torch.int32)
    near = (cutoff + torch.arange(-65536, 65536, dtype=torch.int32)).view(torch.float32)
    levels = torch.arange(256) / 255
    values = torch.cat([near, levels, torch.tensor([-1.0, 0.0, 2.0, 1e9])])
    reference = C.binarize_masks(values[None, None]).bool()[0, 0]
    assert torch.equal(MaskFormat(values, "m").on(values), reference)
    assert torch.equal(MaskFormat(values, "m").on(values.double()), reference)


def test_bounding_box_of_every_frame_with_a_margin():
    from diffusion_vas.models.base.chunking import bounding_box

    mask = torch.zeros(2, 3, 10, 12, dtype=torch.bool)
    assert bounding_box(mask) is None
    mask[0, 1, 2, 3] = mask[1, 2, 6, 9] = True
    assert bounding_box(mask) == (slice(2, 7), slice(3, 10))
    assert bounding_box(mask, margin=3) == (slice(0, 10), slice(0, 12))
    assert bounding_box(mask[0, 1]) == (slice(2, 3), slice(3, 4))


@pytest.mark.parametrize("cell, height, width", [(1, 5, 7), (2, 9, 13), (4, 16, 20), (4, 13, 18), (5, 23, 11)])
def test_blend_upsampling_equals_bilinear_interpolation(cell, height, width):
    """The blend's cell grid comes back at the input size, columns once and rows strip by strip (strips of whole
    cells, as the compositing takes them), phase by phase: equal to F.interpolate (bilinear, half-pixel centres)
    at the exact cell factor, cropped."""
    grid = torch.rand(2, 3, -(-height // cell), -(-width // cell), generator=torch.Generator().manual_seed(cell))
    expected = torch.nn.functional.interpolate(grid, scale_factor=cell, mode="bilinear",
                                               align_corners=False)[:, :, :height, :width]
    padded = torch.cat([grid[:, :, :1], grid, grid[:, :, -1:]], dim=2)  # the edge rows repeated
    got = torch.full((2, 3, height, width), float("nan"))
    for start in range(0, height, 2 * cell):
        stop = min(start + 2 * cell, height)
        first = start // cell
        wide = _columns_upsampled(padded[:, :, first:first + 4], cell, width)
        for rows, values in upsampled_rows(wide, cell, stop - start):
            got[:, :, start:stop][:, :, rows] = values
    assert torch.allclose(got, expected, atol=1e-6)


def test_compose_cost_does_not_depend_on_how_ragged_the_masks_are():
    """Fragmented masks (noise, as hair or foliage) compose with the same arithmetic per pixel as clean ones: the
    visible footage exactly, white outside, and every hidden pixel the gain-matched render blended towards the
    visible colours nearby (between the two, never outside their range)."""
    generator = torch.Generator().manual_seed(3)
    t, h, w = 2, 40, 72
    visible = torch.rand(t, h, w, generator=generator) > 0.6
    amodal = visible | (torch.rand(t, h, w, generator=generator) > 0.5)
    footage = torch.rand(t, h, w, 3, generator=generator)
    render = (torch.rand(t, h, w, 3, generator=generator) * 255).to(torch.uint8)
    out = compose_chunk(torch.empty(t, h, w, 3), render, footage, visible, amodal, torch.ones(t, 3))
    assert torch.equal(out[visible], footage[visible])
    assert out[~(amodal | visible)].eq(1.0).all()
    hidden = amodal & ~visible
    low = torch.minimum(render.float() / 255, footage[visible].min(dim=0).values)
    high = torch.maximum(render.float() / 255, footage[visible].max(dim=0).values)
    assert (out[hidden] >= low[hidden] - 1e-6).all() and (out[hidden] <= high[hidden] + 1e-6).all()


@pytest.mark.parametrize("seed, centre", [(0, (30, 50)), (1, (3, 4)), (2, (57, 95))])
def test_the_blend_window_around_the_visible_part_changes_nothing(monkeypatch, seed, centre):
    """The blend's grid is built only around the visible pixels (`WINDOW_CELLS` cells wider): with hidden pixels
    scattered over the whole frame (stage 1's fragmented masks) and a compact visible part (also at the frame's
    corners), the result equals, bit for bit, the blend over the whole region of hidden pixels."""
    from diffusion_vas.models.stages import content_blend

    generator = torch.Generator().manual_seed(seed)
    t, h, w = 2, 61, 101
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    visible = (((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) < 64).expand(t, h, w).clone()
    visible[1] = visible[1].roll(3, dims=1)
    amodal = visible | (torch.rand(t, h, w, generator=generator) > 0.7)
    footage = (torch.rand(t, h, w, 3, generator=generator) * 255).to(torch.uint8)
    render = (torch.rand(t, h, w, 3, generator=generator) * 255).to(torch.uint8)
    gains = 0.8 + 0.4 * torch.rand(t, 3, generator=generator)
    windowed = compose_chunk(torch.empty(t, h, w, 3), render, footage, visible, amodal, gains)
    monkeypatch.setattr(content_blend, "WINDOW_CELLS", None)
    whole = compose_chunk(torch.empty(t, h, w, 3), render, footage, visible, amodal, gains)
    assert torch.equal(windowed, whole)
    far = ~dilate(visible, 16) & amodal  # hidden pixels far from the visible part: the plain matched render
    assert far.any() and torch.equal(windowed[far], (render.float() * (gains / 255)[:, None, None]).clamp(0, 1)[far])


def test_compose_into_uint8_is_the_rounded_float_result():
    """Composed straight into uint8 (the RGB of a file's RGBA buffer, a strided view): exactly the float result
    times 255, rounded; white is 255."""
    generator = torch.Generator().manual_seed(5)
    t, h, w = 2, 70, 90
    visible = torch.rand(t, h, w, generator=generator) > 0.7
    amodal = visible.clone()
    amodal[:, 10:60, 20:80] |= torch.rand(t, 50, 60, generator=generator) > 0.3
    footage = (torch.rand(t, h, w, 3, generator=generator) * 255).to(torch.uint8)
    render = (torch.rand(t, h, w, 3, generator=generator) * 255).to(torch.uint8)
    gains = torch.tensor([[1.2, 0.9, 1.0], [0.8, 1.1, 1.3]])
    floats = compose_chunk(torch.empty(t, h, w, 3), render, footage, visible, amodal, gains)
    rgba = torch.zeros(t, h, w, 4, dtype=torch.uint8)
    compose_chunk(rgba[..., :3], render, footage, visible, amodal, gains)
    assert torch.equal(rgba[..., :3], (floats * 255).round().to(torch.uint8))
    assert rgba[..., 3].eq(0).all()  # the alpha byte untouched
    assert torch.equal(rgba[..., :3][visible], footage[visible])
