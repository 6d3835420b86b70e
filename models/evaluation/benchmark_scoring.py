"""Scores of result files in the authors' format on real datasets: the authors' protocols and the strict one.

**Masks (SAIL-VOS-2D, MOVi)**, per clip (one object track):

* ground truth: the annotation's visible and full masks, brought to the scoring size with OpenCV-style bilinear
  (`resize_linear`; SAIL-VOS: 800x1280, which is its native size; MOVi: its native size);
* prediction: the frame's ``diffvas_res_rle`` decoded at its own RLE size (the authors write 256x512) and brought
  to the scoring size the same way (``cv2.resize`` INTER_LINEAR on a {0, 1} uint8 mask);
* **authors' figures** (``metric_diffusion_vas_sailvos.py``): `metrics.paper_protocol` on these masks (prediction
  OR true visible mask, ``miou`` over all frames pooled, ``miou_occ`` after 5x5 erosion over the frames with
  occluded IoU >= 1e-6). Clips are scored one at a time and pooled here by frame counts (same result as one call);
* **strict figures**: `metrics.strict_protocol` on the same masks, without the OR (per-clip means, nothing dropped).

**Boxes (TAO-Amodal)**, per frame: IoU of the true full box and ``diffvas_res_bbox`` (``[x, y, w, h]``, continuous,
no +1, union 0 gives 0; boxes may leave the frame and are not clipped). **Authors' figures**
(``metric_diffusion_vas_tao_amodal.py``): ``miou`` = mean over all frames; ``ap25/ap50/ap75`` = share of frames
with IoU strictly above 0.25 / 0.5 / 0.75 (success rates, not COCO AP). The authors' ``diffvas_res_bbox`` is
already the union with the true visible box (and the visible box where nothing was predicted). **Strict figures**
use ``diffvas_raw_bbox`` (the prediction alone, None where it is empty: IoU 0, or 1 when the true box is empty
too), written by this project's runner and absent from the authors' files (then the strict figures are NaN):
per-clip means of the same IoU and success rates, then means over clips.

**Several samples** (result files written with ``benchmark run --samples K``): the authors' fields hold sample 0
and are scored as above (*Top-1*); the per-frame lists ``diffvas_samples_rle`` / ``diffvas_samples_bbox`` and
``diffvas_samples_raw_bbox`` are scored as the **oracle Top-K** under both protocols: for each figure, the one
sample per clip that makes the figure highest (`metrics.oracle_choice`; each clip's best sample, except for the
authors' ``miou_occ``, whose scored frames depend on the sample), as the paper's Top-3 rows. The oracle chooses
with the ground truth, so it is never below Top-1 and is not what a user gets without it.

**Visibility buckets**: a clip's visibility is the mean over its frames of IoU(true visible, true full), the
quantity the authors' ``lo_thresh``/``hi_thresh`` filter on (mask IoU with +1e-6 for masks; box IoU of the true
full box and the visible mask's box for TAO, an empty visible mask counting 0). Each bucket ``[lo, hi)`` (the
last one closed) reports both sets of figures over its clips. The authors' bucket edges are not published.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..datasets import rle
from ..datasets.clip import AmodalClip, modal_box
from ..datasets.resize import resize_linear_stack
from .metrics import ORACLE_FIGURES, PAPER_EPSILON, oracle_choice, oracle_terms, paper_protocol, strict_protocol

log = logging.getLogger(__name__)

DEFAULT_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0)  # visibility edges; this project's choice (the authors' are unknown)
SUCCESS_THRESHOLDS = (0.25, 0.5, 0.75)  # TAO "ap25/ap50/ap75": IoU strictly above
MASK_KEY, BOX_KEY, RAW_BOX_KEY = "diffvas_res_rle", "diffvas_res_bbox", "diffvas_raw_bbox"
# K samples per frame (benchmark run --samples K); sample 0 is also in the fields above
SAMPLE_MASK_KEY, SAMPLE_BOX_KEY, SAMPLE_RAW_BOX_KEY = "diffvas_samples_rle", "diffvas_samples_bbox", \
    "diffvas_samples_raw_bbox"
STRICT_MASK_FIGURES = ("miou", "miou_occ", "miou_partial", "miou_occ_partial", "miou_full", "miou_occ_full",
                       "miou_unoccluded", "miss_rate_occ")


@dataclass
class ClipScore:
    """One clip's contribution, enough to pool the authors' figures and average the strict ones."""

    name: str
    visibility: float
    frames: int
    authors: dict = field(default_factory=dict)  # sums and counts to pool
    strict: dict = field(default_factory=dict)  # the clip's strict figures


def load_results(file) -> dict:
    """An authors'-format result JSON: ``{frame key: {field: value}}``."""
    path = Path(file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read the result file {path} ({error}).") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a result file is a JSON object keyed by frame; got {type(data).__name__}.")
    return data


def _frames_of(results: dict, clip: AmodalClip, key: str, source: str) -> list | None:
    """The clip's per-frame ``key`` values; None when the clip has no result at all (missing)."""
    present = [k in results for k in clip.frame_keys]
    if not any(present):
        return None
    if not all(present):
        missing = clip.frame_keys[present.index(False)]
        raise ValueError(f"{source}: clip {clip.name} ({clip.where()}) has results for {sum(present)} of "
                         f"{len(present)} frames; frame {missing} is missing. Re-run the clip.")
    values = []
    for k in clip.frame_keys:
        item = results[k]
        if not isinstance(item, dict) or key not in item:
            raise ValueError(f"{source}: result {k} has no '{key}' field.")
        values.append(item[key])
    return values


def mask_visibility(modal: torch.Tensor, amodal: torch.Tensor) -> float:
    """Mean over frames of ``|modal ∩ amodal| / (|modal ∪ amodal| + 1e-6)`` (the authors' clip filter)."""
    inter = (modal & amodal).flatten(1).sum(1).double()
    union = (modal | amodal).flatten(1).sum(1).double()
    return (inter / (union + PAPER_EPSILON)).mean().item()


def score_mask_clip(clip: AmodalClip, pred_rles: Sequence[dict], size: tuple[int, int] | None,
                    source: str = "predictions") -> ClipScore:
    """Scores one SAIL-VOS/MOVi clip (module docstring); ``size`` is the scoring size (None: native)."""
    return score_mask_samples(clip, [pred_rles], size, source)[0]


def score_mask_samples(clip: AmodalClip, samples: Sequence[Sequence[dict]], size: tuple[int, int] | None,
                       source: str = "predictions", field: str = MASK_KEY) -> list[ClipScore]:
    """`score_mask_clip` for each of K predictions of one clip (``samples[k]``: per-frame RLEs of sample k); the
    ground truth is brought to the scoring size once."""
    size = tuple(size) if size is not None else clip.size
    modal_full, amodal_full = _gt_at(clip.modal, size), _gt_at(clip.amodal, size)
    visibility = mask_visibility(modal_full, amodal_full)
    scores = []
    for pred_rles in samples:
        pred = []
        for k, r in enumerate(pred_rles):
            mask = rle.decode(r, f"{source}, {clip.frame_keys[k]}, {field}").astype(np.uint8)
            pred.append(mask)
        shapes = {p.shape for p in pred}
        if len(shapes) != 1:
            raise ValueError(f"{source}: clip {clip.name} has predictions of different sizes {sorted(shapes)}.")
        pred = torch.from_numpy(resize_linear_stack(np.stack(pred), size) > 0)
        pred, amodal, modal = crop_to_content(pred, amodal_full, modal_full)
        paper = paper_protocol([pred], [amodal], [modal])
        strict = strict_protocol([pred], [amodal], [modal])["per_clip"][0]
        authors = {"frames": paper["frames"], "iou_sum": paper["miou"] * paper["frames"],
                   "occ_scored": paper["frames_occ_scored"],
                   "occ_sum": paper["miou_occ"] * paper["frames_occ_scored"] if paper["frames_occ_scored"] else 0.0,
                   "occ_missed": paper["frames_occ_missed"]}
        scores.append(ClipScore(clip.name, visibility, clip.num_frames, authors, strict))
    return scores


def crop_to_content(*masks: torch.Tensor, margin: int = 3) -> tuple[torch.Tensor, ...]:
    """Crops ``[T, H, W]`` masks to the box holding every on pixel of any of them, ``margin`` pixels wider
    (clamped to the image). Scores do not change: pixel counts outside are 0, and with a margin wider than the
    5x5 erosion's radius every eroded pixel sees the same neighbourhood (at the real image border the crop
    keeps the border). Scoring 800x1280 frames gets many times faster for typical objects."""
    union = masks[0].clone()
    for m in masks[1:]:
        union |= m
    rows, cols = union.any(dim=(0, 2)), union.any(dim=(0, 1))
    if not bool(rows.any()):
        return tuple(m[:, :1, :1] for m in masks)
    r = torch.nonzero(rows).flatten()
    c = torch.nonzero(cols).flatten()
    height, width = union.shape[1:]
    top, bottom = max(int(r[0]) - margin, 0), min(int(r[-1]) + margin + 1, height)
    left, right = max(int(c[0]) - margin, 0), min(int(c[-1]) + margin + 1, width)
    return tuple(m[:, top:bottom, left:right] for m in masks)


def box_iou(a, b) -> float:
    """The authors' box IoU on ``[x, y, w, h]`` (continuous, no +1; 0 when the union is 0)."""
    x1, y1, w1, h1 = (float(v) for v in a)
    x2, y2, w2, h2 = (float(v) for v in b)
    iw = max(0.0, min(x1 + w1, x2 + w2) - max(x1, x2))
    ih = max(0.0, min(y1 + h1, y2 + h2) - max(y1, y2))
    inter = iw * ih
    union = w1 * h1 + w2 * h2 - inter
    return inter / union if union != 0 else 0.0


def strict_box_iou(truth, pred) -> float:
    """Box IoU for the strict figures: an empty prediction (None or zero area) scores 0, or 1 when the true box
    is empty too."""
    truth_empty = float(truth[2]) <= 0 or float(truth[3]) <= 0
    pred_empty = pred is None or float(pred[2]) <= 0 or float(pred[3]) <= 0
    if truth_empty or pred_empty:
        return 1.0 if truth_empty and pred_empty else 0.0
    return box_iou(truth, pred)


def box_visibility(clip: AmodalClip) -> float:
    """Mean over frames of box IoU(true full box, box of the true visible mask); an empty visible mask gives 0."""
    values = []
    for truth, mask in zip(clip.amodal_boxes.tolist(), clip.modal.numpy()):
        box = modal_box(mask)
        values.append(box_iou(truth, box) if box is not None else 0.0)
    return float(np.mean(values))


def score_box_clip(clip: AmodalClip, boxes: Sequence, raw_boxes: Sequence | None,
                   source: str = "predictions") -> ClipScore:
    """Scores one TAO-Amodal clip (module docstring)."""
    truths = clip.amodal_boxes.tolist()
    for k, box in enumerate(boxes):
        _check_box(box, f"{source}, {clip.frame_keys[k]}, {BOX_KEY}", allow_none=False)
    ious = [box_iou(t, b) for t, b in zip(truths, boxes)]
    authors = {"frames": len(ious), "iou_sum": sum(ious)}
    for th in SUCCESS_THRESHOLDS:
        authors[_ap(th)] = sum(v > th for v in ious)
    strict = {"miou": math.nan, **{_ap(th): math.nan for th in SUCCESS_THRESHOLDS}}
    if raw_boxes is not None:
        for k, box in enumerate(raw_boxes):
            _check_box(box, f"{source}, {clip.frame_keys[k]}, {RAW_BOX_KEY}", allow_none=True)
        sious = [strict_box_iou(t, b) for t, b in zip(truths, raw_boxes)]
        strict = {"miou": float(np.mean(sious)),
                  **{_ap(th): float(np.mean([v > th for v in sious])) for th in SUCCESS_THRESHOLDS}}
    return ClipScore(clip.name, box_visibility(clip), clip.num_frames, authors, strict)


def score_results(clips: Iterable[AmodalClip], results: dict, kind: str, size: tuple[int, int] | None = None,
                  buckets: Sequence[float] = DEFAULT_BUCKETS, missing: str = "error",
                  source: str = "predictions") -> dict:
    """Scores every clip against ``results`` (authors' result format) and summarises (`summarize`).

    Args:
        clips: annotated clips (from a reader; empty entries already skipped).
        results: the result JSON's dict.
        kind: ``"mask"`` (SAIL-VOS, MOVi) or ``"box"`` (TAO-Amodal).
        size: mask scoring size (None: native).
        buckets: visibility bucket edges, increasing, in 0..1.
        missing: ``"error"`` (a clip without results is an error, as in the authors' script) or ``"skip"``.

    With K samples per frame (module docstring, *Several samples*) the summary also holds ``samples`` (K) and
    ``oracle`` (`oracle_summary`); the other figures are Top-1.
    """
    if kind not in ("mask", "box"):
        raise ValueError(f"kind must be 'mask' or 'box', got {kind!r}.")
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}.")
    main_key, sample_key = (MASK_KEY, SAMPLE_MASK_KEY) if kind == "mask" else (BOX_KEY, SAMPLE_BOX_KEY)
    scores, per_sample, skipped, counts = [], [], [], {}
    for clip in clips:
        values = _frames_of(results, clip, main_key, source)
        if values is None:
            if missing == "error":
                raise ValueError(f"{source} has no results for clip {clip.name} ({clip.where()}). Run the "
                                 f"benchmark on it first, or pass --missing skip to score the clips present.")
            skipped.append(clip.name)
            continue
        first = results[clip.frame_keys[0]]
        samples = _samples_of(results, clip, sample_key, values, source) if sample_key in first else [values]
        counts.setdefault(len(samples), clip.name)
        if kind == "mask":
            clip_scores = score_mask_samples(clip, samples, size, source, sample_key if len(samples) > 1 else MASK_KEY)
        else:
            raw = None
            if RAW_BOX_KEY in first:
                raw = [_frames_of(results, clip, RAW_BOX_KEY, source)]
                if len(samples) > 1:
                    raw = _samples_of(results, clip, SAMPLE_RAW_BOX_KEY, raw[0], source)
            clip_scores = [score_box_clip(clip, b, raw[k] if raw is not None else None, source)
                           for k, b in enumerate(samples)]
        scores.append(clip_scores[0])
        per_sample.append(clip_scores)
    if not scores:
        raise ValueError(f"{source}: no clip could be scored ({len(skipped)} without results).")
    if len(counts) > 1:
        listed = ", ".join(f"{k} sample(s) (e.g. clip {name})" for k, name in sorted(counts.items()))
        raise ValueError(f"{source}: clips hold different numbers of samples: {listed}. Re-run `benchmark run "
                         f"--samples K` with one K (it redoes the clips with another count).")
    summary = summarize(scores, kind, buckets)
    summary["clips_without_results"] = len(skipped)
    if len(per_sample[0]) > 1:
        summary["samples"] = len(per_sample[0])
        summary["oracle"] = oracle_summary(per_sample, kind)
    return summary


def oracle_summary(per_sample: Sequence[Sequence[ClipScore]], kind: str) -> dict:
    """The oracle Top-K of ``per_sample[clip][sample]``: per protocol ``{figure: value}`` over, for each figure,
    the choice of one sample per clip that makes it highest (`metrics.oracle_choice`), and ``chosen``: per
    protocol and figure how many clips chose each sample."""
    k = len(per_sample[0])
    result = {"samples": k, "authors": {}, "strict": {}, "chosen": {"authors": {}, "strict": {}}}
    for protocol, figures in _oracle_terms(kind).items():
        for figure, terms in figures.items():
            choice = oracle_choice([[terms(s) for s in clip] for clip in per_sample])
            pooled = _pool([clip[j] for clip, j in zip(per_sample, choice)], kind)
            result[protocol][figure] = pooled[protocol][figure]
            result["chosen"][protocol][figure] = [choice.count(j) for j in range(k)]
    return result


def _oracle_terms(kind: str) -> dict:
    """Per protocol, ``{figure: ClipScore -> (numerator, denominator)}``: what a clip adds to the pooled figure
    (the authors' figures pool frames; the strict ones average clips, a NaN clip adds nothing)."""
    def pooled(total: str, count: str):
        return lambda s: (float(s.authors[total]), float(s.authors[count]))

    def per_clip(figure: str):
        return lambda s: oracle_terms(s.strict, figure, None)

    if kind == "mask":
        authors = {"miou": pooled("iou_sum", "frames"), "miou_occ": pooled("occ_sum", "occ_scored")}
        strict = {f: per_clip(f) for f in ORACLE_FIGURES["strict"]}
    else:
        figures = ("miou", *map(_ap, SUCCESS_THRESHOLDS))
        authors = {"miou": pooled("iou_sum", "frames"), **{_ap(th): pooled(_ap(th), "frames")
                                                           for th in SUCCESS_THRESHOLDS}}
        strict = {f: per_clip(f) for f in figures}
    return {"authors": authors, "strict": strict}


def _samples_of(results: dict, clip: AmodalClip, key: str, first: list, source: str) -> list[list]:
    """The clip's ``key`` lists (K values per frame) as K per-frame lists; sample 0 must equal ``first`` (the
    authors' field, which holds it)."""
    values = _frames_of(results, clip, key, source)
    lengths = {len(v) if isinstance(v, list) else -1 for v in values}
    if len(lengths) != 1 or min(lengths) < 1:
        raise ValueError(f"{source}: clip {clip.name}: every frame's '{key}' must be a list of the same number "
                         f"(K >= 1) of samples; re-run the clip.")
    samples = [list(frame) for frame in zip(*values)]
    if samples[0] != list(first):
        raise ValueError(f"{source}: clip {clip.name}: the first of '{key}' differs from the authors' field "
                         f"(both hold sample 0); the file was edited or mixed from two runs. Re-run the clip.")
    return samples


def summarize(scores: Sequence[ClipScore], kind: str, buckets: Sequence[float] = DEFAULT_BUCKETS) -> dict:
    """``{"authors": ..., "strict": ..., "clips", "frames", "buckets": [...]}`` over ``scores``; each bucket
    holds ``lo``, ``hi``, ``clips`` and both figure sets for the clips whose visibility falls in it."""
    edges = [float(e) for e in buckets]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"bucket edges must be at least two increasing numbers; got {list(buckets)}.")
    result = _pool(scores, kind)
    result["buckets"] = []
    for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
        last = i == len(edges) - 2
        inside = [s for s in scores if lo <= s.visibility and (s.visibility <= hi if last else s.visibility < hi)]
        entry = {"lo": lo, "hi": hi, **_pool(inside, kind)}
        result["buckets"].append(entry)
    return result


def format_summary(summary: dict, dataset: str) -> str:
    """Human-readable table of a `summarize` result, figures labelled by protocol (and Top-1 / oracle Top-K
    with samples; a ``partial`` entry, ``{"limit": N, "entries": M}``, says the run covered only N clips)."""
    authors, strict = summary["authors"], summary["strict"]
    lines = [f"{dataset}: {summary['clips']} clips, {summary['frames']} frames"
             + (f" ({summary['clips_without_results']} clips without results left out)"
                if summary.get("clips_without_results") else "")]
    if summary.get("partial"):
        part = summary["partial"]
        lines.append(f"partial run (--limit {part['limit']}): scored on the {summary['clips']} clip(s) that ran, of "
                     f"{part['entries']} entries in the annotation file; these are not the dataset's figures")
    k = summary.get("samples", 1)
    if k > 1:
        lines.append(f"Top-1 (sample 0 of {k}):")
    lines.append("authors' protocol: " + _figures(authors))
    lines.append("strict protocol:   " + _figures(strict))
    if "oracle" in summary:
        oracle = summary["oracle"]
        lines.append(f"oracle Top-{k} (for each figure the best of the {k} samples per clip, chosen with the "
                     f"ground truth as the paper's Top-{k} rows; an upper bound, not what a user gets):")
        lines.append("oracle authors' protocol: " + _figures(oracle["authors"]))
        lines.append("oracle strict protocol:   " + _figures(oracle["strict"]))
    lines.append("by visibility (mean IoU of true visible vs full, per clip" + (", Top-1" if k > 1 else "") + "):")
    brief = ("miou", "miou_occ", "ap50")
    for b in summary["buckets"]:
        strict_brief = {k: v for k, v in b["strict"].items() if k in brief}
        lines.append(f"  [{b['lo']:.2f}, {b['hi']:.2f}] {b['clips']:5d} clips | authors: {_figures(b['authors'])}"
                     f" | strict: {_figures(strict_brief)}")
    return "\n".join(lines)


# -- pooling ----------------------------------------------------------------------------------------------------

def _pool(scores: Sequence[ClipScore], kind: str) -> dict:
    frames = sum(s.frames for s in scores)
    if kind == "mask":
        scored = sum(s.authors["occ_scored"] for s in scores)
        authors = {
            "miou": sum(s.authors["iou_sum"] for s in scores) / frames if frames else math.nan,
            "miou_occ": sum(s.authors["occ_sum"] for s in scores) / scored if scored else math.nan,
            "frames_occ_scored": scored,
            "frames_occ_dropped": frames - scored,
            "frames_occ_missed": sum(s.authors["occ_missed"] for s in scores),
        }
        strict = {k: _nanmean([s.strict[k] for s in scores]) for k in STRICT_MASK_FIGURES}
    else:
        authors = {"miou": sum(s.authors["iou_sum"] for s in scores) / frames if frames else math.nan}
        for th in SUCCESS_THRESHOLDS:
            authors[_ap(th)] = sum(s.authors[_ap(th)] for s in scores) / frames if frames else math.nan
        strict = {k: _nanmean([s.strict[k] for s in scores]) for k in ("miou", *map(_ap, SUCCESS_THRESHOLDS))}
    return {"clips": len(scores), "frames": frames, "authors": authors, "strict": strict}


def _ap(threshold: float) -> str:
    return f"ap{round(threshold * 100)}"


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(sum(finite) / len(finite)) if finite else math.nan


def _figures(figures: dict) -> str:
    parts = []
    for key, value in figures.items():
        if isinstance(value, float):
            parts.append(f"{key} {'n/a' if math.isnan(value) else f'{100 * value:.2f}'}")
    return ", ".join(parts)


def _gt_at(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(masks.shape[1:]) == tuple(size):
        return masks.bool()
    return torch.from_numpy(resize_linear_stack(masks.numpy().astype(np.uint8), size) > 0)


def _check_box(box, where: str, allow_none: bool) -> None:
    if box is None and allow_none:
        return
    if not (isinstance(box, (list, tuple)) and len(box) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
        raise ValueError(f"{where}: a box must be [x, y, w, h] numbers; got {box!r}.")
