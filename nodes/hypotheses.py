"""``SelectHypothesis`` node: one sample of every object out of a batch holding K samples per object.

The stage nodes with ``samples = K`` (AmodalMaskSVD with ``combine = all``, AmodalContentSVD) return ``N * K * T``
frames stacked object by object, within an object sample by sample (T frames each). This node picks sample
``index`` of every object (``N * T`` frames, stacked object by object), so a graph can preview the K candidates
side by side and pass the chosen one on (`models.stages.hypotheses.select`).
"""

from __future__ import annotations

import torch

from ..models import settings as S
from ..models.settings import Link
from .adapters import SAMPLE_STACKING
from .bool_mask import as_mask, bool_values
from .inputs import node_inputs
from ..models import select_sample as select



class SelectHypothesis:
    DESCRIPTION = (
        "Picks one sample of every object from results with several samples per object (stage 1 with "
        "combine 'all', stage 2 with samples above 1): sample 'index' of each of the 'objects' objects, "
        "stacked object by object as with one sample. Use one per sample to show the candidates side by side, "
        "then pass the one you like on."
    )
    CATEGORY = "Diffusion-VAS"
    FUNCTION = "select"
    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("masks", "images")
    OUTPUT_TOOLTIPS = (
        "Sample 'index' of every object's masks, N x T frames (no frame when masks is not connected).",
        "Sample 'index' of every object's images, N x T frames (no frame when images is not connected).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return node_inputs(
            required=(S.OBJECTS, S.PICK_SAMPLES, S.SAMPLE_INDEX),
            optional=(Link("masks", "MASK", "Masks with K samples per object: " + SAMPLE_STACKING),
                      Link("images", "IMAGE", "Images with K samples per object: " + SAMPLE_STACKING)))

    def select(self, objects, samples, index, masks=None, images=None):
        if masks is None and images is None:
            raise ValueError("SelectHypothesis: connect masks or images (or both).")
        picked = []
        given = masks if masks is not None else images
        for name, batch in (("masks", masks), ("images", images)):
            if batch is None:  # an empty batch of the other input's size, never None
                picked.append(torch.zeros(0, *given.shape[-3:-1] if given is images else given.shape[-2:],
                                          *(() if name == "masks" else (3,))))
                continue
            if batch.ndim == 2:
                batch = batch[None]
            bits = bool_values(batch)  # masks of a long shot: picked from their bool values, handed on alike
            try:
                picked.append(select(batch, objects, samples, index) if bits is None
                              else as_mask(select(bits, objects, samples, index)))
            except ValueError as err:
                raise ValueError(f"SelectHypothesis {name}: {err}") from err
        return tuple(picked)


NODE_CLASS_MAPPINGS = {"SelectHypothesis": SelectHypothesis}
