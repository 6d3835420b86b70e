"""Evaluation run: baselines with known answers, the tiny checkpoints on a small generated set, the script."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch

from conftest import REPO, TINY
from diffusion_vas.models import SamplingOptions
from diffusion_vas.models.evaluation.evaluate import format_report, mean_visible_colour, run_evaluation, temporal_union
from diffusion_vas.models.evaluation.synthetic import SyntheticSpec, generate_benchmark

SPEC = SyntheticSpec(frames=5, height=48, width=96)
ONE_STEP = SamplingOptions(num_inference_steps=1)


def test_temporal_union_known_answer():
    modal = torch.zeros(5, 1, 5, dtype=torch.bool)
    for t in range(5):
        modal[t, 0, t] = True  # one pixel moving right
    union = temporal_union(modal, 1)
    assert union[0, 0].tolist() == [True, True, False, False, False]
    assert union[2, 0].tolist() == [False, True, True, True, False]
    assert torch.equal(temporal_union(modal, 0), modal)
    assert temporal_union(modal, 10).all()
    with pytest.raises(ValueError, match="radius"):
        temporal_union(modal, -1)


def test_mean_visible_colour():
    rgb = torch.zeros(2, 2, 2, 3)
    rgb[0, 0, 0] = torch.tensor([1.0, 0.5, 0.0])
    rgb[0, 0, 1] = torch.tensor([0.0, 0.5, 1.0])
    modal = torch.zeros(2, 2, 2, dtype=torch.bool)
    modal[0, 0] = True  # frame 1 has nothing visible: it takes the clip's mean
    fill = mean_visible_colour(rgb, modal)
    assert torch.allclose(fill[0], torch.tensor([0.5, 0.5, 0.5]).expand(2, 2, 3))
    assert torch.allclose(fill[1], fill[0])


def test_baselines_only():
    clips = generate_benchmark(2, SPEC, seed=0)
    result = run_evaluation(None, clips, union_radius=2)
    assert list(result["segmentation"]) == ["visible mask", "temporal union ±2"]
    visible = result["segmentation"]["visible mask"]
    assert math.isnan(visible["paper"]["miou_occ"])  # every occluded frame is a miss, and all are dropped
    assert visible["strict"]["miou_occ"] == 0.0 and visible["strict"]["miss_rate_occ"] == 1.0
    assert visible["paper"]["frames_occ_missed"] == visible["strict"]["frames_occluded"] > 0
    assert result["benchmark"] == {"source": "given clips", "clips": 2, "tracks": 2, "frames": 10}
    assert result["completion"] == {} and result["seconds"] == {}


def test_tiny_checkpoints_on_generated_clips():
    result = run_evaluation(
        TINY.stage1, count=2, seed=3, spec=SPEC,
        stage2_path=TINY.stage2, size=(32, 64),
        stage1_options=ONE_STEP, stage2_options=SamplingOptions.for_stage("content", num_inference_steps=1),
        completion_masks="predicted",
    )
    model = "Diffusion-VAS (tiny-amodal-segmentation)"
    assert list(result["segmentation"]) == [model, "visible mask", "temporal union ±4"]
    for scores in result["segmentation"].values():
        for key in ("miou", "miou_occ", "frames", "frames_occ_scored", "frames_occ_missed"):
            assert key in scores["paper"]
        for key in ("miou", "miou_occ", "miou_occ_partial", "miou_occ_full", "miss_rate_occ", "per_clip"):
            assert key in scores["strict"]
        assert 0 <= scores["paper"]["miou"] <= 1 and 0 <= scores["strict"]["miou"] <= 1
        assert scores["paper"]["frames"] == 10 and len(scores["strict"]["per_clip"]) == 2
    completion = result["completion"]
    assert list(completion) == ["Diffusion-VAS (tiny-content-completion)", "mean visible colour"]
    for scores in completion.values():
        assert scores["frames"] > 0 and math.isfinite(scores["psnr"]) and -1 <= scores["ssim"] <= 1
    assert set(result["seconds"]) == {"stage1", "stage2"}
    assert result["settings"]["stage1_steps"] == 1 and result["settings"]["size"] == [32, 64]
    report = format_report(result)
    for text in ("paper mIoU", "strict mIoU_occ", model, "PSNR dB", "mean visible colour", "2 clips"):
        assert text in report


def test_run_evaluation_errors(tmp_path):
    clip = generate_benchmark(1, SPEC)[0]
    clip.depth = None
    with pytest.raises(ValueError, match="no depth"):
        run_evaluation(TINY.stage1, [clip])
    with pytest.raises(ValueError, match="completion_masks"):
        run_evaluation(None, [clip], completion_masks="guess")
    with pytest.raises(ValueError, match="needs stage1_path"):
        run_evaluation(None, [clip], stage2_path=tmp_path, completion_masks="predicted")
    with pytest.raises(ValueError, match="No clip found"):
        run_evaluation(None, tmp_path)


def _script():
    spec = importlib.util.spec_from_file_location("evaluate_script", REPO / "benchmarks" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_in_process(tmp_path, capsys):
    args = ["--stage1", str(TINY.stage1), "--count", "1", "--frames", "4",
            "--clip-size", "48x96", "--size", "32x64", "--steps", "1", "--device", "cpu",
            "--save-clips", str(tmp_path / "clips"), "--json", str(tmp_path / "result.json")]
    result = _script().main(args)
    assert (tmp_path / "clips" / "synthetic_00000" / "depth" / "00003.png").is_file()
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["benchmark"]["frames"] == 4 == result["benchmark"]["frames"]
    assert "Diffusion-VAS (tiny-amodal-segmentation)" in capsys.readouterr().out


def test_script_runs_from_the_repo_root():
    run = subprocess.run(
        [sys.executable, "benchmarks/evaluate.py", "--count", "1", "--frames", "4", "--clip-size", "32x64"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "temporal union ±4" in run.stdout and "strict mIoU" in run.stdout


def test_evaluate_amodal_node():
    from diffusion_vas.nodes.evaluate import EvaluateAmodal

    clip = generate_benchmark(1, dataclasses.replace(SPEC, objects=2))[0]

    def stack(x: torch.Tensor) -> torch.Tensor:  # [N, T, ...] -> a ComfyUI batch [N*T, ...]
        return x.flatten(0, 1).float()

    declared = {**EvaluateAmodal.INPUT_TYPES()["required"], **EvaluateAmodal.INPUT_TYPES()["optional"]}
    assert all(options.get("tooltip") for _, options in declared.values())
    node = EvaluateAmodal()
    out = getattr(node, EvaluateAmodal.FUNCTION)(
        stack(clip.modal), stack(clip.amodal), stack(clip.modal), objects=2,
        amodal_rgb=stack(clip.amodal_rgb), true_amodal_rgb=stack(clip.amodal_rgb))
    report = out["result"][0]
    assert out["ui"]["text"] == [report]
    assert "2 object(s), 10 frames" in report and "object 2:" in report
    assert "strict: mIoU" in report and "mIoU_occ 0.0%" in report  # the visible mask misses every hidden part
    assert "PSNR 100.00 dB  SSIM 1.0000" in report
    with pytest.raises(ValueError, match="multiple of objects=3"):
        node.evaluate(stack(clip.modal), stack(clip.amodal), stack(clip.modal), objects=3)
    with pytest.raises(ValueError, match="both amodal_rgb and true_amodal_rgb"):
        node.evaluate(stack(clip.modal), stack(clip.amodal), stack(clip.modal), objects=2,
                      amodal_rgb=stack(clip.amodal_rgb))


def test_samples_give_top1_and_an_oracle_never_below_it():
    """K = 3 samples per track in both stages (stage 2 completes each stage-1 hypothesis): the Diffusion-VAS rows
    are sample 0, equal to a one-sample run; the oracle rows are never below them."""
    common = dict(count=2, seed=3, spec=SPEC, stage2_path=TINY.stage2, size=(32, 64), stage1_options=ONE_STEP,
                  stage2_options=SamplingOptions.for_stage("content", num_inference_steps=1),
                  completion_masks="predicted")
    one = run_evaluation(TINY.stage1, **common)
    three = run_evaluation(TINY.stage1, samples=3, **common)
    model = "Diffusion-VAS (tiny-amodal-segmentation)"
    for protocol in ("paper", "strict"):
        assert three["segmentation"][model][protocol]["miou"] == pytest.approx(
            one["segmentation"][model][protocol]["miou"], abs=1e-6)  # sample 0 = the one-sample run
    oracle = three["oracle"]
    assert oracle["samples"] == 3 and "oracle" not in one
    for protocol, figures in oracle["segmentation"].items():
        for figure, value in figures.items():
            if figure != "choice":
                top1 = three["segmentation"][model][protocol][figure]
                assert math.isnan(top1) or value >= top1 - 1e-12, (protocol, figure)
    completion = three["completion"]["Diffusion-VAS (tiny-content-completion)"]
    assert oracle["completion"]["psnr"] >= completion["psnr"] and oracle["completion"]["ssim"] >= completion["ssim"]
    report = format_report(three)
    for text in (f"{model} Top-1", f"{model} oracle Top-3", "Diffusion-VAS (tiny-content-completion) oracle Top-3",
                 "chosen with the ground truth"):
        assert text in report
    with pytest.raises(ValueError, match="samples"):
        run_evaluation(None, count=1, spec=SPEC, samples=0)


def test_evaluate_amodal_node_scores_colour_samples_with_the_oracle():
    from diffusion_vas.nodes.evaluate import EvaluateAmodal

    clip = generate_benchmark(1, SPEC)[0]
    truth = clip.amodal_rgb[0].float()  # [T, H, W, 3]
    hidden = clip.amodal[0] & ~clip.modal[0]
    wrong = truth.clone()
    wrong[hidden] = 1 - wrong[hidden]  # sample 0: the hidden colours inverted; sample 1: exact
    masks = clip.amodal[0].float()
    report = EvaluateAmodal().evaluate(
        torch.cat([masks, masks]), masks, clip.modal[0].float(), objects=1, samples=2,
        amodal_rgb=torch.cat([wrong, truth]), true_amodal_rgb=truth)["result"][0]
    top1 = [line for line in report.splitlines() if line.startswith("completion in the hidden part (Top-1")]
    assert len(top1) == 1 and "PSNR 100.00" not in top1[0]
    assert "completion oracle Top-2 (PSNR and SSIM each the best of 2 samples per object): PSNR 100.00 dB  " \
           "SSIM 1.0000" in report
