"""``EvaluateAmodal`` node: scores amodal masks (and optionally completed colours) against ground truth.

ComfyUI has no object dimension: several objects travel as one batch of ``N * T`` frames stacked object by
object (object 0's frames 0..T-1, then object 1's, ...); ``objects`` says how many. Masks are on above 0.5.
"""

from __future__ import annotations

from ..models import settings as S
from ..models.settings import Link
from .adapters import OBJECT_STACKING
from .inputs import node_inputs
from ..models import (completion_metrics, completion_top_k, number, paper_protocol, percent, strict_protocol,
                      top_k_scores)
from ..models import select_sample as select

_STACKING = OBJECT_STACKING + " Set objects to N."


class EvaluateAmodal:
    DESCRIPTION = (
        "Scores predicted amodal masks against the true full masks of a clip with ground truth (e.g. a synthetic "
        "benchmark clip), by the paper's protocol (prediction OR visible mask, frames pooled, occluded-region IoU "
        "only over frames scoring above zero) and by a strict one (per object, every occluded frame counts, a "
        "missed hidden part scores 0). With completed and true colours it also reports PSNR/SSIM inside the "
        "hidden part. With samples K > 1 (AmodalMaskSVD combine all) it scores the first sample (Top-1) and the "
        "oracle Top-K: per object the best of the K samples, chosen with the ground truth, as the paper's Top-3 rows."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "evaluate"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_TOOLTIPS = ("The scores as text (IoU in percent).",)

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(
            required=(Link("amodal_masks", "MASK", "Predicted full object masks, N*T frames. " + _STACKING),
                      Link("true_amodal_masks", "MASK", "True full object masks, same frames and size."),
                      Link("true_modal_masks", "MASK", "True visible masks, same frames and size."),
                      S.SCORED_OBJECTS),
            optional=(Link("amodal_rgb", "IMAGE", "Completed object colours (stage 2), N*T frames."),
                      Link("true_amodal_rgb", "IMAGE", "True object colours, hidden part included, N*T frames."),
                      S.SCORED_SAMPLES))

    def evaluate(self, amodal_masks, true_amodal_masks, true_modal_masks, objects=1, amodal_rgb=None,
                 true_amodal_rgb=None, samples=1):
        amodal = _split(true_amodal_masks, objects, "true_amodal_masks")
        modal = _split(true_modal_masks, objects, "true_modal_masks")
        all_samples, all_rgb = amodal_masks, None
        if samples > 1:
            amodal_masks = select(_batch(amodal_masks), objects, samples, 0)
            if amodal_rgb is not None and amodal_rgb.shape[0] == samples * true_amodal_masks.shape[0]:
                all_rgb, amodal_rgb = amodal_rgb, select(amodal_rgb, objects, samples, 0)
        pred = _split(amodal_masks, objects, "amodal_masks")
        paper, strict = paper_protocol(pred, amodal, modal), strict_protocol(pred, amodal, modal)
        lines = [
            f"{objects} object(s), {paper['frames']} frames: {strict['frames_occluded']} occluded "
            f"({strict['frames_partial']} partly, {strict['frames_full']} fully)",
            f"paper:  mIoU {percent(paper['miou'], '%')}  mIoU_occ {percent(paper['miou_occ'], '%')}  "
            f"(occluded IoU over {paper['frames_occ_scored']} frames; {paper['frames_occ_missed']} missed frames "
            f"dropped)",
            f"strict: mIoU {percent(strict['miou'], '%')}  mIoU_occ {percent(strict['miou_occ'], '%')}  partly occ "
            f"{percent(strict['miou_occ_partial'], '%')}  fully occ {percent(strict['miou_occ_full'], '%')}  miss rate "
            f"{percent(strict['miss_rate_occ'], '%')}",
        ]
        for k, clip in enumerate(strict["per_clip"]):
            lines.append(f"  object {k + 1}: mIoU {percent(clip['miou'], '%')}  "
                         f"mIoU_occ {percent(clip['miou_occ'], '%')}  "
                         f"({clip['frames_occluded']}/{clip['frames']} frames occluded)")
        if samples > 1:
            lines[1:1] = [f"Top-1 (sample 0 of {samples}):"]
            lines.extend(_oracle_lines(_split(_batch(all_samples), objects, "amodal_masks"), amodal, modal, samples))
        if (amodal_rgb is None) != (true_amodal_rgb is None):
            raise ValueError("Connect both amodal_rgb and true_amodal_rgb to score completions, or neither.")
        if amodal_rgb is not None:
            hidden = [(a > 0.5) & (m <= 0.5) for a, m in zip(amodal, modal)]  # masks are on above 0.5
            scores = completion_metrics(_split(amodal_rgb, objects, "amodal_rgb"),
                                        _split(true_amodal_rgb, objects, "true_amodal_rgb"), hidden)
            lines.append(f"completion in the hidden part{' (Top-1, sample 0)' if all_rgb is not None else ''}: "
                         f"PSNR {number(scores['psnr'], 2)} dB  SSIM {number(scores['ssim'], 4)}  "
                         f"({scores['frames']} frames)")
            if all_rgb is not None:
                stacks = [c.reshape(samples, -1, *c.shape[1:]) for c in _split(all_rgb, objects, "amodal_rgb")]
                best = completion_top_k(stacks, _split(true_amodal_rgb, objects, "true_amodal_rgb"),
                                        hidden)["oracle"]
                lines.append(f"completion oracle Top-{samples} (PSNR and SSIM each the best of {samples} samples "
                             f"per object): PSNR {number(best['psnr'], 2)} dB  SSIM {number(best['ssim'], 4)}")
        report = "\n".join(lines)
        return {"ui": {"text": [report]}, "result": (report,)}


def _oracle_lines(per_object: list, amodal: list, modal: list, samples: int) -> list[str]:
    """The oracle Top-K lines: ``per_object`` holds each object's ``[K*T, H, W]`` samples."""
    stacks = [p.reshape(samples, -1, *p.shape[1:]) for p in per_object]
    oracle = top_k_scores(stacks, amodal, modal)["oracle"]
    paper, strict = oracle["paper"], oracle["strict"]
    return [
        f"oracle Top-{samples} (best of {samples} samples per object, chosen with the ground truth):",
        f"paper:  mIoU {percent(paper['miou'], '%')}  mIoU_occ {percent(paper['miou_occ'], '%')}",
        f"strict: mIoU {percent(strict['miou'], '%')}  mIoU_occ {percent(strict['miou_occ'], '%')}  partly occ "
        f"{percent(strict['miou_occ_partial'], '%')}  fully occ {percent(strict['miou_occ_full'], '%')}",
        "  chosen samples (strict mIoU_occ): " + ", ".join(
            f"object {k + 1}: {j}" for k, j in enumerate(strict["choice"]["miou_occ"])),
    ]


def _batch(masks):
    return masks.unsqueeze(0) if masks.dim() == 2 else masks


def _split(batch, objects: int, name: str) -> list:
    """``[N*T, H, W(, 3)]`` -> N per-object ``[T, H, W(, 3)]`` tensors."""
    if batch.dim() == 2:
        batch = batch.unsqueeze(0)
    if batch.shape[0] % objects:
        raise ValueError(f"{name} has {batch.shape[0]} frames, not a multiple of objects={objects}. {_STACKING}")
    return list(batch.reshape(objects, batch.shape[0] // objects, *batch.shape[1:]))


NODE_CLASS_MAPPINGS = {"EvaluateAmodal": EvaluateAmodal}
NODE_DISPLAY_NAME_MAPPINGS = {"EvaluateAmodal": "Evaluate Amodal Masks (Diffusion-VAS)"}
