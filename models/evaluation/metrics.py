"""Scores for amodal masks and amodal content: the paper's protocol, a stricter one, and completion quality.

Inputs are lists with one entry per clip (one object track: a clip with several objects gives one entry per
object). A mask entry is ``[T, H, W]``: bool, or float (on above 0.5), or integer (on when non-zero); a single
``[T, H, W]`` tensor is read as one clip. ``pred``, ``amodal`` (true full mask) and ``modal`` (true visible mask)
must match clip by clip. Predictions must already be at the ground truth's size.

Terms used below, per frame: the *occluded region* of a mask ``X`` is ``X AND NOT modal``, eroded once with a
5x5 square (`erode`: a pixel stays on when its whole 5x5 neighbourhood is on; pixels outside the image count as
on, as in OpenCV's ``cv2.erode``). The erosion discounts the thin rim where real annotations' modal masks are
slightly smaller than their amodal masks even without occlusion.

**Paper protocol** (`paper_protocol`), as the authors' SAIL-VOS evaluation computes it:

1. the prediction is OR-ed with the true visible mask (a prediction cannot lose visible pixels);
2. ``iou = |P ∩ A| / (|P ∪ A| + 1e-6)`` per frame, for the full mask (``A = amodal``) and for the occluded
   regions of ``P`` and ``A`` (so a frame whose two masks are both empty scores 0, not 1);
3. ``miou``: mean of the full-mask IoU over every frame of every clip, pooled (long clips weigh more);
4. ``miou_occ``: mean of the occluded-region IoU over the pooled frames whose value is >= 1e-6. This drops the
   frames with nothing hidden, but also the frames where the prediction misses the hidden part completely and
   those where it invents a hidden part that is not there: misses never lower the score.

**Strict protocol** (`strict_protocol`):

1. the prediction is scored as given (no OR with the visible mask);
2. ``iou = |P ∩ A| / |P ∪ A|``, and 1 when both are empty (nothing there, nothing predicted);
3. every frame is scored; frames are grouped only by their ground truth, never by the score. A frame is
   *occluded* when its eroded true occluded region is non-empty; *fully occluded* when, in addition, nothing of
   the object is visible (empty modal mask), otherwise *partly occluded*. Frames with nothing hidden (or a hidden
   rim thinner than the erosion) are *unoccluded*;
4. each figure is a mean over the clip's frames of that group, then a mean over the clips that have such frames
   (every clip weighs the same, whatever its length); NaN when no clip has such frames;
5. ``miou_occ`` averages the occluded-region IoU over occluded frames: a complete miss counts as 0.
   ``miss_rate_occ`` is the share of occluded frames (per clip, then over clips) with occluded-region IoU 0:
   the frames the paper protocol drops.

**Several samples** (`top_k_scores`, `completion_top_k`): with K samples per clip, *Top-1* scores the first
sample (seed + 0: what a one-sample run gives) and the *oracle Top-K* scores, for each figure separately, the
choice of one sample per clip that makes that figure highest (`oracle_choice`). Where a clip's weight in the
figure does not depend on the prediction (every figure but the paper's ``miou_occ``) that is simply each clip's
best sample; the paper's ``miou_occ`` pools only the frames the prediction scores above zero on, so a clip's
weight changes with the sample and the best choice is found over all clips together. Either way the oracle is
never below Top-1 (Top-1 is one of the choices). It is an oracle: it looks at the ground truth to choose, as the
paper's "Top-3" rows do, and measures how often one of K plausible answers is right, not what a user gets
without ground truth. Both protocols (and PSNR/SSIM) are computed by their functions on the chosen samples.

**Completion** (`completion_metrics`): colours compared inside a region (normally the true occluded region,
``amodal AND NOT modal``, not eroded), frame by frame, over frames where the region is non-empty:

* PSNR from the mean squared error over the region's pixels and the three channels, for colours in 0..1:
  ``10 * log10(1 / mse)``, with ``mse`` floored at 1e-10 (identical colours give 100 dB);
* SSIM (Gaussian window 11, sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, per channel, replicated borders) between
  the truth and the truth with the prediction pasted into the region, averaged over the region's pixels: only
  the region's colours count, and windows on its border also judge how well the fill meets its surroundings;
* ``psnr`` and ``ssim`` are means over all scored frames of all clips (pooled), ``per_clip`` per clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

PAPER_EPSILON = 1e-6  # added to the union, and the lowest occluded IoU the paper keeps
EROSION = 5  # side of the square eroding the occluded regions
PSNR_MSE_FLOOR = 1e-10
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def erode(masks: torch.Tensor, size: int = EROSION) -> torch.Tensor:
    """Binary erosion of ``[..., H, W]`` bool masks with a ``size`` x ``size`` square (odd ``size``; 1 = none).

    A pixel stays on when every pixel of the square centred on it is on; pixels outside the image count as on
    (OpenCV's default border for erosion), so an object touching the frame edge is not eaten from that side.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"erosion size must be an odd number >= 1, got {size}.")
    masks = masks.bool()
    if size == 1 or masks.numel() == 0:
        return masks.clone()
    shape = masks.shape
    off = (~masks).reshape(-1, 1, *shape[-2:]).float()
    grown = F.max_pool2d(off, size, stride=1, padding=size // 2)  # max_pool pads with -inf: outside counts as on
    return (grown == 0).reshape(shape)


def paper_protocol(pred, amodal, modal) -> dict:
    """The authors' SAIL-VOS protocol (module docstring).

    Args:
        pred, amodal, modal: lists of per-clip ``[T, H, W]`` masks (predicted full mask, true full mask, true
            visible mask), matching clip by clip.

    Returns:
        ``miou``, ``miou_occ`` (float; ``miou_occ`` NaN when no frame is kept), ``frames`` (all frames),
        ``frames_occ_scored`` (frames kept for ``miou_occ``), ``frames_occ_dropped`` (the others) and
        ``frames_occ_missed`` (dropped frames that had a true occluded region: misses the protocol hides).
    """
    clips = _clips(pred, amodal, modal)
    ious, occ, missed = [], [], 0
    for p, a, m in clips:
        p = p | m
        ious.append(_paper_iou(p, a))
        truth_occ, pred_occ = erode(a & ~m), erode(p & ~m)
        occ.append(_paper_iou(pred_occ, truth_occ))
        missed += int(((occ[-1] < PAPER_EPSILON) & truth_occ.flatten(1).any(1)).sum())
    ious, occ = torch.cat(ious), torch.cat(occ)
    kept = occ >= PAPER_EPSILON
    return {
        "miou": ious.mean().item(),
        "miou_occ": occ[kept].mean().item() if kept.any() else math.nan,
        "frames": ious.numel(),
        "frames_occ_scored": int(kept.sum()),
        "frames_occ_dropped": int((~kept).sum()),
        "frames_occ_missed": missed,
    }


def strict_protocol(pred, amodal, modal, erosion: int = EROSION) -> dict:
    """The strict protocol (module docstring): per clip, then over clips; no frame dropped by its score.

    Args:
        pred, amodal, modal: lists of per-clip ``[T, H, W]`` masks, matching clip by clip.
        erosion: side of the square eroding the occluded regions (odd; 1 = no erosion).

    Returns:
        ``miou`` (all frames), ``miou_occ`` (occluded frames, occluded-region IoU), ``miou_partial`` /
        ``miou_occ_partial`` (partly occluded frames: full-mask / occluded-region IoU), ``miou_full`` /
        ``miou_occ_full`` (fully occluded frames), ``miou_unoccluded`` (frames with nothing hidden, full mask),
        ``miss_rate_occ`` (share of occluded frames with occluded-region IoU 0), all floats (NaN when no clip
        has such frames); ``clips``, ``frames``, ``frames_occluded``, ``frames_partial``, ``frames_full``
        (counts); ``per_clip``: one dict per clip with the same figures and counts for that clip.
    """
    clips = _clips(pred, amodal, modal)
    per_clip = [_strict_clip(p, a, m, erosion) for p, a, m in clips]
    result = {key: _nanmean([c[key] for c in per_clip]) for key in _STRICT_FIGURES}
    result["clips"] = len(per_clip)
    for key in _STRICT_COUNTS:
        result[key] = sum(c[key] for c in per_clip)
    result["per_clip"] = per_clip
    return result


def completion_metrics(pred_rgb, true_rgb, region) -> dict:
    """PSNR and SSIM of completed colours inside ``region`` (module docstring).

    Args:
        pred_rgb, true_rgb: lists of per-clip ``[T, H, W, 3]`` colours, float 0..1 or uint8 (a single tensor is
            one clip).
        region: lists of per-clip ``[T, H, W]`` masks where colours are compared (normally the true hidden part,
            ``amodal & ~modal``).

    Returns:
        ``psnr`` (dB), ``ssim`` (NaN when no frame has a non-empty region), ``frames`` (frames scored), and
        ``per_clip``: one dict per clip with ``psnr``, ``ssim``, ``frames``.
    """
    preds, truths, regions = (_as_list(x, name) for x, name in
                              ((pred_rgb, "pred_rgb"), (true_rgb, "true_rgb"), (region, "region")))
    _same_count(("pred_rgb", preds), ("true_rgb", truths), ("region", regions))
    psnrs, ssims, per_clip = [], [], []
    for k, (p, t, r) in enumerate(zip(preds, truths, regions)):
        p, t = _colours(p, f"pred_rgb[{k}]"), _colours(t, f"true_rgb[{k}]")
        r = _mask(r, f"region[{k}]")
        if p.shape != t.shape or p.shape[:3] != r.shape:
            raise ValueError(f"Clip {k}: pred_rgb {tuple(p.shape)}, true_rgb {tuple(t.shape)} and region "
                             f"{tuple(r.shape)} must be [T, H, W, 3], [T, H, W, 3] and [T, H, W] with the same "
                             f"T, H, W. Resize the prediction to the ground truth's size.")
        scored = r.flatten(1).any(1)
        p, t, r = p[scored], t[scored], r[scored]
        clip_psnr, clip_ssim = _masked_psnr(p, t, r), _masked_ssim(p, t, r)
        psnrs.append(clip_psnr)
        ssims.append(clip_ssim)
        per_clip.append({"psnr": _mean(clip_psnr), "ssim": _mean(clip_ssim), "frames": int(scored.sum())})
    psnrs, ssims = torch.cat(psnrs), torch.cat(ssims)
    return {"psnr": _mean(psnrs), "ssim": _mean(ssims), "frames": psnrs.numel(), "per_clip": per_clip}


# Oracle figures per protocol, each with the count that weighs a clip in the pooled figure (None: every clip with
# a defined value weighs 1, as in the strict protocol's mean over clips). All are higher-is-better.
ORACLE_FIGURES = {
    "paper": {"miou": "frames", "miou_occ": "frames_occ_scored"},
    "strict": {"miou": None, "miou_occ": None, "miou_occ_partial": None, "miou_occ_full": None},
}
COMPLETION_ORACLE_FIGURES = {"psnr": "frames", "ssim": "frames"}
PROTOCOLS = {"paper": paper_protocol, "strict": strict_protocol}


def oracle_choice(terms) -> list[int]:
    """The sample per clip that maximises a pooled figure ``sum(numerator) / sum(denominator)``.

    Args:
        terms: ``terms[c][k] = (numerator, denominator)``: what clip ``c`` adds to the figure's sums when its
            sample ``k`` is chosen (``denominator >= 0``; ``(0, 0)`` where the clip's figure is undefined for
            that sample). A frame-pooled mean is ``(value x frames, frames)``, a mean over clips ``(value, 1)``.

    Returns:
        One sample index per clip. Ties keep the lower index, so with K = 1, or when no other sample is better,
        the choice is sample 0 everywhere (Top-1).

    When each clip's denominator is the same for all its samples the answer is each clip's largest numerator.
    When it is not (the paper's ``miou_occ``, which pools only the frames a prediction scores above zero on),
    Dinkelbach's iteration finds the exact maximum over all K^clips choices: for the current figure ``q`` choose
    per clip the sample maximising ``numerator - q x denominator``, recompute ``q``; ``q`` never decreases and
    stops changing at the optimum after a few rounds. It starts from Top-1, so the result is never below it.
    """
    terms = [list(t) for t in terms]
    if not terms:
        return []
    choice = [0] * len(terms)

    def figure(picks: list[int]) -> tuple[float, float]:
        num = sum(float(t[k][0]) for t, k in zip(terms, picks))
        den = sum(float(t[k][1]) for t, k in zip(terms, picks))
        return num, den

    num, den = figure(choice)
    current = num / den if den > 0 else 0.0
    for _ in range(100):  # converges superlinearly; the bound only guards against float ping-pong
        picks = [max(range(len(t)), key=lambda k, t=t: (float(t[k][0]) - current * float(t[k][1]), -k))
                 for t in terms]
        gain = sum(float(t[k][0]) - current * float(t[k][1]) for t, k in zip(terms, picks))
        base = sum(float(t[k][0]) - current * float(t[k][1]) for t, k in zip(terms, choice))
        if gain <= base + 1e-12 * max(1.0, abs(num)):
            break
        num, den = figure(picks)
        if den <= 0:
            break
        choice, current = picks, num / den
    return choice


def oracle_terms(scores: dict, figure: str, weight: str | None) -> tuple[float, float]:
    """``(numerator, denominator)`` of one clip's ``scores[figure]`` for `oracle_choice` (``weight``: the count
    key that weighs the clip, None for weight 1); ``(0, 0)`` when the figure is NaN."""
    value = float(scores[figure])
    if math.isnan(value):
        return 0.0, 0.0
    count = float(scores[weight]) if weight is not None else 1.0
    return value * count, count


def top_k_scores(pred_samples, amodal, modal) -> dict:
    """Top-1 and oracle Top-K under both protocols (module docstring, *Several samples*).

    Args:
        pred_samples: per clip ``[K, T, H, W]`` predicted masks, K samples (the same K for every clip); a single
            ``[K, T, H, W]`` tensor is one clip.
        amodal, modal: per clip ``[T, H, W]`` true full and visible masks, as for `paper_protocol`.

    Returns:
        ``samples`` (K), ``top1``: ``{"paper": paper_protocol(...), "strict": strict_protocol(...)}`` of the first
        samples, and ``oracle``: per protocol, ``{figure: value}`` for the figures of `ORACLE_FIGURES` plus
        ``choice``: ``{figure: [chosen sample per clip]}``.
    """
    samples = _samples(pred_samples, "pred_samples", 4)
    k = samples[0].shape[0]
    amodal, modal = _as_list(amodal, "amodal"), _as_list(modal, "modal")
    _same_count(("pred_samples", samples), ("amodal", amodal), ("modal", modal))
    result = {"samples": k, "top1": {}, "oracle": {}}
    for name, protocol in PROTOCOLS.items():
        result["top1"][name] = protocol([s[0] for s in samples], amodal, modal)
        # each clip's figures for each sample, scored alone: [clip][sample] -> dict
        alone = [[protocol([s[j]], [a], [m]) for j in range(k)] for s, a, m in zip(samples, amodal, modal)]
        result["oracle"][name] = _oracle(
            ORACLE_FIGURES[name], alone, lambda chosen: protocol(chosen, amodal, modal), samples)
    return result


def completion_top_k(pred_samples, true_rgb, region) -> dict:
    """Top-1 and oracle Top-K of completed colours (PSNR and SSIM, each best of K per clip).

    Args:
        pred_samples: per clip ``[K, T, H, W, 3]`` completed colours, K samples (the same K for every clip); a
            single tensor is one clip.
        true_rgb, region: per clip ``[T, H, W, 3]`` true colours and ``[T, H, W]`` scored region, as for
            `completion_metrics`.

    Returns:
        ``samples`` (K), ``top1``: `completion_metrics` of the first samples, ``oracle``: ``psnr``, ``ssim`` (each
        over its own choice of samples; the scored frames are fixed by the region, so this is each clip's best
        sample) and ``choice``: ``{"psnr": [...], "ssim": [...]}``.
    """
    samples = _samples(pred_samples, "pred_samples", 5)
    k = samples[0].shape[0]
    truths, regions = _as_list(true_rgb, "true_rgb"), _as_list(region, "region")
    _same_count(("pred_samples", samples), ("true_rgb", truths), ("region", regions))
    per_sample = [completion_metrics([s[j] for s in samples], truths, regions)["per_clip"] for j in range(k)]
    alone = [[per_sample[j][c] for j in range(k)] for c in range(len(samples))]
    return {"samples": k, "top1": completion_metrics([s[0] for s in samples], truths, regions),
            "oracle": _oracle(COMPLETION_ORACLE_FIGURES, alone,
                              lambda chosen: completion_metrics(chosen, truths, regions), samples)}


def _oracle(figures: dict, alone: list, score, samples: list) -> dict:
    """``{figure: value, "choice": {figure: [...]}}``: `oracle_choice` on each clip's per-sample scores
    (``alone[clip][sample]``), then ``score`` (the protocol over all clips) on the chosen samples."""
    oracle = {"choice": {}}
    for figure, weight in figures.items():
        choice = oracle_choice([[oracle_terms(s, figure, weight) for s in clip] for clip in alone])
        oracle[figure] = score([s[j] for s, j in zip(samples, choice)])[figure]
        oracle["choice"][figure] = choice
    return oracle


def _samples(x, name: str, ndim: int) -> list:
    """Per-clip ``[K, ...]`` tensors with ``ndim`` dimensions and the same K."""
    samples = _as_list(x, name)
    counts = {s.shape[0] if torch.is_tensor(s) and s.ndim == ndim else None for s in samples}
    if len(counts) != 1 or None in counts:
        layout = "[K, T, H, W]" if ndim == 4 else "[K, T, H, W, 3]"
        raise ValueError(f"{name} must hold one {layout} tensor per clip with the same K; got shapes "
                         f"{[tuple(s.shape) if torch.is_tensor(s) else type(s).__name__ for s in samples]}.")
    return samples


# -- strict protocol, one clip ----------------------------------------------------------------------------------

_STRICT_FIGURES = ("miou", "miou_occ", "miou_partial", "miou_occ_partial", "miou_full", "miou_occ_full",
                   "miou_unoccluded", "miss_rate_occ")
_STRICT_COUNTS = ("frames", "frames_occluded", "frames_partial", "frames_full")


def _strict_clip(p: torch.Tensor, a: torch.Tensor, m: torch.Tensor, erosion: int) -> dict:
    iou = _iou(p, a)
    truth_occ, pred_occ = erode(a & ~m, erosion), erode(p & ~m, erosion)
    iou_occ = _iou(pred_occ, truth_occ)
    occluded = truth_occ.flatten(1).any(1)
    full = occluded & ~m.flatten(1).any(1)
    partial = occluded & ~full
    return {
        "miou": _mean(iou),
        "miou_occ": _mean(iou_occ[occluded]),
        "miou_partial": _mean(iou[partial]),
        "miou_occ_partial": _mean(iou_occ[partial]),
        "miou_full": _mean(iou[full]),
        "miou_occ_full": _mean(iou_occ[full]),
        "miou_unoccluded": _mean(iou[~occluded]),
        "miss_rate_occ": _mean((iou_occ[occluded] == 0).double()),
        "frames": iou.numel(),
        "frames_occluded": int(occluded.sum()),
        "frames_partial": int(partial.sum()),
        "frames_full": int(full.sum()),
    }


# -- helpers ----------------------------------------------------------------------------------------------------

def _paper_iou(p: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``[T]`` float64: ``|p ∩ a| / (|p ∪ a| + 1e-6)`` per frame."""
    inter = (p & a).flatten(1).sum(1).double()
    union = (p | a).flatten(1).sum(1).double()
    return inter / (union + PAPER_EPSILON)


def _iou(p: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``[T]`` float64: ``|p ∩ a| / |p ∪ a|`` per frame, 1 where both are empty."""
    inter = (p & a).flatten(1).sum(1).double()
    union = (p | a).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def _masked_psnr(p: torch.Tensor, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``[T]`` PSNR over the region's pixels (all three channels), colours 0..1."""
    weight = r.unsqueeze(-1).double()
    mse = (((p - t) ** 2) * weight).flatten(1).sum(1) / (weight.flatten(1).sum(1) * 3)
    return 10 * torch.log10(1 / mse.clamp(min=PSNR_MSE_FLOOR))


def _masked_ssim(p: torch.Tensor, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``[T]`` SSIM map (truth vs truth with the prediction pasted in the region) averaged over the region."""
    if r.shape[0] == 0:
        return torch.zeros(0, dtype=torch.float64)
    pasted = torch.where(r.unsqueeze(-1), p, t)
    x, y = pasted.permute(0, 3, 1, 2).double(), t.permute(0, 3, 1, 2).double()
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-coords**2 / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, -1, -1)

    def blur(z: torch.Tensor) -> torch.Tensor:
        pad = SSIM_WINDOW // 2
        return F.conv2d(F.pad(z, (pad, pad, pad, pad), mode="replicate"), kernel, groups=3)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    weight = r.unsqueeze(1).double().expand_as(ssim_map)
    return (ssim_map * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)


def _clips(pred, amodal, modal) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    lists = [(name, _as_list(x, name)) for x, name in ((pred, "pred"), (amodal, "amodal"), (modal, "modal"))]
    _same_count(*lists)
    clips = []
    for k, (p, a, m) in enumerate(zip(*(items for _, items in lists))):
        p, a, m = _mask(p, f"pred[{k}]"), _mask(a, f"amodal[{k}]"), _mask(m, f"modal[{k}]")
        if not p.shape == a.shape == m.shape:
            raise ValueError(f"Clip {k}: pred {tuple(p.shape)}, amodal {tuple(a.shape)} and modal {tuple(m.shape)} "
                             f"must have the same [T, H, W]. Resize the prediction to the ground truth's size.")
        clips.append((p, a, m))
    return clips


def _as_list(x, name: str) -> list:
    if torch.is_tensor(x):
        return [x]
    if isinstance(x, Sequence) and not isinstance(x, str) and len(x) > 0:
        return list(x)
    raise ValueError(f"{name} must be a non-empty list of per-clip tensors (or one tensor for one clip); "
                     f"got {type(x).__name__}{' (empty)' if isinstance(x, Sequence) else ''}.")


def _same_count(*named: tuple[str, list]) -> None:
    counts = {name: len(items) for name, items in named}
    if len(set(counts.values())) > 1:
        raise ValueError(f"Inputs hold different numbers of clips: {counts}. Pass one entry per clip to each.")


def _mask(x, name: str) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a [T, H, W] mask; got {shape}. Pass one object's frames per clip.")
    if x.dtype == torch.bool:
        return x.cpu()
    if x.is_floating_point():
        return (x > 0.5).cpu()
    return (x != 0).cpu()


def _colours(x, name: str) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[-1] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be [T, H, W, 3] colours; got {shape}.")
    return x.cpu().double() / 255 if x.dtype == torch.uint8 else x.cpu().double()


def _mean(values: torch.Tensor) -> float:
    return values.double().mean().item() if values.numel() else math.nan


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def percent(value: float, unit: str = "") -> str:
    """A share (0..1) for a table: ``"61.3"`` + ``unit``, or ``"-"`` where it is undefined (NaN)."""
    return "-" if math.isnan(value) else f"{100 * value:.1f}{unit}"


def number(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals for a table, or ``"-"`` where it is undefined (NaN)."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"
