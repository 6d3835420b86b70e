"""Amodal metrics on hand-built masks with known answers: the paper protocol, the strict one, completion."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_vas.models.evaluation.metrics import completion_metrics, erode, paper_protocol, strict_protocol

H, W = 20, 20
EPS = 1e-6  # the paper's union epsilon


def cols(first: int, last: int) -> torch.Tensor:
    """A [H, W] mask on in columns first..last (inclusive), all rows: rows touch the border, so the 5x5
    erosion only eats 2 columns from each side that is inside the frame."""
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[:, first:last + 1] = True
    return mask


def clip_a():
    """Five frames of an object in columns 0..13 (280 px).

    0: partly hidden (visible 0..3), perfect prediction. Occluded region 4..13, eroded 6..11 (120 px).
    1: partly hidden, prediction = visible part only (complete miss of the hidden part).
    2: partly hidden, prediction 0..8 (180 px); its occluded region 4..8 erodes to column 6 (20 px).
    3: fully hidden (nothing visible), prediction 0..6 (140 px); occluded regions erode to 0..11 and 0..4.
    4: not hidden at all, perfect prediction.
    """
    amodal = cols(0, 13).expand(5, H, W).clone()
    modal = torch.stack([cols(0, 3)] * 3 + [torch.zeros(H, W, dtype=torch.bool), cols(0, 13)])
    pred = torch.stack([cols(0, 13), cols(0, 3), cols(0, 8), cols(0, 6), cols(0, 13)])
    return pred, amodal, modal


def clip_b():
    """One partly hidden frame (visible 0..3); the prediction drops visible columns 0..1 but gets the hidden
    part exactly. The paper protocol ORs the visible mask back in; the strict one scores what was predicted."""
    return cols(2, 13)[None], cols(0, 13)[None], cols(0, 3)[None]


def both_clips():
    (pa, aa, ma), (pb, ab, mb) = clip_a(), clip_b()
    return [pa, pb], [aa, ab], [ma, mb]


def test_erosion_square_and_border():
    assert torch.equal(erode(cols(4, 13)), cols(6, 11))
    assert torch.equal(erode(cols(0, 13)), cols(0, 11)), "outside the image counts as on"
    assert not erode(cols(4, 7)).any(), "a region narrower than 5 pixels disappears"
    assert torch.equal(erode(cols(4, 7), 1), cols(4, 7))
    with pytest.raises(ValueError, match="odd"):
        erode(cols(0, 3), 4)


def test_erosion_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    masks = torch.rand(4, 23, 31, generator=torch.Generator().manual_seed(0)) > 0.25
    kernel = np.ones((5, 5), np.uint8)
    expected = np.stack([cv2.erode(m.numpy().astype(np.uint8), kernel) for m in masks]).astype(bool)
    assert torch.equal(erode(masks), torch.from_numpy(expected))


def test_paper_protocol_known_answer():
    result = paper_protocol(*both_clips())
    # full-mask IoU pooled over all 6 frames (the 1e-6 sits in the denominator)
    expected_miou = (280 + 80 + 180 + 140 + 280 + 280) / (6 * (280 + EPS))
    # occluded IoU of frames 0, 2, 3 of clip A and clip B; frame 1 (miss) and frame 4 (nothing hidden) dropped
    expected_occ = (120 / (120 + EPS) + 20 / (120 + EPS) + 100 / (240 + EPS) + 120 / (120 + EPS)) / 4
    assert result["miou"] == pytest.approx(expected_miou, rel=1e-12)
    assert result["miou_occ"] == pytest.approx(expected_occ, rel=1e-12)
    assert (result["frames"], result["frames_occ_scored"], result["frames_occ_dropped"]) == (6, 4, 2)
    assert result["frames_occ_missed"] == 1


def test_strict_protocol_known_answer():
    result = strict_protocol(*both_clips())
    clip_a_miou, clip_b_miou = (1 + 2 / 7 + 9 / 14 + 1 / 2 + 1) / 5, 240 / 280
    assert result["miou"] == pytest.approx((clip_a_miou + clip_b_miou) / 2)
    assert result["miou_occ"] == pytest.approx(((1 + 0 + 1 / 6 + 5 / 12) / 4 + 1) / 2)
    assert result["miou_partial"] == pytest.approx(((1 + 2 / 7 + 9 / 14) / 3 + 6 / 7) / 2)
    assert result["miou_occ_partial"] == pytest.approx(((1 + 0 + 1 / 6) / 3 + 1) / 2)
    assert result["miou_full"] == pytest.approx(1 / 2)  # only clip A has a fully hidden frame
    assert result["miou_occ_full"] == pytest.approx(5 / 12)
    assert result["miou_unoccluded"] == pytest.approx(1.0)
    assert result["miss_rate_occ"] == pytest.approx((1 / 4 + 0) / 2)
    assert (result["clips"], result["frames"], result["frames_occluded"]) == (2, 6, 5)
    assert (result["frames_partial"], result["frames_full"]) == (4, 1)
    first, second = result["per_clip"]
    assert first["miou"] == pytest.approx(clip_a_miou) and second["miou"] == pytest.approx(clip_b_miou)
    assert math.isnan(second["miou_full"]) and second["frames_full"] == 0


def test_complete_miss_is_where_the_protocols_disagree():
    """Two partly hidden frames: one perfect, one with the hidden part missed completely."""
    amodal = cols(0, 13).expand(2, H, W).clone()
    modal = cols(0, 3).expand(2, H, W).clone()
    pred = torch.stack([cols(0, 13), cols(0, 3)])
    paper, strict = paper_protocol([pred], [amodal], [modal]), strict_protocol([pred], [amodal], [modal])
    assert paper["miou_occ"] == pytest.approx(1.0)  # the miss is dropped
    assert paper["frames_occ_missed"] == 1
    assert strict["miou_occ"] == pytest.approx(0.5)  # the miss counts 0
    assert strict["miss_rate_occ"] == pytest.approx(0.5)
    assert paper["miou"] == pytest.approx(strict["miou"], rel=1e-6) == pytest.approx((1 + 80 / 280) / 2)


def test_invented_hidden_part_only_the_strict_protocol_sees():
    """Nothing is hidden, but the prediction adds pixels: the paper drops the frame from miou_occ."""
    amodal, modal = cols(0, 9)[None], cols(0, 9)[None]
    pred = cols(0, 17)[None]
    paper, strict = paper_protocol([pred], [amodal], [modal]), strict_protocol([pred], [amodal], [modal])
    assert math.isnan(paper["miou_occ"]) and paper["frames_occ_missed"] == 0
    assert strict["frames_occluded"] == 0 and math.isnan(strict["miou_occ"])
    assert strict["miou_unoccluded"] == pytest.approx(200 / 360)


def test_pooling_differs_with_clip_length():
    """Paper pools frames (a long clip weighs more); strict averages clips."""
    long_good = (cols(0, 13).expand(3, H, W), cols(0, 13).expand(3, H, W), cols(0, 3).expand(3, H, W))
    short_bad = (cols(0, 3)[None], cols(0, 13)[None], cols(0, 3)[None])
    args = [list(x) for x in zip(long_good, short_bad)]
    assert paper_protocol(*args)["miou"] == pytest.approx((3 + 80 / 280) / 4, rel=1e-6)
    assert strict_protocol(*args)["miou"] == pytest.approx((1 + 80 / 280) / 2)


def test_empty_frames_and_input_forms():
    empty = torch.zeros(1, H, W, dtype=torch.bool)
    assert paper_protocol([empty], [empty], [empty])["miou"] == 0.0  # 0 / (0 + 1e-6)
    assert strict_protocol([empty], [empty], [empty])["miou"] == 1.0  # nothing there, nothing predicted
    pred, amodal, modal = clip_a()
    as_lists = strict_protocol([pred], [amodal], [modal])
    as_tensors = strict_protocol(pred.float(), amodal.to(torch.uint8) * 255, modal)
    assert as_lists["miou"] == as_tensors["miou"] and as_lists["miou_occ"] == as_tensors["miou_occ"]


def test_strict_without_erosion():
    pred, amodal, modal = clip_a()
    result = strict_protocol([pred[2:3]], [amodal[2:3]], [modal[2:3]], erosion=1)
    assert result["miou_occ"] == pytest.approx(100 / 200)  # columns 4..8 of 4..13


def test_metric_input_errors():
    pred, amodal, modal = clip_a()
    with pytest.raises(ValueError, match="numbers of clips"):
        paper_protocol([pred, pred], [amodal], [modal])
    with pytest.raises(ValueError, match=r"Clip 0.*same \[T, H, W\]"):
        strict_protocol([pred[:, :10]], [amodal], [modal])
    with pytest.raises(ValueError, match=r"amodal\[0\] must be a \[T, H, W\] mask"):
        paper_protocol([pred], [amodal[0]], [modal])
    with pytest.raises(ValueError, match="non-empty list"):
        paper_protocol([], [], [])


# -- completion -------------------------------------------------------------------------------------------------

def _colours(seed: int = 0, frames: int = 3) -> torch.Tensor:
    return torch.rand(frames, H, W, 3, generator=torch.Generator().manual_seed(seed)) * 0.8


def test_completion_identical_and_known_psnr():
    truth, region = _colours(), cols(5, 12).expand(3, H, W)
    same = completion_metrics([truth], [truth], [region])
    assert same["psnr"] == pytest.approx(100.0) and same["ssim"] == pytest.approx(1.0) and same["frames"] == 3
    off = truth + 0.1 * region[..., None]  # error 0.1 everywhere in the region: mse 0.01
    assert completion_metrics([off], [truth], [region])["psnr"] == pytest.approx(20.0)


def test_completion_ignores_colours_outside_the_region():
    truth, region = _colours(), cols(5, 12).expand(3, H, W)
    pred = truth + 0.05 * region[..., None]
    garbage_outside = torch.where(region[..., None], pred, _colours(seed=1))
    a, b = completion_metrics([pred], [truth], [region]), completion_metrics([garbage_outside], [truth], [region])
    assert a["psnr"] == pytest.approx(b["psnr"]) and a["ssim"] == pytest.approx(b["ssim"])
    assert a["ssim"] < 1.0


def test_completion_ssim_of_flat_colours():
    """Flat images: SSIM reduces to its luminance term (2xy + C1) / (x^2 + y^2 + C1)."""
    truth, pred = torch.full((1, H, W, 3), 0.5), torch.full((1, H, W, 3), 0.6)
    result = completion_metrics([pred], [truth], [torch.ones(1, H, W, dtype=torch.bool)])
    c1 = 0.01**2
    assert result["ssim"] == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1))


def test_completion_skips_frames_without_region_and_pools():
    truth = _colours(frames=2)
    region = torch.stack([cols(5, 12), torch.zeros(H, W, dtype=torch.bool)])
    pred = truth + 0.1 * region[..., None]
    u8 = lambda x: (x * 255).round().to(torch.uint8)  # noqa: E731
    result = completion_metrics([pred, u8(truth)], [truth, u8(truth)], [region, cols(0, 3)[None].expand(2, H, W)])
    assert result["frames"] == 3 and [c["frames"] for c in result["per_clip"]] == [1, 2]
    assert result["psnr"] == pytest.approx((20 + 100 + 100) / 3, rel=1e-4)
    with pytest.raises(ValueError, match=r"pred_rgb\[0\] must be \[T, H, W, 3\]"):
        completion_metrics([pred[..., 0]], [truth], [region])


# -- oracle Top-K ---------------------------------------------------------------------------------------------

def test_oracle_choice_fixed_weights_is_each_clips_best():
    from diffusion_vas.models.evaluation.metrics import oracle_choice

    # frame-pooled means (value x frames, frames): each clip keeps its frame count whatever the sample
    terms = [[(0.5 * 3, 3), (0.9 * 3, 3), (0.9 * 3, 3)], [(0.8, 1), (0.2, 1), (0.1, 1)], [(0, 0), (0, 0), (0, 0)]]
    assert oracle_choice(terms) == [1, 0, 0]  # ties keep the lower index; an undefined clip keeps sample 0
    assert oracle_choice([[(2.0, 4)]]) == [0] and oracle_choice([]) == []


def test_oracle_choice_with_weights_that_depend_on_the_sample():
    """The paper's miou_occ pools only the frames a prediction scores above zero, so a clip's weight changes with
    the sample: each clip's best alone can lower the pooled figure; the oracle maximises the pooled one."""
    import itertools
    import random

    from diffusion_vas.models.evaluation.metrics import oracle_choice

    # clip A: sample 0 = 0.9 over 10 frames, sample 1 = 0.95 over 1 frame; clip B: 0.1 over 10 frames
    # A's best alone (sample 1) pools (0.95 + 1) / 11 = 0.177 < Top-1's (9 + 1) / 20 = 0.5: the oracle keeps 0
    assert oracle_choice([[(9.0, 10), (0.95, 1)], [(1.0, 10), (1.0, 10)]]) == [0, 0]
    # clip A: 0.5 over 10 or 0.6 over 1; clip B: 0.9 over 10: (0.6 + 9) / 11 = 0.873 > (5 + 9) / 20 = 0.7
    assert oracle_choice([[(5.0, 10), (0.6, 1)], [(9.0, 10), (9.0, 10)]]) == [1, 0]
    # a sample with no scored frame at all (0, 0) drops the clip from the pool: (9) / 10 = 0.9 is the best
    assert oracle_choice([[(5.0, 10), (0.0, 0)], [(9.0, 10), (9.0, 10)]]) == [1, 0]
    rng = random.Random(0)
    for _ in range(200):  # exhaustive search over every choice agrees, and the result is never below Top-1
        terms = []
        for _ in range(rng.randint(1, 4)):
            clip = []
            for _ in range(rng.randint(1, 3)):
                frames = rng.randint(0, 6)
                clip.append((rng.random() * frames, frames))
            terms.append(clip)

        def pooled(picks):
            den = sum(terms[c][k][1] for c, k in enumerate(picks))
            return sum(terms[c][k][0] for c, k in enumerate(picks)) / den if den else -1.0

        best = max(pooled(p) for p in itertools.product(*(range(len(c)) for c in terms)))
        got = pooled(oracle_choice(terms))
        assert got == pytest.approx(best, abs=1e-12) and got >= pooled([0] * len(terms)) - 1e-12


def test_oracle_top_k_of_the_paper_occluded_iou_never_below_top1():
    """Masks where clip A's best sample on its own would lower the pooled paper miou_occ below Top-1."""
    from diffusion_vas.models.evaluation.metrics import top_k_scores

    amodal, modal = torch.stack([cols(0, 13)] * 4), torch.stack([cols(0, 3)] * 4)
    perfect, visible = cols(0, 13), cols(0, 3)
    half = cols(0, 8)  # occluded region 4..8 erodes to column 6: 20 of the 120 hidden pixels, IoU 1/6
    clip_a = torch.stack([torch.stack([perfect, perfect, perfect, half]),  # 1, 1, 1, 1/6: 3 + 1/6 over 4 frames
                          torch.stack([perfect, visible, visible, visible])])  # 1 over 1 frame (misses dropped)
    clip_b = torch.stack([torch.stack([half] * 4)] * 2)  # 4/6 over 4 frames, both samples
    alone = [paper_protocol([s], [amodal], [modal])["miou_occ"] for s in clip_a]
    assert alone == pytest.approx([(3 + 1 / 6) / 4, 1.0], abs=1e-6)  # alone, sample 1 is clip A's best ...
    scores = top_k_scores([clip_a, clip_b], [amodal, amodal], [modal, modal])
    top1 = scores["top1"]["paper"]["miou_occ"]
    assert top1 == pytest.approx((3 + 1 / 6 + 4 / 6) / 8, abs=1e-6)
    # ... but pooled with clip B it gives (1 + 4/6) / 5 = 0.333 < 0.479: the oracle keeps sample 0
    assert scores["oracle"]["paper"]["choice"]["miou_occ"] == [0, 0]
    assert scores["oracle"]["paper"]["miou_occ"] == pytest.approx(top1, abs=1e-12)
    assert scores["oracle"]["paper"]["choice"]["miou"] == [0, 0]  # full-mask IoU: sample 0 is better too


def test_completion_top_k_by_hand():
    from diffusion_vas.models.evaluation.metrics import completion_top_k

    truth = torch.zeros(2, 4, 4, 3)
    region = torch.zeros(2, 4, 4, dtype=torch.bool)
    region[:, 1:3, 1:3] = True

    def filled(value):
        return torch.full((2, 4, 4, 3), value)

    clip_a = torch.stack([filled(0.5), filled(0.1)])  # PSNR -20 log10(c): 6.02 dB, 20 dB
    clip_b = torch.stack([filled(0.1), filled(0.5)])
    scores = completion_top_k([clip_a, clip_b], [truth, truth], [region, region])
    low, high = -20 * math.log10(0.5), 20.0
    assert scores["samples"] == 2
    assert scores["top1"]["psnr"] == pytest.approx((low + high) / 2)
    assert scores["oracle"]["psnr"] == pytest.approx(high) and scores["oracle"]["choice"]["psnr"] == [1, 0]
    assert scores["oracle"]["ssim"] >= scores["top1"]["ssim"]
    with pytest.raises(ValueError, match=r"\[K, T, H, W, 3\]"):
        completion_top_k([truth], [truth], [region])
