"""The shipped workflows as the ComfyUI front end shows them: template names that read as titles, and a layout in
which previews can grow after a run without covering other nodes."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO

WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
TITLE_BAR = 30  # the front end draws a node's title above its position
GROWS = {"PreviewImage", "SaveImage", "SaveVideo"}  # nodes that grow to show their result after a run
ROOM = 250  # free space kept below a growing node (the depth preview grew by about this much in the tryout)


def boxes(workflow: dict) -> dict[int, tuple[float, float, float, float]]:
    """Node id -> (left, top incl. title bar, right, bottom)."""
    return {n["id"]: (n["pos"][0], n["pos"][1] - TITLE_BAR, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
            for n in workflow["nodes"]}


def test_template_names_read_as_titles():
    """ComfyUI's template browser shows a pack's template by its file name (title) and the same name with '-'
    and '_' as spaces (description): custom-node templates have no other metadata it reads."""
    assert len(WORKFLOWS) == 4
    for path in WORKFLOWS:
        assert path.stem.startswith("Diffusion-VAS ") and "_" not in path.stem, path.name
        assert not re.search(r'[<>:"/\\|?*]', path.stem), "a file name Windows can hold"
        assert path.with_suffix(".jpg").is_file(), "thumbnail beside the template"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_layout_leaves_room_for_grown_previews(path):
    workflow = json.loads(path.read_text(encoding="utf-8"))
    box, kind = boxes(workflow), {n["id"]: n["type"] for n in workflow["nodes"]}
    for a in box:
        for b in box:
            if a < b:
                (l1, t1, r1, b1), (l2, t2, r2, b2) = box[a], box[b]
                assert not (l1 < r2 and l2 < r1 and t1 < b2 and t2 < b1), f"nodes {a} and {b} overlap"
    for a in box:
        if kind[a] in GROWS:
            left, _, right, bottom = box[a]
            below = [b for b in box if b != a and box[b][0] < right and left < box[b][2]
                     and bottom <= box[b][1] < bottom + ROOM]
            assert not below, f"{kind[a]} {a} would cover node(s) {below} when it grows"
    for node_id, (left, top, right, bottom) in box.items():
        inside = [g for g in workflow["groups"] if g["bounding"][0] <= left and right <= g["bounding"][0] +
                  g["bounding"][2] and g["bounding"][1] <= top and bottom <= g["bounding"][1] + g["bounding"][3]]
        assert inside, f"node {node_id} ({kind[node_id]}) is in no group"


SLOT, WIDGET, PAD = 20, 24, 10  # the front end's socket row and widget row heights
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def needed_height(cls) -> int:
    """The height the front end grows a node to so every socket and widget shows (a seed adds its control)."""
    spec, widgets, sockets = cls.INPUT_TYPES(), 0, 0
    for section in ("required", "optional"):
        for kind, *options in spec.get(section, {}).values():
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                widgets += 1 + bool(options and options[0].get("control_after_generate"))
            else:
                sockets += 1
    return max(sockets, len(cls.RETURN_TYPES)) * SLOT + widgets * WIDGET + PAD


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pack_nodes_are_laid_out_at_their_full_height(path):
    """A node that gained inputs grows when loaded; its stored size must already hold them, or it covers the node
    below it (PseudoDepth over the stage-1 loader after depth_from/width/height were added)."""
    from diffusion_vas import NODE_CLASS_MAPPINGS

    workflow = json.loads(path.read_text(encoding="utf-8"))
    short = [(n["id"], n["type"], n["size"][1], needed_height(NODE_CLASS_MAPPINGS[n["type"]]))
             for n in workflow["nodes"] if n["type"] in NODE_CLASS_MAPPINGS
             and n["size"][1] < needed_height(NODE_CLASS_MAPPINGS[n["type"]])]
    assert not short, f"nodes stored shorter than their widgets need (id, type, stored, needed): {short}"
