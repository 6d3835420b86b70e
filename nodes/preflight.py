"""Checks of the queued graph before the heavy work, worded with the titles the canvas shows.

ComfyUI hands a node its hidden inputs (`HIDDEN_INPUTS`): ``PROMPT``, the graph as queued (API format: per node id
its ``class_type``, its ``inputs`` as values or ``[source id, output slot]`` links, and ``_meta.title``, the title
the front end shows), ``EXTRA_PNGINFO`` (the canvas workflow, whose nodes carry a ``title`` when the user renamed
them) and ``UNIQUE_ID`` (the node's own id). With them a node can

* check every stage node's loader before anything is sampled (`Graph.check_checkpoints`): the wrong checkpoint in
  the stage-2 loader is reported when the first Diffusion-VAS node with real work starts, not after stage 1 has
  denoised;
* name, in an error, the node an input comes from and the widget to change there (`Graph.frame_mismatch`,
  `Graph.source`).

Outside ComfyUI (tests, scripts) there is no graph: `Graph.of()` then knows no titles and no links, the checks pass,
and the messages name the inputs alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch

from ..models import CHECKPOINT_WORDS, STAGE_CHECKPOINTS, checkpoint_stage
from .names import display_name

logger = logging.getLogger(__name__)

HIDDEN_INPUTS = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}
LOADER = "DiffusionVASLoader"
MASK_LOADER = "LoadModalMasks"
NODE_STAGE = {"AmodalMaskSVD": "amodal", "AmodalContentSVD": "content"}  # the stage whose checkpoint a node needs


def hidden_inputs() -> dict:
    """The ``"hidden"`` section of a node's INPUT_TYPES that gives it the graph (not widgets: saved workflows are
    unaffected)."""
    return dict(HIDDEN_INPUTS)


@dataclass
class Graph:
    """The queued graph as a node sees it (empty outside ComfyUI)."""

    prompt: dict = field(default_factory=dict)
    titles: dict = field(default_factory=dict)  # node id -> the user's title on the canvas
    node: str | None = None  # the asking node's id

    @classmethod
    def of(cls, prompt=None, extra_pnginfo=None, unique_id=None) -> "Graph":
        titles = {}
        workflow = extra_pnginfo.get("workflow") if isinstance(extra_pnginfo, dict) else None
        for node in (workflow or {}).get("nodes", []) if isinstance(workflow, dict) else []:
            if isinstance(node, dict) and node.get("title"):
                titles[str(node.get("id"))] = node["title"]
        return cls(prompt if isinstance(prompt, dict) else {}, titles, None if unique_id is None else str(unique_id))

    def title(self, node_id: str | None = None) -> str:
        """``"Title" (node #id)``, the title as the canvas shows it (the user's, else the display name)."""
        node_id = self.node if node_id is None else str(node_id)
        entry = self.prompt.get(node_id, {})
        title = ((entry.get("_meta") or {}).get("title") or self.titles.get(node_id)
                 or display_name(entry.get("class_type", "")) or "this node")
        return f'"{title}" (node #{node_id})' if node_id is not None else f'"{title}"'

    def _inputs(self, node_id: str | None) -> dict:
        return self.prompt.get(str(node_id), {}).get("inputs", {}) if node_id is not None else {}

    def class_type(self, node_id: str | None) -> str | None:
        return self.prompt.get(str(node_id), {}).get("class_type") if node_id is not None else None

    def source(self, name: str, node_id: str | None = None) -> str | None:
        """The id of the node whose output feeds input ``name`` (of this node by default); None if not linked."""
        value = self._inputs(self.node if node_id is None else node_id).get(name)
        if isinstance(value, list) and len(value) == 2 and str(value[0]) in self.prompt:
            return str(value[0])
        return None

    def link(self, name: str, node_id: str | None = None) -> tuple | None:
        value = self._inputs(self.node if node_id is None else node_id).get(name)
        return (str(value[0]), value[1]) if isinstance(value, list) and len(value) == 2 else None

    def widget(self, node_id: str | None, name: str):
        """A widget's value in the queued graph (None when linked or unknown)."""
        value = self._inputs(node_id).get(name)
        return None if isinstance(value, list) else value

    def from_(self, name: str) -> str:
        """`` (from "Title" (node #id))`` for a linked input of this node, else empty."""
        source = self.source(name)
        return f" (from {self.title(source)})" if source is not None else ""

    # -- checks ---------------------------------------------------------------------------------------------------

    def check_checkpoints(self) -> None:
        """Every stage node in the graph fed by a loader holding the other stage's checkpoint -> one ValueError
        naming both nodes by title and the value to set. Runs in the first Diffusion-VAS node with real work
        (either stage, an edit), so the mistake costs no sampling."""
        problems = []
        for node_id, entry in self.prompt.items():
            needed = NODE_STAGE.get(entry.get("class_type"))
            loader = self.source("model", node_id) if needed else None
            if loader is None or self.class_type(loader) != LOADER:
                continue
            name = self.widget(loader, "model")
            stage = checkpoint_stage(name) if isinstance(name, str) else None
            if stage is not None and stage != needed:
                problems.append(
                    f"{self.title(node_id)} needs the {CHECKPOINT_WORDS[needed]} checkpoint, but its model comes "
                    f"from {self.title(loader)}, which loads {name!r} (the {CHECKPOINT_WORDS[stage]} one): in "
                    f"{self.title(loader)} set model to {STAGE_CHECKPOINTS[needed]!r}."
                )
        if problems:
            raise ValueError("Wrong checkpoint, found before any sampling: " + " ".join(problems))

    def frame_mismatch(self, name: str, count: int, reference: str, frames: int) -> str:
        """The message for input ``name`` holding ``count`` frames where ``reference`` has ``frames`` (``count`` is
        not a multiple of ``frames``): where both come from, and what to set on the mask loader feeding ``name``."""
        text = (f"{name}{self.from_(name)} has {count} frames but {reference}{self.from_(reference)} has {frames}: "
                f"give one {name} frame per frame of {reference} (several objects: N x {frames} frames, stacked "
                f"object by object).")
        loader = self.source(name)
        if self.class_type(loader) == MASK_LOADER:
            every = self.widget(loader, "every_nth")
            text += f" In {self.title(loader)}: " + mask_count_hint(count, frames, every if isinstance(every, int)
                                                                     else None)
        return text

    def check_frames(self, name: str, batch, reference: str, frames: int) -> None:
        """Raises `frame_mismatch` when the frames of a ComfyUI batch (MASK ``[B, H, W]`` or ``[H, W]``, with a
        singleton channel ``[B, H, W, 1]`` / ``[B, 1, H, W]``, IMAGE ``[B, H, W, C]``) are not a multiple of
        ``frames``; other layouts are left to the adapters' checks."""
        ndim = getattr(batch, "ndim", 0)
        if ndim == 2:
            count = 1
        elif ndim == 3 or (ndim == 4 and (batch.shape[-1] in (1, 3, 4) or batch.shape[1] == 1)):
            count = int(batch.shape[0])
        else:
            return
        if frames and count % frames:
            raise ValueError(self.frame_mismatch(name, count, reference, frames))

    def same_source(self, a: str, b: str) -> bool:
        """Inputs ``a`` and ``b`` of this node are fed by the same output."""
        return self.link(a) is not None and self.link(a) == self.link(b)


def mask_count_hint(masks: int, frames: int, every_nth: int | None = None) -> str:
    """What to set on a mask loader that gave ``masks`` masks for a video of ``frames`` frames."""
    if masks < frames:
        return (f"the folder gives {masks} masks from start_frame on, fewer than the {frames} video frames: take the "
                f"same frames in the video loader (start, count and frame skip), or check start_frame and every_nth.")
    now = every_nth or 1
    for factor in range(2, 11):  # the video sampled every k-th frame, the masks not
        if math.ceil(masks / factor) == frames:
            return (f"set every_nth to {now * factor} (now {now}) if the video loader takes every "
                    f"{_ordinal(factor)} frame, "
                    f"or frame_count to {frames} for the first {frames} masks; start_frame and every_nth must match "
                    "the video loader's.")
    return (f"set frame_count to {frames} (or start_frame, frame_count and every_nth to the video loader's start, "
            f"count and frame skip).")


def warn_visible_as_full(graph: Graph, modal, amodal, node: str) -> None:
    """Logs a warning when ``amodal_masks`` are the visible masks: the same output wired twice, or equal in every
    frame (nothing is hidden, so nothing is completed or revealed)."""
    if graph.same_source("modal_masks", "amodal_masks"):
        logger.warning("%s: amodal_masks and modal_masks are the same output%s: the full masks should come from "
                       "Stage 1's amodal_masks; as wired nothing is hidden, so nothing is completed.",
                       graph.title() if graph.node else node, graph.from_("modal_masks"))
        return
    if modal.shape == amodal.shape and torch.equal(modal, amodal):
        logger.warning("%s: amodal_masks equal modal_masks in every frame%s: nothing is hidden, so nothing is "
                       "completed. Connect Stage 1's amodal_masks (the full shapes) to amodal_masks.",
                       graph.title() if graph.node else node, graph.from_("amodal_masks"))


def _ordinal(n: int) -> str:
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10 if n % 100 not in (11, 12, 13) else 0, 'th')}"
