"""Real-dataset benchmarks: the authors' scoring arithmetic and the strict protocol by hand, the runner (fake
samplers and the tiny checkpoints), resuming, sharding, and the ``benchmark`` CLI."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pycocotools")

from conftest import TINY  # noqa: E402
from diffusion_vas.commands import main  # noqa: E402
from diffusion_vas.models.datasets import read_sailvos, read_tao_amodal, rle  # noqa: E402
from diffusion_vas.models.datasets.resize import resize_linear  # noqa: E402
from diffusion_vas.models.evaluation import benchmark as B  # noqa: E402
from diffusion_vas.models.evaluation.benchmark_scoring import (  # noqa: E402
    box_iou, score_results, strict_box_iou,
)
from test_datasets import box_mask, write  # noqa: E402

SAIL = (800, 1280)
TAO = (720, 1280)
EPS = 1e-6


def sail_track(obj_id, first_image, modal_boxes, amodal_box=(100, 100, 300, 200), size=SAIL):
    """Full mask: a fixed box; visible masks: one box per frame (None = fully hidden)."""
    frames = len(modal_boxes)
    seg = [rle.encode(box_mask(size, *amodal_box)) for _ in range(frames)]
    vis = [rle.encode(box_mask(size, *b) if b else np.zeros(size, bool)) for b in modal_boxes]
    ids = list(range(first_image, first_image + frames))
    return {"segmentation": seg, "visible_mask": vis, "image_ids": ids, "obj_id": obj_id, "category_id": 1,
            "image_file_names": [f"v{obj_id}/{i:05d}.png" for i in ids]}


def hand_clips(tmp_path):
    """Clip A (3 frames, left half visible) and clip B (2 frames, the second fully hidden)."""
    left = (100, 100, 200, 200)
    return write(tmp_path / "val.json", [sail_track(1, 0, [left, left, left]), sail_track(2, 10, [left, None])])


def hand_predictions():
    full = box_mask(SAIL, 100, 100, 300, 200)
    half_hidden = box_mask(SAIL, 100, 100, 250, 200)
    empty = np.zeros(SAIL, bool)
    preds = {"(0, 1)": full, "(1, 1)": empty, "(2, 1)": half_hidden, "(10, 2)": full, "(11, 2)": full}
    return {k: {"diffvas_res_rle": rle.encode(v)} for k, v in preds.items()}


# Hand arithmetic (full mask 200x100 = 20000 px, visible left half 10000 px, hidden right half 100x100 whose
# 5x5 erosion is 96x96 = 9216 px; the half-hidden prediction's hidden part 50x100 erodes to 46x96 = 4416 px):
#   clip A: frame 0 exact (IoU 1, occ 1); frame 1 empty: authors OR the visible mask -> IoU 0.5, occ 0 (dropped),
#           strict IoU 0, occ 0 (a miss); frame 2 half the hidden part: IoU 0.75, occ 4416 / 9216.
#   clip B: both frames exact (frame 1 fully hidden: occ region = whole mask, exact) -> 1 everywhere.
OCC2 = 4416 / 9216
AUTHORS_MIOU = (1 + 0.5 + 0.75 + 1 + 1) / 5
AUTHORS_OCC = (1 + OCC2 + 1 + 1) / 4
STRICT_MIOU = ((1 + 0 + 0.75) / 3 + 1) / 2
STRICT_OCC = ((1 + 0 + OCC2) / 3 + 1) / 2


def test_sailvos_scoring_by_hand(tmp_path):
    data = read_sailvos(hand_clips(tmp_path))
    s = score_results(data.clips(), hand_predictions(), "mask", (800, 1280), buckets=(0, 0.3, 0.6, 1))
    assert s["authors"]["miou"] == pytest.approx(AUTHORS_MIOU, abs=1e-9)
    assert s["authors"]["miou_occ"] == pytest.approx(AUTHORS_OCC, abs=1e-9)
    assert (s["authors"]["frames_occ_scored"], s["authors"]["frames_occ_dropped"],
            s["authors"]["frames_occ_missed"]) == (4, 1, 1)
    assert s["strict"]["miou"] == pytest.approx(STRICT_MIOU, abs=1e-12)
    assert s["strict"]["miou_occ"] == pytest.approx(STRICT_OCC, abs=1e-12)
    assert s["strict"]["miss_rate_occ"] == pytest.approx((1 / 3 + 0) / 2)
    assert s["strict"]["miou_occ_full"] == pytest.approx(1.0)  # only clip B has a fully hidden frame
    # visibility: A = 0.5 per frame, B = (0.5 + 0) / 2 = 0.25 (each minus the 1e-6 in the union)
    low, mid, high = s["buckets"]
    assert (low["clips"], mid["clips"], high["clips"]) == (1, 1, 0)
    assert low["authors"]["miou"] == pytest.approx(1.0, abs=1e-9)
    assert mid["authors"]["miou"] == pytest.approx(0.75, abs=1e-9) and math.isnan(high["authors"]["miou"])


def test_sailvos_scoring_matches_the_authors_arithmetic_with_upsampling(tmp_path):
    """Predictions at 256x512 are upsampled (cv2 INTER_LINEAR), OR-ed, eroded, dropped as the authors do."""
    cv2 = pytest.importorskip("cv2")
    file = write(tmp_path / "val.json", [sail_track(5, 0, [(100, 100, 200, 200), (103, 101, 180, 199), None],
                                                   amodal_box=(97, 98, 311, 203))])
    clip = read_sailvos(file).clip(0)
    rng = np.random.default_rng(1)
    small = []
    for k in range(3):  # a blob near the object, ragged edges
        m = np.zeros((256, 512), np.uint8)
        m[30 + k:66, 30:95 + 3 * k] = 1
        m[rng.random((256, 512)) > 0.995] = 1
        small.append(m)
    results = {key: {"diffvas_res_rle": rle.encode(m)} for key, m in zip(clip.frame_keys, small)}
    ours = score_results([clip], results, "mask", (800, 1280))["authors"]

    modal, amodal = clip.modal.numpy().astype(int), clip.amodal.numpy().astype(int)
    pred = np.stack([cv2.resize(m, (1280, 800), interpolation=cv2.INTER_LINEAR) for m in small])
    pred = np.logical_or(pred, modal).astype(int)
    iou = (amodal & pred).sum((1, 2)) / ((amodal | pred).sum((1, 2)) + EPS)

    def erode(x):
        k = np.ones((5, 5), np.uint8)
        return np.stack([cv2.erode((f * 255).astype(np.uint8), k) for f in x]) // 255

    ga, pa = erode(amodal & (1 - modal)), erode(pred & (1 - modal))
    occ = (ga & pa).sum((1, 2)) / ((ga | pa).sum((1, 2)) + EPS)
    assert ours["miou"] == pytest.approx(iou.mean(), abs=1e-12)
    assert ours["miou_occ"] == pytest.approx(occ[occ >= EPS].mean(), abs=1e-12)


def tao_track(track_id=7, video_id=3, frames=3, modal=(100, 200, 300, 400), size=TAO, boxes=None):
    rles = [rle.encode(box_mask(size, *modal))["counts"] for _ in range(frames)]
    return {"track_id": track_id, "video_id": video_id, "category_id": 2, "height": size[0], "width": size[1],
            "file_names": [f"val/v{video_id}/frame{k:04d}.jpg" for k in range(frames)], "rles": rles,
            "amodal_bboxes": boxes or [[100, 200, 300, 200]] * frames}


def test_tao_box_scoring_by_hand(tmp_path):
    boxes = [[0, 0, 10, 10], [-20, 10, 40, 20], [5, 5, 0, 0], [0, 0, 10, 10]]
    file = write(tmp_path / "tao.json", [tao_track(frames=4, boxes=boxes)])
    offsets = write(tmp_path / "offsets.json", {"3": 5})
    clip = read_tao_amodal(file, track_offsets=offsets).clip(0)
    assert clip.frame_keys[0] == "(3, 'frame0000.jpg', '3')"  # rel track id = 7 - 5 + 1
    preds = [[0, 0, 5, 10],      # IoU exactly 0.5: not above 0.5 (strictly above)
             [-10, 10, 30, 20],  # outside the frame: 600 / 800 = 0.75, not above 0.75
             [0, 0, 0, 0],       # zero union: 0 for the authors
             [1, 1, 8, 8]]       # 64 / 100 = 0.64
    raw = [[0, 0, 5, 10], [-10, 10, 30, 20], None, None]  # the prediction alone: frame 3 predicted nothing
    results = {k: {"diffvas_res_bbox": b, "diffvas_raw_bbox": r} for k, b, r in zip(clip.frame_keys, preds, raw)}
    s = score_results([clip], results, "box")
    assert s["authors"]["miou"] == pytest.approx((0.5 + 0.75 + 0 + 0.64) / 4)
    assert (s["authors"]["ap25"], s["authors"]["ap50"], s["authors"]["ap75"]) == (0.75, 0.5, 0.0)
    # strict: both empty -> 1, empty prediction -> 0
    assert s["strict"]["miou"] == pytest.approx((0.5 + 0.75 + 1 + 0) / 4)
    assert s["strict"]["ap50"] == pytest.approx(0.5)
    assert box_iou([0, 0, 2, 2], [1, 1, 2, 2]) == pytest.approx(1 / 7)
    assert strict_box_iou([0, 0, 2, 2], None) == 0.0
    # the authors' files have no raw boxes: strict figures are n/a
    authors_only = {k: {"diffvas_res_bbox": b} for k, b in zip(clip.frame_keys, preds)}
    assert math.isnan(score_results([clip], authors_only, "box")["strict"]["miou"])


def test_missing_results(tmp_path):
    data = read_sailvos(hand_clips(tmp_path))
    partial = {k: v for k, v in hand_predictions().items() if k.endswith(", 1)")}
    with pytest.raises(ValueError, match=r"no results for clip \(10, 2\).*--missing skip"):
        score_results(data.clips(), partial, "mask", (800, 1280))
    s = score_results(read_sailvos(hand_clips(tmp_path)).clips(), partial, "mask", (800, 1280), missing="skip")
    assert s["clips"] == 1 and s["clips_without_results"] == 1
    del partial["(1, 1)"]
    with pytest.raises(ValueError, match=r"results for 2 of 3 frames; frame \(1, 1\) is missing"):
        score_results(read_sailvos(hand_clips(tmp_path)).clips(), partial, "mask", (800, 1280))


def test_score_cli_prints_both_protocols(tmp_path, caplog):
    ann = hand_clips(tmp_path)
    preds = write(tmp_path / "results.json", hand_predictions())
    with caplog.at_level(logging.INFO, logger="diffusion_vas"):
        code = main(["benchmark", "score", "--dataset", "sailvos", "--annotations", str(ann), "--predictions",
                     str(preds), "--summary", str(tmp_path / "summary.json")])
    assert code == 0
    assert f"authors' protocol: miou {100 * AUTHORS_MIOU:.2f}, miou_occ {100 * AUTHORS_OCC:.2f}" in caplog.text
    assert f"strict protocol:   miou {100 * STRICT_MIOU:.2f}, miou_occ {100 * STRICT_OCC:.2f}" in caplog.text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["authors"]["miou"] == pytest.approx(AUTHORS_MIOU, abs=1e-9)
    assert main(["benchmark", "score", "--dataset", "sailvos", "--annotations", str(ann), "--predictions",
                 str(tmp_path / "nope.json")]) == 1


# -- runner -----------------------------------------------------------------------------------------------------

class FakeSampler:
    """Stands in for a pipeline (the `DiffusionVASPipeline.sample` interface: tensor or `ConditionVideo`
    conditions, K samples, ``on_decoded`` pieces); records its inputs as tensors.

    ``value``: every decoded pixel (1 white, 0 black), or a list with one value per sample; or ``render(k, t)``
    giving sample k's frame t as ``[3, h, w]`` in 0..1.
    """

    def __init__(self, value=0.0, render=None):
        self.value, self.render, self.calls = value, render, []

    def frame(self, k: int, t: int, like: torch.Tensor) -> torch.Tensor:
        if self.render is not None:
            return self.render(k, t)
        value = self.value[k] if isinstance(self.value, (list, tuple)) else self.value
        return torch.full_like(like, value)

    def sample(self, cond_a, cond_b, options=None, callback=None, *, on_decoded=None, **changes):
        from diffusion_vas.models import SamplingOptions

        options = (options or SamplingOptions()).with_changes(**changes)
        a, b = (c.materialize() if hasattr(c, "materialize") else c.clone() for c in (cond_a, cond_b))
        self.calls.append((a, b, options))
        single = a.ndim == 4
        rows = a.reshape(-1, *a.shape[-4:])  # objects (x hypotheses)
        per_sample = a.ndim == 6
        k = a.shape[1] if per_sample else options.samples
        n = rows.shape[0] // (k if per_sample else 1)
        out = []
        for r in range(n * k):
            like = rows[r if per_sample else r // k]
            video = torch.stack([self.frame(r % k, t, like[t]) for t in range(like.shape[0])]).float()
            if on_decoded is not None:
                on_decoded(r, slice(0, video.shape[0]), video)
            out.append(video)
        if on_decoded is not None:
            return None
        frames = torch.stack(out)
        if k > 1 or per_sample:
            frames = frames.view(n, k, *frames.shape[1:])
        return frames[0] if single else frames


def write_frames(root, entries, key, size):
    for entry in entries:
        for name in entry[key]:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((*size, 3), 90, np.uint8)).save(path)


def luminance(frames):
    return frames.float().mean(-1) + torch.linspace(0, 1, frames.shape[2])[None, None, :]


def test_runner_sailvos_writes_the_authors_format_and_resumes(tmp_path):
    entries = [sail_track(1, 0, [(100, 100, 200, 200)] * 2), sail_track(2, 10, [(100, 100, 200, 200)] * 2)]
    ann = write(tmp_path / "val.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", SAIL)
    out = tmp_path / "out" / "results.json"
    black = FakeSampler(0.0)
    depth_calls = []

    def depth(frames):
        depth_calls.append(tuple(frames.shape))
        return luminance(frames)

    data = B.open_dataset("sailvos", ann, tmp_path / "frames")
    report = B.run_benchmark("sailvos", data, out, black, depth, limit=1, depth_cache=tmp_path / "cache",
                             progress=False)
    assert (report.predicted, report.already_done) == (1, 0)
    assert depth_calls == [(2, 256, 512, 3)]  # depth on the frames resized to 256x512
    results = json.loads(out.read_text())
    assert sorted(results) == ["(0, 1)", "(1, 1)"]
    mask = rle.decode(results["(0, 1)"]["diffvas_res_rle"], "test")
    assert mask.shape == (256, 512)  # stage 1 gives nothing: the visible mask at 256x512 (OpenCV-style resize)
    expected = resize_linear(box_mask(SAIL, 100, 100, 200, 200).astype(np.uint8), (256, 512)) > 0
    assert (mask == expected).all()
    assert black.calls[0][2].fps == 8
    # resume: clip 1 is skipped, only clip 2 runs; its depth is new, clip 1's cached depth is untouched
    report = B.run_benchmark("sailvos", B.open_dataset("sailvos", ann, tmp_path / "frames"), out, black, depth,
                             depth_cache=tmp_path / "cache", progress=False)
    assert (report.predicted, report.already_done) == (1, 1) and len(black.calls) == 2
    assert sorted(json.loads(out.read_text())) == ["(0, 1)", "(1, 1)", "(10, 2)", "(11, 2)"]
    assert len(list((tmp_path / "cache" / "sailvos").glob("*.npy"))) == 2
    # the cache serves a rerun without calling the depth function
    out.unlink()
    B.run_benchmark("sailvos", B.open_dataset("sailvos", ann, tmp_path / "frames"), out, black, depth,
                    depth_cache=tmp_path / "cache", progress=False)
    assert len(depth_calls) == 2


def test_runner_tao_padding_depth_fps_and_boxes(tmp_path):
    entries = [tao_track(frames=2)]
    ann = write(tmp_path / "tao.json", entries)
    write_frames(tmp_path / "frames", entries, "file_names", TAO)
    data = B.open_dataset("tao-amodal", ann, tmp_path / "frames", write(tmp_path / "o.json", {"3": 7}))
    white, black = FakeSampler(1.0), FakeSampler(0.0)
    B.run_benchmark("tao-amodal", data, tmp_path / "white.json", white, luminance, progress=False)
    B.run_benchmark("tao-amodal", B.open_dataset("tao-amodal", ann, tmp_path / "frames",
                                                 tmp_path / "o.json"), tmp_path / "black.json", black, luminance,
                    progress=False)
    cond_a, cond_b, options = white.calls[0]
    assert options.fps == 2
    assert cond_b.shape[-2:] == (256, 512)
    # padding 180 x 320 of 1080 x 1920 -> 256 x 512: border columns 0..84 are all padding: depth 1 ("nearest")
    assert torch.allclose(cond_b[0, :, :, :, :80], torch.ones(1)) and torch.all(cond_a[0, :, :, :, :80] == -1)
    white_res = json.loads((tmp_path / "white.json").read_text())
    key = "(3, 'frame0000.jpg', '1')"
    # everything predicted: the whole padded canvas, shifted back: x from -320, y from -180
    assert white_res[key]["diffvas_raw_bbox"] == [-320, -180, 1920, 1080]
    assert white_res[key]["diffvas_res_bbox"] == [-320, -180, 1920, 1080]
    assert white_res[key]["diffvas_res_rle"]["size"] == [1080, 1920]
    black_res = json.loads((tmp_path / "black.json").read_text())
    # nothing predicted: the visible box (inclusive extents), no raw box
    assert black_res[key]["diffvas_raw_bbox"] is None
    assert black_res[key]["diffvas_res_bbox"] == [100, 200, 200, 200]
    s = score_results(read_tao_amodal(ann, track_offsets=tmp_path / "o.json").clips(), black_res, "box")
    assert s["authors"]["miou"] == pytest.approx(200 * 200 / (300 * 200))  # visible box inside the full box
    assert s["strict"]["miou"] == 0.0


def test_union_boxes():
    assert B.union_boxes([0, 0, 10, 10], [5, -5, 10, 10]) == [0, -5, 15, 15]


def test_shards_merge_to_the_one_process_result(tmp_path):
    """MOVi (SAIL-VOS schema, 256x256 frames): process 1 of 2 finishing first must not shift process 0's share."""
    entries = [sail_track(k, 10 * k, [(10 + 5 * k, 100, 60, 140)] * 2, (10, 100, 90, 140), (256, 256))
               for k in range(1, 4)]
    ann = write(tmp_path / "movi.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", (256, 256))

    def run(output, **shard):
        return B.run_benchmark("movi", B.open_dataset("movi", ann, tmp_path / "frames"), output, FakeSampler(0.0),
                               luminance, progress=False, **shard)

    one, two = tmp_path / "one.json", tmp_path / "two.json"
    run(one)
    r1 = run(two, process_index=1, num_processes=2)
    assert not r1.merged and not two.exists() and B.shard_file(two, 1, 2).is_file()
    r0 = run(two, process_index=0, num_processes=2)
    assert (r0.predicted, r1.predicted) == (2, 1) and r0.merged
    assert json.loads(two.read_text()) == json.loads(one.read_text())
    assert not list(tmp_path.glob("*.jsonl"))


def test_cli_run_and_score_with_the_tiny_checkpoints(tmp_path, caplog):
    entries = [sail_track(1, 0, [(100, 100, 200, 200)] * 2)]
    ann = write(tmp_path / "val.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", SAIL)
    out = tmp_path / "res.json"
    with caplog.at_level(logging.INFO, logger="diffusion_vas"):
        code = main(["benchmark", "run", "--dataset", "sailvos", "--annotations", str(ann), "--data-root",
                     str(tmp_path / "frames"), "--output", str(out), "--stage1",
                     str(TINY.stage1), "--depth-model",
                     str(TINY.depth), "--steps", "1", "--device", "cpu", "--score",
                     "--no-progress", "--size", "64x128"])
    assert code == 0, caplog.text
    results = json.loads(out.read_text())
    assert sorted(results) == ["(0, 1)", "(1, 1)"]
    assert results["(0, 1)"]["diffvas_res_rle"]["size"] == [64, 128]  # --size (the authors': 256x512)
    assert "authors' protocol: miou" in caplog.text and "strict protocol:   miou" in caplog.text


def test_runner_with_a_tiny_model_built_here(tmp_path):
    """No ../shared needed: a random tiny Diffusion-VAS checkpoint written by the test, through load_pipeline."""
    from training_tiny import write_tiny_vas

    from diffusion_vas.models import SamplingOptions, load_pipeline

    pipe = load_pipeline(write_tiny_vas(tmp_path / "tiny-vas"))
    entries = [sail_track(1, 0, [(10, 100, 60, 140)] * 2, (10, 100, 90, 140), (256, 256))]
    ann = write(tmp_path / "movi.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", (256, 256))
    out = tmp_path / "movi_results.json"
    B.run_benchmark("movi", B.open_dataset("movi", ann, tmp_path / "frames"), out, pipe, luminance,
                    options=SamplingOptions(num_inference_steps=1), progress=False, size=(64, 128))
    results = json.loads(out.read_text())
    assert sorted(results) == ["(0, 1)", "(1, 1)"]
    mask = rle.decode(results["(0, 1)"]["diffvas_res_rle"], "test")
    visible = resize_linear(box_mask((256, 256), 10, 100, 60, 140).astype(np.uint8), (64, 128)) > 0
    assert mask.shape == (64, 128) and (mask | visible).sum() == mask.sum()  # stage 1 keeps the visible mask
    s = score_results(read_sailvos(ann).clips(), results, "mask")  # scored at MOVi's native 256x256
    assert 0 < s["authors"]["miou"] <= 1 and s["frames"] == 2


# -- several samples: Top-1 and the oracle Top-K ---------------------------------------------------------------

def with_samples(per_sample: list[dict]) -> dict:
    """Result files of K one-sample predictions -> one K-sample file (sample 0 in the authors' field)."""
    out = {}
    for key in per_sample[0]:
        out[key] = {"diffvas_res_rle": per_sample[0][key]["diffvas_res_rle"],
                    "diffvas_samples_rle": [p[key]["diffvas_res_rle"] for p in per_sample]}
    return out


def assert_oracle_not_below_top1(summary: dict) -> None:
    """Every oracle figure is at least its Top-1 figure (where Top-1 is defined: the authors' miou_occ is NaN when
    sample 0 scores no hidden frame above 0, and any oracle value is then above it)."""
    for protocol in ("authors", "strict"):
        assert summary["oracle"][protocol] and set(summary["oracle"][protocol]) <= set(summary[protocol])
        for figure, value in summary["oracle"][protocol].items():
            top1 = summary[protocol][figure]
            assert math.isnan(top1) or value >= top1 - 1e-12, (protocol, figure, value, top1)


def test_oracle_top_k_scoring_by_hand(tmp_path):
    """Sample 0 = the hand predictions above; sample 1 exact everywhere; sample 2 empty. The oracle takes sample 1
    for clip A and keeps sample 0 for clip B (already exact; ties keep the first): every figure is 1."""
    top1 = hand_predictions()
    exact = {k: {"diffvas_res_rle": rle.encode(box_mask(SAIL, 100, 100, 300, 200))} for k in top1}
    empty = {k: {"diffvas_res_rle": rle.encode(np.zeros(SAIL, bool))} for k in top1}
    results = with_samples([top1, exact, empty])
    s = score_results(read_sailvos(hand_clips(tmp_path)).clips(), results, "mask", SAIL)
    assert s["samples"] == 3
    assert s["authors"]["miou"] == pytest.approx(AUTHORS_MIOU, abs=1e-9)  # Top-1 = sample 0
    assert s["strict"]["miou_occ"] == pytest.approx(STRICT_OCC, abs=1e-12)
    oracle = s["oracle"]
    assert oracle["authors"]["miou"] == pytest.approx(1.0, abs=1e-9)
    assert oracle["authors"]["miou_occ"] == pytest.approx(1.0, abs=1e-9)
    assert oracle["strict"]["miou"] == pytest.approx(1.0) and oracle["strict"]["miou_occ"] == pytest.approx(1.0)
    assert oracle["chosen"]["strict"]["miou"] == [1, 1, 0]  # clip B: sample 0, clip A: sample 1
    from diffusion_vas.models.evaluation.benchmark_scoring import format_summary

    text = format_summary(s, "sailvos")
    assert "Top-1 (sample 0 of 3):" in text and "oracle Top-3 (for each figure the best of the 3 samples" in text
    assert "oracle authors' protocol: miou 100.00, miou_occ 100.00" in text
    # a file whose sample 0 is not the authors' field, or with mixed sample counts, is refused
    bad = json.loads(json.dumps(results))
    bad["(0, 1)"]["diffvas_samples_rle"][0] = bad["(0, 1)"]["diffvas_samples_rle"][2]
    with pytest.raises(ValueError, match="differs from the authors' field"):
        score_results(read_sailvos(hand_clips(tmp_path)).clips(), bad, "mask", SAIL)
    mixed = dict(results)
    for key in ("(10, 2)", "(11, 2)"):
        mixed[key] = {"diffvas_res_rle": top1[key]["diffvas_res_rle"]}
    with pytest.raises(ValueError, match="different numbers of samples"):
        score_results(read_sailvos(hand_clips(tmp_path)).clips(), mixed, "mask", SAIL)


def test_runner_writes_k_samples_and_resumes_by_sample_count(tmp_path):
    entries = [sail_track(1, 0, [(100, 100, 200, 200)] * 2), sail_track(2, 10, [(100, 100, 200, 200)] * 2)]
    ann = write(tmp_path / "val.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", SAIL)
    out = tmp_path / "results.json"
    sampler = FakeSampler([0.0, 1.0, 0.0])  # sample 1 decodes white: the whole frame is the object

    def run(samples):
        return B.run_benchmark("sailvos", B.open_dataset("sailvos", ann, tmp_path / "frames"), out, sampler,
                               luminance, progress=False, samples=samples)

    assert run(3).predicted == 2 and sampler.calls[0][2].samples == 3
    results = json.loads(out.read_text())
    item = results["(0, 1)"]
    assert len(item["diffvas_samples_rle"]) == 3 and item["diffvas_samples_rle"][0] == item["diffvas_res_rle"]
    assert rle.decode(item["diffvas_samples_rle"][1], "test").all()  # white: everything
    assert (run(3).predicted, run(1).predicted) == (0, 0)  # done with 3 samples, and sample 0 is a 1-sample run
    assert run(2).predicted == 2  # another K redoes the clips
    assert len(json.loads(out.read_text())["(0, 1)"]["diffvas_samples_rle"]) == 2
    assert_oracle_not_below_top1(score_results(read_sailvos(ann).clips(), json.loads(out.read_text()), "mask",
                                               SAIL))


def test_cli_samples_and_a_partial_run_score_on_what_ran(tmp_path, caplog):
    """``benchmark run --samples 3 --limit 1 --score`` (the README's quick look) scores the clip that ran and says
    so; the full run then resumes, and the oracle Top-3 is never below Top-1 under either protocol."""
    entries = [sail_track(1, 0, [(100, 100, 200, 200), (120, 100, 220, 200)]),
               sail_track(2, 10, [(300, 300, 420, 360), None], amodal_box=(300, 300, 500, 400))]
    ann = write(tmp_path / "val.json", entries)
    write_frames(tmp_path / "frames", entries, "image_file_names", SAIL)
    out, summary = tmp_path / "res.json", tmp_path / "summary.json"
    command = ["benchmark", "run", "--dataset", "sailvos", "--annotations", str(ann), "--data-root",
               str(tmp_path / "frames"), "--output", str(out), "--stage1", str(TINY.stage1), "--depth-model",
               str(TINY.depth), "--steps", "1", "--device", "cpu", "--score", "--no-progress", "--size", "64x128",
               "--samples", "3", "--summary", str(summary)]
    with caplog.at_level(logging.INFO, logger="diffusion_vas"):
        assert main(command + ["--limit", "1"]) == 0, caplog.text
    assert "partial run (--limit 1): scored on the 1 clip(s) that ran, of 2 entries" in caplog.text
    assert json.loads(summary.read_text())["clips"] == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="diffusion_vas"):
        assert main(command) == 0, caplog.text
    assert "1 clips predicted here, 1 were already done" in caplog.text and "partial run" not in caplog.text
    for line in ("Top-1 (sample 0 of 3):", "authors' protocol: miou", "strict protocol:   miou",
                 "oracle Top-3 (for each figure the best of the 3 samples per clip",
                 "oracle authors' protocol: miou", "oracle strict protocol:   miou"):
        assert line in caplog.text
    s = json.loads(summary.read_text())
    assert (s["clips"], s["samples"]) == (2, 3)
    assert_oracle_not_below_top1(s)


def test_benchmark_run_refuses_a_single_process_cpu_launch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    ann = write(tmp_path / "val.json", [sail_track(1, 0, [(100, 100, 200, 200)])])
    code = main(["benchmark", "run", "--dataset", "sailvos", "--annotations", str(ann), "--data-root",
                 str(tmp_path), "--device", "cpu"])
    assert code == 1
    assert "accelerate launch --multi_gpu --num_processes N -m diffusion_vas.commands benchmark run --device cpu" \
           in capsys.readouterr().err


# -- TAO-Amodal success rates ("AP") that are not zero ---------------------------------------------------------

# The runner on a black sampler predicts nothing, so each frame's box is the true visible box [100, 200, 200, 200];
# the true full boxes grow frame by frame, which gives IoU 1, 0.8, 2/3, 0.5, 1/3 and 40000 / 921600.
TAO_TRUE_BOXES = [[100, 200, 200, 200], [100, 200, 250, 200], [100, 200, 300, 200], [100, 200, 400, 200],
                  [100, 200, 600, 200], [0, 0, 1280, 720]]
TAO_IOUS = [1, 0.8, 2 / 3, 0.5, 1 / 3, 40000 / 921600]


def _coco_ious(pred_boxes, true_boxes):
    """pycocotools' own box IoU (what COCOeval uses for bbox), frame by frame."""
    from pycocotools import mask as coco_mask

    return [float(coco_mask.iou([p], [t], [0])[0][0]) for p, t in zip(pred_boxes, true_boxes)]


def test_tao_success_rates_are_nonzero_at_every_threshold_and_match_pycocotools(tmp_path, caplog):
    entries = [tao_track(frames=6, boxes=TAO_TRUE_BOXES)]
    ann = write(tmp_path / "tao.json", entries)
    offsets = write(tmp_path / "o.json", {"3": 7})
    write_frames(tmp_path / "frames", entries, "file_names", TAO)
    out = tmp_path / "tao_results.json"
    B.run_benchmark("tao-amodal", B.open_dataset("tao-amodal", ann, tmp_path / "frames", offsets), out,
                    FakeSampler(0.0), luminance, progress=False)
    results = json.loads(out.read_text())
    clip = read_tao_amodal(ann, track_offsets=offsets).clip(0)
    boxes = [results[k]["diffvas_res_bbox"] for k in clip.frame_keys]
    assert boxes == [[100, 200, 200, 200]] * 6
    coco = _coco_ious(boxes, TAO_TRUE_BOXES)
    assert coco == pytest.approx(TAO_IOUS, abs=1e-12)
    with caplog.at_level(logging.INFO, logger="diffusion_vas"):
        assert main(["benchmark", "score", "--dataset", "tao-amodal", "--annotations", str(ann),
                     "--track-offsets", str(offsets), "--predictions", str(out), "--summary",
                     str(tmp_path / "s.json")]) == 0
    authors = json.loads((tmp_path / "s.json").read_text())["authors"]
    by_hand = {"miou": sum(TAO_IOUS) / 6, "ap25": 5 / 6, "ap50": 3 / 6, "ap75": 2 / 6}  # strictly above
    assert authors == pytest.approx(by_hand, abs=1e-12)
    for th in (0.25, 0.5, 0.75):  # the same success rates from pycocotools' IoUs
        assert authors[f"ap{round(100 * th)}"] == pytest.approx(np.mean([v > th for v in coco]), abs=1e-12)
    assert "ap25 83.33, ap50 50.00, ap75 33.33" in caplog.text


def test_tao_samples_oracle_is_the_best_sample_and_matches_pycocotools(tmp_path):
    """Two samples of one clip: black (the visible box) and white (the whole padded canvas); the oracle of each
    figure is the better sample's, every figure non-zero, and the per-sample figures agree with pycocotools."""
    entries = [tao_track(frames=6, boxes=TAO_TRUE_BOXES[:5] + [[-320, -180, 1920, 1080]])]
    ann = write(tmp_path / "tao.json", entries)
    offsets = write(tmp_path / "o.json", {"3": 7})
    write_frames(tmp_path / "frames", entries, "file_names", TAO)
    out = tmp_path / "tao_results.json"
    B.run_benchmark("tao-amodal", B.open_dataset("tao-amodal", ann, tmp_path / "frames", offsets), out,
                    FakeSampler([0.0, 1.0]), luminance, progress=False, samples=2)
    results = json.loads(out.read_text())
    clip = read_tao_amodal(ann, track_offsets=offsets).clip(0)
    truths = clip.amodal_boxes.tolist()
    per_sample = []
    for k in range(2):
        boxes = [results[key]["diffvas_samples_bbox"][k] for key in clip.frame_keys]
        ious = _coco_ious(boxes, truths)
        per_sample.append({"miou": np.mean(ious), **{f"ap{round(100 * th)}": np.mean([v > th for v in ious])
                                                     for th in (0.25, 0.5, 0.75)}})
    assert results[clip.frame_keys[0]]["diffvas_samples_bbox"][1] == [-320, -180, 1920, 1080]
    s = score_results([clip], results, "box")
    assert s["samples"] == 2 and s["authors"] == pytest.approx(per_sample[0], abs=1e-12)  # Top-1 = sample 0
    for figure in ("miou", "ap25", "ap50", "ap75"):
        assert s["oracle"]["authors"][figure] == pytest.approx(max(p[figure] for p in per_sample), abs=1e-12)
        assert s["oracle"]["authors"][figure] > 0 and s["oracle"]["strict"][figure] > 0
    # strict: sample 0 predicted nothing (raw box None: IoU 0), sample 1's raw box is the whole canvas
    assert s["strict"]["miou"] == 0.0
    assert s["oracle"]["strict"]["ap75"] == pytest.approx(1 / 6)  # only the last frame's box is the canvas
