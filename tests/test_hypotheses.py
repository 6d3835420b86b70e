"""Several samples per object: sample k is a one-sample run with seed + k (objects and samples batched together),
consensus is the majority vote, agreement the fraction, K = 1 is unchanged, oracle Top-K is the best single-sample
score; SelectHypothesis and the stage nodes' new inputs/outputs; the hypotheses workflow."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import REPO

from diffusion_vas import NODE_CLASS_MAPPINGS
from diffusion_vas.nodes.bool_mask import BoolMask, as_mask
from diffusion_vas.models import SamplingOptions, complete_content, predict_amodal_masks
from diffusion_vas.models.engine.condition_video import as_condition_video
from diffusion_vas.models.evaluation.metrics import paper_protocol, strict_protocol, top_k_scores
from diffusion_vas.models.stages import hypotheses as H
from diffusion_vas.nodes.evaluate import EvaluateAmodal
from diffusion_vas.nodes.hypotheses import SelectHypothesis
from diffusion_vas.nodes.stages import AmodalContentSVD, AmodalMaskSVD

TOL = 1e-4  # batched vs one-row UNet arithmetic (same random draws), as tests/test_engine.py
WORKFLOW = REPO / "workflows" / "Diffusion-VAS hypotheses.json"


# -- pure tensors ------------------------------------------------------------------------------------------------

def test_consensus_is_the_strict_majority_and_keeps_visible_pixels():
    # one object, K = 3 samples, one frame of 1 x 4 pixels: votes 0, 1, 2, 3
    masks = torch.tensor([[[[0, 1, 1, 1]]], [[[0, 0, 1, 1]]], [[[0, 0, 0, 1]]]], dtype=torch.bool)
    assert H.consensus(masks, 3).tolist() == [[[[False, False, True, True]]]]
    visible = torch.tensor([[[[True, False, False, False]]]])
    assert H.consensus(masks, 3, visible).tolist() == [[[[True, False, True, True]]]]
    # K = 2: more than half means both
    assert H.consensus(masks[:2], 2).tolist() == [[[[False, False, True, True]]]]
    with pytest.raises(ValueError, match="one per object"):
        H.consensus(masks, 3, visible.expand(3, -1, -1, -1))


def test_agreement_is_the_fraction_and_rows_are_object_major():
    # N = 2 objects x K = 2 samples, 1 frame, 1 x 2 pixels; row n * K + k
    masks = torch.tensor([[[[1, 0]]], [[[1, 1]]], [[[0, 0]]], [[[0, 1]]]], dtype=torch.bool)
    assert H.agreement(masks, 2).tolist() == [[[[1.0, 0.5]]], [[[0.0, 0.5]]]]
    assert H.agreement(masks[:1], 1).tolist() == [[[[1.0, 0.0]]]]  # K = 1: the mask itself
    with pytest.raises(ValueError, match="not a multiple of samples=3"):
        H.agreement(masks, 3)


def test_select_picks_sample_k_of_every_object():
    n, k, t = 2, 3, 2
    batch = torch.arange(n * k * t, dtype=torch.float32).view(-1, 1, 1)  # frame value = its index
    picked = H.select(batch, n, k, 1)  # object 0's sample 1 = frames 2, 3; object 1's = frames 8, 9
    assert picked.flatten().tolist() == [2, 3, 8, 9]
    with pytest.raises(ValueError, match="out of range"):
        H.select(batch, n, k, 3)
    with pytest.raises(ValueError, match="not a multiple of objects x samples"):
        H.select(batch[:-1], n, k, 0)


def test_completion_pairs_hypotheses_with_samples():
    assert H.completion_samples(1, 3) == 3 and H.completion_samples(3, 1) == 3 and H.completion_samples(3, 3) == 3
    with pytest.raises(ValueError, match="set samples to 1 or 3"):
        H.completion_samples(3, 2)
    with pytest.raises(ValueError, match="same number of hypotheses"):
        H.hypotheses_per_object(5, 2)


def test_samples_option_is_validated():
    assert SamplingOptions().samples == 1
    with pytest.raises(ValueError, match="samples must be at least 1"):
        SamplingOptions(samples=0).validate()


def test_select_hypothesis_node():
    masks = torch.arange(12, dtype=torch.float32).view(12, 1, 1)  # N = 2, K = 3, T = 2
    images = masks[..., None].expand(-1, -1, -1, 3)
    picked_masks, picked_images = SelectHypothesis().select(objects=2, samples=3, index=2, masks=masks, images=images)
    assert picked_masks.flatten().tolist() == [4, 5, 10, 11]
    assert picked_images.shape == (4, 1, 1, 3) and picked_images[..., 0].flatten().tolist() == [4, 5, 10, 11]
    assert SelectHypothesis().select(objects=2, samples=3, index=0, masks=masks)[1].shape == (0, 1, 1, 3)
    assert SelectHypothesis().select(objects=2, samples=3, index=0, images=images)[0].shape == (0, 1, 1)
    bits = masks.view(12, 1, 1) % 2 == 1  # masks of a long shot, held as bool: picked as they are held
    (picked, _) = SelectHypothesis().select(objects=2, samples=3, index=2, masks=as_mask(bits))
    assert isinstance(picked, BoolMask) and picked.bits.flatten().tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="connect masks or images"):
        SelectHypothesis().select(objects=1, samples=3, index=0)
    with pytest.raises(ValueError, match="SelectHypothesis masks: index 3 is out of range"):
        SelectHypothesis().select(objects=2, samples=3, index=3, masks=masks)


# -- oracle Top-K ------------------------------------------------------------------------------------------------

def _frames(*rows: str) -> torch.Tensor:
    """One frame per string of '0'/'1' pixels (one image row each): ``[T, 1, W]`` bool."""
    return torch.tensor([[[c == "1" for c in row]] for row in rows])


def test_top_k_is_the_best_single_sample_score():
    # full-mask IoU on 1-pixel-high frames (the occluded figures, eroded 5x5, are checked on larger masks below)
    amodal, modal = _frames("1111", "1111"), _frames("1000", "1100")
    good, bad = _frames("1111", "1110"), _frames("1000", "1100")
    samples = torch.stack([bad, good])
    scores = top_k_scores([samples], [amodal], [modal])
    assert scores["samples"] == 2
    for name, protocol in (("paper", paper_protocol), ("strict", strict_protocol)):
        assert scores["top1"][name]["miou"] == protocol([bad], [amodal], [modal])["miou"]
        best = max(protocol([s], [amodal], [modal])["miou"] for s in samples)
        assert scores["oracle"][name]["miou"] == pytest.approx(best)
        assert scores["oracle"][name]["choice"]["miou"] == [1]
    # by hand (strict: |P & A| / |P | A| per frame): bad 1/4, 2/4 -> 0.375; good 1, 3/4 -> 0.875
    assert scores["top1"]["strict"]["miou"] == pytest.approx(0.375)
    assert scores["oracle"]["strict"]["miou"] == pytest.approx(0.875)


def test_top_k_chooses_per_clip():
    # two clips: sample 0 is right for clip A, sample 1 for clip B -> oracle is perfect, Top-1 is not
    size = 20
    amodal = torch.zeros(1, size, size, dtype=torch.bool)
    amodal[:, 2:18, 2:18] = True
    modal = amodal.clone()
    modal[:, :, 8:] = False  # the right part hidden (wide enough to survive the 5x5 erosion)
    wrong = modal.clone()  # predicts only the visible part
    clip_a = torch.stack([amodal, wrong])
    clip_b = torch.stack([wrong, amodal])
    scores = top_k_scores([clip_a, clip_b], [amodal, amodal], [modal, modal])
    strict = scores["oracle"]["strict"]
    assert strict["choice"]["miou_occ"] == [0, 1] and strict["miou_occ"] == pytest.approx(1.0)
    assert scores["top1"]["strict"]["miou_occ"] == pytest.approx(0.5)  # clip A perfect, clip B misses (0)
    paper = scores["oracle"]["paper"]
    assert paper["miou_occ"] == pytest.approx(1.0, abs=1e-6) and paper["choice"]["miou"] == [0, 1]
    one = top_k_scores([clip_a[:1], clip_b[:1]], [amodal, amodal], [modal, modal])  # K = 1: oracle = Top-1
    assert one["oracle"]["strict"]["miou"] == one["top1"]["strict"]["miou"]
    with pytest.raises(ValueError, match="same K"):
        top_k_scores([clip_a, clip_b[:1]], [amodal, amodal], [modal, modal])


def test_evaluate_node_reports_top1_and_oracle():
    size = 20
    amodal = torch.zeros(2, size, size)
    amodal[:, 2:18, 2:18] = 1
    modal = amodal.clone()
    modal[:, :, 10:] = 0  # half hidden
    samples = torch.cat([modal, amodal])  # one object, K = 2 samples of 2 frames: sample 0 misses, sample 1 is right
    report = EvaluateAmodal().evaluate(samples, amodal, modal, objects=1, samples=2)["result"][0]
    assert "Top-1 (sample 0 of 2):" in report and "oracle Top-2" in report
    top1, oracle = report.split("oracle Top-2")
    assert "strict: mIoU 50.0%  mIoU_occ 0.0%" in top1  # full IoU 1/2 per frame, hidden part missed
    assert "strict: mIoU 100.0%  mIoU_occ 100.0%" in oracle and "object 1: 1" in oracle
    single = EvaluateAmodal().evaluate(amodal, amodal, modal, objects=1)["result"][0]
    assert "oracle" not in single and "Top-1" not in single


# -- node and workflow metadata ----------------------------------------------------------------------------------

def test_stage_nodes_append_samples_inputs_and_agreement_output():
    mask_inputs = list(AmodalMaskSVD.INPUT_TYPES()["optional"])
    assert mask_inputs[-2:] == ["samples", "combine"]
    assert AmodalMaskSVD.INPUT_TYPES()["optional"]["combine"][0] == ["consensus", "all"]
    assert AmodalMaskSVD.RETURN_NAMES == ("amodal_masks", "probability", "agreement")
    assert AmodalMaskSVD.RETURN_TYPES == ("MASK", "IMAGE", "MASK")
    assert list(AmodalContentSVD.INPUT_TYPES()["optional"])[-1] == "samples"
    assert AmodalContentSVD.RETURN_NAMES == ("amodal_rgb", "alpha", "video")
    for node in (AmodalMaskSVD, AmodalContentSVD):
        assert node.INPUT_TYPES()["optional"]["samples"][1]["default"] == 1
    assert list(EvaluateAmodal.INPUT_TYPES()["optional"])[-1] == "samples"
    assert NODE_CLASS_MAPPINGS["SelectHypothesis"] is SelectHypothesis


def test_hypotheses_workflow_shows_three_samples_and_agreement():
    workflow = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    nodes = {n["id"]: n for n in workflow["nodes"]}
    stage1 = [n for n in nodes.values() if n["type"] == "AmodalMaskSVD"]
    assert len(stage1) == 1 and stage1[0]["widgets_values"][-2:] == [3, "all"]
    selects = sorted(n["widgets_values"] for n in nodes.values() if n["type"] == "SelectHypothesis")
    assert selects == [[1, 3, 0], [1, 3, 1], [1, 3, 2]]
    agreement_links = [link for link in workflow["links"] if link[1] == stage1[0]["id"] and link[2] == 2]
    assert agreement_links, "the agreement output must be shown"


# -- tiny checkpoints: the sampler and the stages ----------------------------------------------------------------

def _conditions(n: int, frames: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, frames, 3, 32, 64, generator=g) * 2 - 1, torch.rand(n, frames, 3, 32, 64, generator=g) * 2 - 1)


def test_sample_k_is_a_single_run_with_seed_plus_k(stage1_pipe):
    a, b = _conditions(2)
    fast = dict(num_inference_steps=1)
    # 2 objects x 2 samples in UNet batches of 3: (obj 0, s0), (obj 0, s1), (obj 1, s0) | (obj 1, s1)
    both = stage1_pipe.sample(a, b, seed=5, samples=2, object_batch_size=3, **fast)
    assert both.shape == (2, 2, 2, 3, 32, 64)
    alone = stage1_pipe.sample(a[1], b[1], seed=6, **fast)  # K = 1 keeps the old shape
    assert alone.shape == (2, 3, 32, 64)
    assert (both[1, 1] - alone).abs().max() <= TOL
    assert (both[0, 0] - stage1_pipe.sample(a[0], b[0], seed=5, **fast)).abs().max() <= TOL
    assert (both[1, 0] - both[1, 1]).abs().max() > 1e-3  # samples really differ
    # the random draws (and so the encoded conditions) are bit-identical to a one-row run's
    video_a, video_b = as_condition_video(a, "a"), as_condition_video(b, "b")
    rows = stage1_pipe._encode_conditions(video_a, video_b, [0, 1], [5, 6], 0.02)
    one = stage1_pipe._encode_conditions(video_a, video_b, [1], [6], 0.02)
    assert all(torch.equal(x[1:], y) for x, y in zip(rows, one))


def test_per_sample_conditions_pair_with_seeds(stage1_pipe):
    a, b = _conditions(2, seed=1)
    hyps_a, hyps_b = a.view(1, 2, *a.shape[1:]), b.view(1, 2, *b.shape[1:])  # one object, two hypotheses
    out = stage1_pipe.sample(hyps_a, hyps_b, seed=3, num_inference_steps=1, object_batch_size=2)
    assert out.shape == (1, 2, 2, 3, 32, 64)
    assert (out[0, 1] - stage1_pipe.sample(a[1], b[1], seed=4, num_inference_steps=1)).abs().max() <= TOL
    with pytest.raises(ValueError, match="samples=1 or 2"):
        stage1_pipe.sample(hyps_a, hyps_b, seed=3, num_inference_steps=1, samples=3)


@pytest.fixture(scope="module")
def clip():
    modal = torch.zeros(2, 2, 40, 70, dtype=torch.bool)
    modal[0, :, 5:20, 10:30] = True
    modal[1, :, 20:35, 30:60] = True
    g = torch.Generator().manual_seed(0)
    return modal, torch.rand(2, 40, 70, generator=g), torch.rand(2, 40, 70, 3, generator=g)


def test_stages_return_object_major_samples(stage1_pipe, stage2_pipe, clip):
    modal, depth, rgb = clip
    options = SamplingOptions.for_stage("amodal", num_inference_steps=1, samples=2, object_batch_size=4)
    result = predict_amodal_masks(stage1_pipe, modal, depth, (32, 64), options)
    assert result.samples == 2 and result.masks.shape == (4, 2, 40, 70) and result.masks_processed.shape == (4, 2, 32, 64)
    second = predict_amodal_masks(stage1_pipe, modal, depth, (32, 64), options.with_changes(samples=1, seed=24))
    assert second.samples == 1 and second.masks.shape == (2, 2, 40, 70)
    assert (H.by_sample(result.probability, 2)[:, 1] - second.probability).abs().max() <= TOL
    assert (result.masks | ~modal.repeat_interleave(2, 0)).all()  # every sample keeps the visible pixels
    consensus = H.consensus(result.masks, 2, modal)
    assert torch.equal(consensus, H.by_sample(result.masks, 2).all(dim=1))  # K = 2: majority = both

    # stage 2 completes each of the N x 2 hypotheses with seed + k
    content_options = SamplingOptions.for_stage("content", num_inference_steps=1, object_batch_size=4)
    content = complete_content(stage2_pipe, rgb, modal, result.masks, (32, 64), content_options)
    assert content.samples == 2 and content.rgb.shape == (4, 2, 40, 70, 3)
    hypothesis_1 = complete_content(stage2_pipe, rgb, modal, H.by_sample(result.masks, 2)[:, 1], (32, 64),
                                    content_options.with_changes(seed=content_options.seed + 1))
    processed = H.by_sample(content.rgb_processed, 2)[:, 1].int()
    assert (processed - hypothesis_1.rgb_processed.int()).abs().max() <= 1  # one 8-bit level of batched rounding
    assert torch.equal(H.by_sample(content.alpha, 2)[:, 1], hypothesis_1.alpha)
    with pytest.raises(ValueError, match="set samples to 1 or 2"):
        complete_content(stage2_pipe, rgb, modal, result.masks, (32, 64), content_options.with_changes(samples=3))


class _Model:
    """Stands in for the loader's model: the pipeline, prepared as the nodes use it."""

    def __init__(self, pipe):
        self.pipe = pipe

    def require_stage(self, *_):
        pass

    def prepared(self, *call):  # the call's sampling options, objects, size, frames, samples
        import contextlib

        return contextlib.nullcontext(self.pipe)


def test_mask_node_consensus_all_and_agreement(stage1_pipe, clip, monkeypatch):
    from diffusion_vas.models.host import policy

    monkeypatch.setattr(policy, "_host", policy.Host())
    modal, depth, _ = clip
    inputs = dict(model=_Model(stage1_pipe), modal_masks=modal.flatten(0, 1).float(),
                  depth=depth[..., None].expand(-1, -1, -1, 3), seed=7, steps=1, guidance_scale=1.5, width=64,
                  height=32, samples=3, object_batch_size=6)
    every, probability, fraction = AmodalMaskSVD().predict(**inputs, combine="all")
    assert every.shape == (2 * 3 * 2, 40, 70) and probability.shape == (12, 40, 70, 3) and fraction.shape == (4, 40, 70)
    per_sample = every.view(2, 3, 2, 40, 70)
    assert torch.equal(fraction.view(2, 2, 40, 70), per_sample.mean(dim=1))
    combined, mean_probability, _ = AmodalMaskSVD().predict(**inputs, combine="consensus")
    assert torch.equal(combined.view(2, 2, 40, 70), (per_sample.sum(dim=1) >= 2).float())
    assert mean_probability.shape == (4, 40, 70, 3)
    picked = SelectHypothesis().select(objects=2, samples=3, index=2, masks=every)[0]
    assert torch.equal(picked, per_sample[:, 2].flatten(0, 1))
    one, _, single_fraction = AmodalMaskSVD().predict(**{**inputs, "samples": 1, "seed": 9})
    assert one.shape == (4, 40, 70) and torch.equal(single_fraction, one)  # K = 1: agreement is the mask
    assert (one - picked).abs().sum() <= 0.001 * one.numel()  # sample 2 of seed 7 = seed 9 (rounding aside)
    assert not math.isnan(float(fraction.mean()))


def test_cli_writes_samples_consensus_and_agreement(tmp_path):
    from PIL import Image

    from diffusion_vas.commands import build_parser, main
    from diffusion_vas.commands.run import EXAMPLE
    from conftest import TINY

    assert build_parser().parse_args(["demo", "--out", "o", "--samples", "3"]).samples == 3
    out = tmp_path / "out"
    # the tiny models built without ../shared decode darker frames: at the default 600 their three samples are
    # all just the visible mask (nothing to vote on); 400 makes them differ, as 600 does for the parity models
    threshold = "600" if TINY.from_shared else "400"
    assert main(["demo", "--out", str(out), "--stage1", str(TINY.stage1), "--stage2", str(TINY.stage2), "--depth",
                 str(EXAMPLE / "depth"), "--count", "3", "--steps", "1", "--size", "64x128", "--samples", "3",
                 "--threshold", threshold, "--write", "masks,layer", "--quiet"]) == 0
    folder = out / "obj0"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [
        "agreement", "consensus_masks", "sample0", "sample1", "sample2"]
    assert sorted(p.name for p in (folder / "sample2").iterdir() if p.is_dir()) == ["amodal_masks", "layer"]

    def pngs(path):
        return np.stack([np.asarray(Image.open(p)) for p in sorted(path.glob("*.png"))])

    votes = sum((pngs(folder / f"sample{k}" / "amodal_masks") > 0).astype(np.int32) for k in range(3))
    assert 0 < (votes % 3).sum()  # the samples disagree somewhere
    np.testing.assert_array_equal(pngs(folder / "consensus_masks"), np.where(2 * votes > 3, 255, 0))
    np.testing.assert_array_equal(pngs(folder / "agreement"), np.round(votes / 3 * 255).astype(np.uint8))