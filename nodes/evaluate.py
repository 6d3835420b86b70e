"""``EvaluateAmodal`` node: scores amodal masks (and optionally completed colours) against ground truth.

ComfyUI has no object dimension: several objects travel as one batch of ``N * T`` frames stacked object by
object (object 0's frames 0..T-1, then object 1's, ...); ``objects`` says how many. Masks are on above 0.5.
"""

from __future__ import annotations

import math

from ..models.evaluation.metrics import completion_metrics, paper_protocol, strict_protocol

_STACKING = "For several objects, stack N*T frames object by object and set objects to N."


class EvaluateAmodal:
    DESCRIPTION = (
        "Scores predicted amodal masks against the true full masks of a clip with ground truth (e.g. a synthetic "
        "benchmark clip), by the paper's protocol (prediction OR visible mask, frames pooled, occluded-region IoU "
        "only over frames scoring above zero) and by a strict one (per object, every occluded frame counts, a "
        "missed hidden part scores 0). With completed and true colours it also reports PSNR/SSIM inside the "
        "hidden part."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "evaluate"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_TOOLTIPS = ("The scores as text (IoU in percent).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "amodal_masks": ("MASK", {"tooltip": "Predicted full object masks, N*T frames. " + _STACKING}),
                "true_amodal_masks": ("MASK", {"tooltip": "True full object masks, same frames and size."}),
                "true_modal_masks": ("MASK", {"tooltip": "True visible masks, same frames and size."}),
                "objects": ("INT", {"default": 1, "min": 1, "max": 256,
                                    "tooltip": "Number of objects N stacked in the mask batches."}),
            },
            "optional": {
                "amodal_rgb": ("IMAGE", {"tooltip": "Completed object colours (stage 2), N*T frames."}),
                "true_amodal_rgb": ("IMAGE", {"tooltip": "True object colours, hidden part included, N*T frames."}),
            },
        }

    def evaluate(self, amodal_masks, true_amodal_masks, true_modal_masks, objects=1, amodal_rgb=None,
                 true_amodal_rgb=None):
        pred = _split(amodal_masks, objects, "amodal_masks")
        amodal = _split(true_amodal_masks, objects, "true_amodal_masks")
        modal = _split(true_modal_masks, objects, "true_modal_masks")
        paper, strict = paper_protocol(pred, amodal, modal), strict_protocol(pred, amodal, modal)
        lines = [
            f"{objects} object(s), {paper['frames']} frames: {strict['frames_occluded']} occluded "
            f"({strict['frames_partial']} partly, {strict['frames_full']} fully)",
            f"paper:  mIoU {_pct(paper['miou'])}  mIoU_occ {_pct(paper['miou_occ'])}  "
            f"(occluded IoU over {paper['frames_occ_scored']} frames; {paper['frames_occ_missed']} missed frames "
            f"dropped)",
            f"strict: mIoU {_pct(strict['miou'])}  mIoU_occ {_pct(strict['miou_occ'])}  partly occ "
            f"{_pct(strict['miou_occ_partial'])}  fully occ {_pct(strict['miou_occ_full'])}  miss rate "
            f"{_pct(strict['miss_rate_occ'])}",
        ]
        for k, clip in enumerate(strict["per_clip"]):
            lines.append(f"  object {k + 1}: mIoU {_pct(clip['miou'])}  mIoU_occ {_pct(clip['miou_occ'])}  "
                         f"({clip['frames_occluded']}/{clip['frames']} frames occluded)")
        if (amodal_rgb is None) != (true_amodal_rgb is None):
            raise ValueError("Connect both amodal_rgb and true_amodal_rgb to score completions, or neither.")
        if amodal_rgb is not None:
            hidden = [(a > 0.5) & (m <= 0.5) for a, m in zip(amodal, modal)]  # masks are on above 0.5
            scores = completion_metrics(_split(amodal_rgb, objects, "amodal_rgb"),
                                        _split(true_amodal_rgb, objects, "true_amodal_rgb"), hidden)
            lines.append(f"completion in the hidden part: PSNR {_num(scores['psnr'], 2)} dB  SSIM "
                         f"{_num(scores['ssim'], 4)}  ({scores['frames']} frames)")
        report = "\n".join(lines)
        return {"ui": {"text": [report]}, "result": (report,)}


def _split(batch, objects: int, name: str) -> list:
    """``[N*T, H, W(, 3)]`` -> N per-object ``[T, H, W(, 3)]`` tensors."""
    if batch.dim() == 2:
        batch = batch.unsqueeze(0)
    if batch.shape[0] % objects:
        raise ValueError(f"{name} has {batch.shape[0]} frames, not a multiple of objects={objects}. {_STACKING}")
    return list(batch.reshape(objects, batch.shape[0] // objects, *batch.shape[1:]))


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def _num(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


NODE_CLASS_MAPPINGS = {"EvaluateAmodal": EvaluateAmodal}
NODE_DISPLAY_NAME_MAPPINGS = {"EvaluateAmodal": "Evaluate Amodal Masks (Diffusion-VAS)"}
