"""Stage helpers reproduce the reference's conditions and post-processing exactly."""

from __future__ import annotations

import pytest
import torch

from diffusion_vas.models.stages import conditions as C


def test_modal_condition(parity_case):
    cond = C.modal_condition(parity_case["input/modal_mask_u8"], (64, 128))
    assert torch.equal(cond, parity_case["stage1/modal_pixels"])
    # the same masks as ComfyUI MASK floats (0/1) give the same condition
    assert torch.equal(C.modal_condition(parity_case["input/modal_mask_u8"].float() / 255, (64, 128)), cond)


def test_depth_condition(parity_case):
    cond = C.depth_condition(parity_case["input/depth_raw"], (64, 128))
    assert (cond - parity_case["stage1/depth_pixels"]).abs().max() <= 1e-6  # float rounding only


def test_amodal_threshold_and_nearest_resize(parity_case):
    amodal = C.frames_to_amodal(parity_case["stage1/frames_float"], parity_case["stage1/modal_pixels"])
    assert torch.equal(amodal.to(torch.uint8), parity_case["stage1/amodal_mask"])
    assert torch.equal(C.frames_to_uint8(parity_case["stage1/frames_float"]), parity_case["stage1/frames_u8"])
    full = C.resize_masks_nearest(amodal, (90, 172))
    assert torch.equal(full.to(torch.uint8), parity_case["stage1/amodal_mask_orig"])


def test_stage2_conditions(parity_case):
    modal = C.modal_condition(parity_case["input/modal_mask_u8"], (64, 128))
    rgb = C.modal_rgb_condition(parity_case["input/rgb_u8"], modal)
    assert torch.equal(rgb, parity_case["stage2/modal_rgb_pixels"])
    assert torch.equal(rgb, C.modal_rgb_condition(parity_case["input/rgb_u8"].float() / 255, modal))
    amodal = C.amodal_condition(parity_case["stage1/amodal_mask"])
    assert torch.equal(amodal, parity_case["stage2/amodal_mask_pixels"])


def test_rgb_back_to_input_size(parity_case):
    full = C.resize_frames_bilinear(parity_case["stage2/frames_u8"], (90, 172))
    diff = (full * 255 - parity_case["stage2/frames_orig_u8"].float()).abs()
    assert full.shape == (25, 90, 172, 3)
    assert diff.max() < 1.0  # OpenCV rounds its fixed-point result to uint8; this stays within one level


def test_constant_depth_is_not_nan():
    cond = C.depth_condition(torch.ones(3, 8, 8), (8, 8))
    assert torch.isfinite(cond).all() and cond.min() == -1


def test_mask_formats_agree():
    on = torch.zeros(2, 4, 4, dtype=torch.bool)
    on[:, 1:3, 1:3] = True
    expected = on.to(torch.uint8) * 255
    for masks in (on, on.to(torch.uint8), on.to(torch.uint8) * 255, on.float(), on.float() * 0.9):
        assert torch.equal(C.binarize_masks(masks), expected)


# Size pairs: up and down, integer and awkward ratios, the HD/4K sizes users bring, and 1-pixel axes.
NEAREST_SIZES = [((64, 128), (90, 172)), ((256, 512), (1080, 1920)), ((256, 512), (2160, 3840)),
                 ((256, 512), (720, 1280)), ((128, 256), (1080, 1920)), ((256, 512), (1080, 1440)),
                 ((256, 512), (1920, 1080)), ((90, 172), (64, 128)), ((1080, 1920), (256, 512)), ((7, 3), (50, 41)),
                 ((1, 5), (3, 17)), ((33, 65), (33, 65)), ((100, 100), (299, 301)), ((255, 511), (1080, 1921))]


def test_nearest_resize_is_opencv_inter_nearest():
    cv2 = __import__("pytest").importorskip("cv2")
    import numpy as np

    generator = torch.Generator().manual_seed(0)
    for src, dst in NEAREST_SIZES:
        masks = torch.rand(src, generator=generator) > 0.5
        expected = cv2.resize(masks.numpy().astype(np.uint8), dst[::-1], interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(C.resize_masks_nearest(masks, dst).numpy(), expected.astype(bool)), (src, dst)


def test_nearest_index_rule_by_hand():
    # OpenCV: min(floor(x * (1 / (dst / src))), src - 1); 3 -> 7: scale 3/7 -> 0,0,0,1,1,2,2
    assert C._nearest_indices(3, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]
    # 5 -> 2: scale 2.5 -> 0, 2
    assert C._nearest_indices(5, 2).tolist() == [0, 2]


def test_downsampling_undoes_the_nearest_upsampling():
    generator = torch.Generator().manual_seed(1)
    for src, dst in NEAREST_SIZES:
        masks = torch.rand(src, generator=generator) > 0.5
        if dst[0] >= src[0] and dst[1] >= src[1]:
            assert torch.equal(C.downsample_masks_nearest(C.resize_masks_nearest(masks, dst), src), masks), (src, dst)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_frame_conversion_in_row_bands_equals_to_uint8(dtype):
    """pil_resize converts a frame at a time in bands of rows: the same values as `to_uint8` on the whole clip,
    out-of-range values and exact halves (x * 255 = k + 0.5 rounds half to even) included."""
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(3, 300, 101, 3, generator=g) * 1.4 - 0.2)
    frames[:, 0, :4, 0] = torch.tensor([0.5, 1.5, 2.5, 254.5]) / 255
    frames = frames.to(dtype)
    expected = C.to_uint8(frames)
    for index in range(3):
        assert torch.equal(C._frame_to_uint8(frames[index], block=1000), expected[index])
        assert torch.equal(C._frame_to_uint8(frames[index, :, ::2]), expected[index, :, ::2])
    assert torch.equal(C.pil_resize(frames, (30, 20)), C.pil_resize(expected, (30, 20)))
