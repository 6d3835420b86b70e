"""Checks before the heavy work, through the nodes as ComfyUI calls them: the queued graph arrives as the hidden
inputs PROMPT (API format with the front end's ``_meta.title``), EXTRA_PNGINFO (the canvas workflow) and UNIQUE_ID.
A loader holding the wrong checkpoint, a frame-count or size mismatch are refused before any sampling, with the
titles the canvas shows and the widget to change; visible masks wired as full masks are warned about."""

from __future__ import annotations

import logging

import pytest
import torch

from conftest import TINY
from diffusion_vas.nodes import composite, loader, masks, stages
from diffusion_vas.nodes.preflight import Graph, mask_count_hint
from diffusion_vas.models.host import policy

FAST = dict(steps=1, width=128, height=64)
T, H, W = 4, 32, 64


def run(cls, **inputs):
    with torch.inference_mode():
        return getattr(cls(), cls.FUNCTION)(**inputs)


class NoSampling(policy.Host):
    """Fails the test if a node starts sampling (the stage nodes ask for a progress bar first)."""

    def progress(self, total, label):
        raise AssertionError(f"{label} started its work; the check should have refused before")


@pytest.fixture()
def no_sampling(monkeypatch):
    monkeypatch.setattr(policy, "_host", NoSampling())


@pytest.fixture(scope="module")
def model1():
    return run(loader.DiffusionVASLoader, model=str(TINY.stage1), precision="fp32")[0]


@pytest.fixture(scope="module")
def model2():
    return run(loader.DiffusionVASLoader, model=str(TINY.stage2), precision="fp32")[0]


def workflow(stage1_model="diffusion-vas-amodal-segmentation", stage2_model="diffusion-vas-content-completion",
             every_nth=1):
    """The shipped workflow's core as the front end queues it: video frames (2), visible masks (3), depth (4),
    two loaders (5, 6), stage 1 (7), stage 2 (8). Titles as the canvas shows them (``_meta.title``)."""
    def node(class_type, title, **inputs):
        return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}

    return {
        "2": node("GetVideoComponents", "Get Video Components", video=["1", 0]),
        "3": node("LoadModalMasks", "Load Visible Masks (Diffusion-VAS)", folder="shot/masks", object_id=0,
                  start_frame=0, frame_count=0, every_nth=every_nth),
        "4": node("PseudoDepth", "Pseudo-Depth (Diffusion-VAS)", images=["2", 0]),
        "5": node("DiffusionVASLoader", "Load stage 1 model", model=stage1_model, precision="auto"),
        "6": node("DiffusionVASLoader", "Load stage 2 model", model=stage2_model, precision="auto"),
        "7": node("AmodalMaskSVD", "Stage 1: Full Masks (Diffusion-VAS)", model=["5", 0], modal_masks=["3", 0],
                  depth=["4", 0], seed=23, steps=25),
        "8": node("AmodalContentSVD", "Stage 2: Full Appearance (Diffusion-VAS)", model=["6", 0], images=["2", 0],
                  modal_masks=["3", 0], amodal_masks=["7", 0], seed=29, steps=25),
    }


def clip(frames=T, size=(H, W)):
    modal = torch.zeros(frames, *size)
    modal[:, 8:24, 10:30] = 1
    return dict(images=torch.rand(frames, *size, 3), modal=modal,
                depth=torch.linspace(0, 1, size[1]).expand(frames, *size)[..., None].expand(-1, -1, -1, 3))


def test_wrong_stage2_checkpoint_is_refused_by_stage1_before_sampling(model1, no_sampling):
    inputs = clip()
    prompt = workflow(stage2_model="diffusion-vas-amodal-segmentation")
    with pytest.raises(ValueError) as err:
        run(stages.AmodalMaskSVD, model=model1, modal_masks=inputs["modal"], depth=inputs["depth"], seed=23, **FAST,
            prompt=prompt, extra_pnginfo=None, unique_id="7")
    message = str(err.value)
    assert '"Stage 2: Full Appearance (Diffusion-VAS)" (node #8) needs the completion checkpoint' in message
    assert ('in "Load stage 2 model" (node #6) set model to \'diffusion-vas-content-completion\'' in message)


def test_wrong_checkpoint_is_named_by_its_absolute_path(model1, no_sampling):
    inputs = clip()
    prompt = workflow(stage1_model="/models/my-content-completion")  # an absolute path: its folder name tells
    with pytest.raises(ValueError, match=r'"Load stage 1 model" \(node #5\), which loads '
                                         r"'/models/my-content-completion' \(the completion one\)"):
        run(stages.AmodalMaskSVD, model=model1, modal_masks=inputs["modal"], depth=inputs["depth"], seed=23, **FAST,
            prompt=prompt, unique_id="7")


def test_titles_come_from_the_canvas(model1, no_sampling):
    """Without ``_meta`` (an API client) the canvas workflow's titles are used, then the display names."""
    prompt = workflow(stage2_model="diffusion-vas-amodal-segmentation")
    for entry in prompt.values():
        del entry["_meta"]
    extra = {"workflow": {"nodes": [{"id": 6, "type": "DiffusionVASLoader", "title": "My stage 2 loader"}]}}
    graph = Graph.of(prompt, extra, "7")
    assert graph.title("6") == '"My stage 2 loader" (node #6)'
    assert graph.title() == '"Stage 1: Full Masks (Diffusion-VAS)" (node #7)'
    with pytest.raises(ValueError, match=r'model comes from "My stage 2 loader" \(node #6\)'):
        graph.check_checkpoints()
    Graph.of().check_checkpoints()  # outside ComfyUI there is no graph to check
    Graph.of(workflow()).check_checkpoints()  # the right checkpoints pass


def test_frame_count_mismatch_names_the_mask_loader_and_the_widget(model1, no_sampling):
    inputs = clip(frames=13)
    with pytest.raises(ValueError) as err:
        run(stages.AmodalMaskSVD, model=model1, modal_masks=inputs["modal"], depth=inputs["depth"][:5], seed=23,
            **FAST, prompt=workflow(), unique_id="7")
    message = str(err.value)
    assert ('modal_masks (from "Load Visible Masks (Diffusion-VAS)" (node #3)) has 13 frames but depth (from '
            '"Pseudo-Depth (Diffusion-VAS)" (node #4)) has 5') in message
    assert 'In "Load Visible Masks (Diffusion-VAS)" (node #3): set every_nth to 3 (now 1)' in message
    assert "every 3rd frame" in message


def test_stage2_frame_mismatch_is_named_too(model2, no_sampling):
    inputs = clip()
    with pytest.raises(ValueError, match=r"amodal_masks \(from \"Stage 1: Full Masks \(Diffusion-VAS\)\" \(node "
                                         r"#7\)\) has 3 frames but images \(from \"Get Video Components\""):
        run(stages.AmodalContentSVD, model=model2, images=inputs["images"], modal_masks=inputs["modal"],
            amodal_masks=inputs["modal"][:3], seed=29, **FAST, prompt=workflow(), unique_id="8")


def test_masks_of_another_size_are_refused_by_stage1_when_stage2_follows(model1, no_sampling):
    """Stage 1 would resize depth to small masks and sample; stage 2 would then refuse them. Refused first."""
    inputs = clip()
    small = torch.nn.functional.interpolate(inputs["modal"][:, None], size=(16, 32))[:, 0]
    with pytest.raises(ValueError) as err:
        run(stages.AmodalMaskSVD, model=model1, modal_masks=small, depth=inputs["depth"], seed=23, **FAST,
            prompt=workflow(), unique_id="7")
    message = str(err.value)
    assert "are 32x16 (WxH) but the video frames are 64x32" in message
    assert ('in "Load Visible Masks (Diffusion-VAS)" (node #3) connect the video frames to reference_images'
            in message)


def test_mask_loader_refuses_a_frame_count_other_than_the_videos(tmp_path):
    from PIL import Image

    for i in range(9):
        Image.new("L", (W, H), 255 if i % 2 else 0).save(tmp_path / f"{i:05d}.png")
    with pytest.raises(ValueError, match=r"9 masks but 3 video frames in reference_images: one mask per frame is "
                                         r"needed; set every_nth to 3 \(now 1\)"):
        run(masks.LoadModalMasks, folder=str(tmp_path), reference_images=torch.zeros(3, H, W, 3))
    assert mask_count_hint(2, 5).startswith("the folder gives 2 masks from start_frame on, fewer than the 5")
    assert mask_count_hint(30, 7) == ("set frame_count to 7 (or start_frame, frame_count and every_nth to the "
                                      "video loader's start, count and frame skip).")


def test_visible_masks_wired_as_full_masks_are_warned_about(model2, caplog):
    inputs = clip()
    prompt = workflow()
    prompt["8"]["inputs"]["amodal_masks"] = ["3", 0]  # the visible masks into both inputs
    with caplog.at_level(logging.WARNING):
        run(stages.AmodalContentSVD, model=model2, images=inputs["images"], modal_masks=inputs["modal"],
            amodal_masks=inputs["modal"], seed=29, **FAST, prompt=prompt, unique_id="8")
    assert ('"Stage 2: Full Appearance (Diffusion-VAS)" (node #8): amodal_masks and modal_masks are the same output '
            '(from "Load Visible Masks (Diffusion-VAS)" (node #3))') in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # equal values, no graph: the same warning by what the masks hold
        run(composite.CompositeEdit, images=inputs["images"], amodal_rgb=inputs["images"],
            amodal_masks=inputs["modal"], mode="xray", modal_masks=inputs["modal"].clone())
    assert "CompositeEdit: amodal_masks equal modal_masks in every frame" in caplog.text


def test_stage_nodes_take_the_graph_as_hidden_inputs():
    for cls in (stages.AmodalMaskSVD, stages.AmodalContentSVD, composite.CompositeEdit):
        assert cls.INPUT_TYPES()["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO",
                                               "unique_id": "UNIQUE_ID"}
