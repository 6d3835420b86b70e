"""Saved workflows are a contract: every node's class name, input names, their order, required/optional, types and
defaults, its outputs and its function stay as they were when workflows were first saved with this pack (ComfyUI
maps a saved node's ``widgets_values`` onto its widgets by position). New inputs may only be added at the end, as
optional ones; display names, tooltips and the "advanced" flag may change (they are not saved)."""

from __future__ import annotations

import pytest

from diffusion_vas import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

# (input name, optional, type, default) in declaration order, as the workflows saved up to now have them.
CONTRACT = {
    'DiffusionVASLoader': {
        'inputs': [
            ('model', False, 'COMBO', None),
            ('precision', False, 'COMBO', 'auto'),
        ],
        'outputs': [('DIFFUSION_VAS_MODEL', 'model')],
        'function': 'load',
    },
    'LoadModalMasks': {
        'inputs': [
            ('folder', False, 'STRING', 'diffusion_vas_examples/synthetic_occlusion/modal'),
            ('object_id', False, 'INT', 0),
            ('start_frame', False, 'INT', 0),
            ('frame_count', False, 'INT', 0),
            ('every_nth', False, 'INT', 1),
            ('reference_images', True, 'IMAGE', None),
            ('mask_format', True, 'COMBO', 'auto'),
        ],
        'outputs': [('MASK', 'modal_masks')],
        'function': 'load',
    },
    'PseudoDepth': {
        'inputs': [
            ('images', False, 'IMAGE', None),
            ('model', False, 'COMBO', None),
            ('normalization', False, 'COMBO', 'clip'),
            ('batch_size', False, 'INT', 4),
            ('precision', False, 'COMBO', 'auto'),
            ('input_size', False, 'INT', 518),
            ('depth', True, 'IMAGE', None),
            ('depth_from', True, 'COMBO', 'processing'),
            ('width', True, 'INT', 512),
            ('height', True, 'INT', 256),
        ],
        'outputs': [('IMAGE', 'depth')],
        'function': 'estimate',
    },
    'AmodalMaskSVD': {
        'inputs': [
            ('model', False, 'DIFFUSION_VAS_MODEL', None),
            ('modal_masks', False, 'MASK', None),
            ('depth', False, 'IMAGE', None),
            ('seed', False, 'INT', 23),
            ('steps', False, 'INT', 25),
            ('guidance_scale', False, 'FLOAT', 1.5),
            ('width', False, 'INT', 512),
            ('height', False, 'INT', 256),
            ('threshold', True, 'INT', 600),
            ('window', True, 'INT', 25),
            ('overlap', True, 'INT', 8),
            ('object_batch_size', True, 'INT', 1),
            ('decode_chunk_size', True, 'INT', 8),
            ('fps', True, 'INT', 8),
            ('motion_bucket_id', True, 'INT', 127),
            ('noise_aug_strength', True, 'FLOAT', 0.02),
            ('mask_upscale', True, 'COMBO', 'smooth'),
            ('region', True, 'COMBO', 'frame'),
            ('samples', True, 'INT', 1),
            ('combine', True, 'COMBO', 'consensus'),
        ],
        'outputs': [('MASK', 'amodal_masks'), ('IMAGE', 'probability'), ('MASK', 'agreement')],
        'function': 'predict',
    },
    'AmodalContentSVD': {
        'inputs': [
            ('model', False, 'DIFFUSION_VAS_MODEL', None),
            ('images', False, 'IMAGE', None),
            ('modal_masks', False, 'MASK', None),
            ('amodal_masks', False, 'MASK', None),
            ('seed', False, 'INT', 29),
            ('steps', False, 'INT', 25),
            ('guidance_scale', False, 'FLOAT', 1.5),
            ('width', False, 'INT', 512),
            ('height', False, 'INT', 256),
            ('window', True, 'INT', 25),
            ('overlap', True, 'INT', 8),
            ('object_batch_size', True, 'INT', 1),
            ('decode_chunk_size', True, 'INT', 8),
            ('fps', True, 'INT', 8),
            ('motion_bucket_id', True, 'INT', 127),
            ('noise_aug_strength', True, 'FLOAT', 0.02),
            ('keep_visible_pixels', True, 'BOOLEAN', True),
            ('region', True, 'COMBO', 'frame'),
            ('samples', True, 'INT', 1),
        ],
        'outputs': [('IMAGE', 'amodal_rgb'), ('MASK', 'alpha')],
        'function': 'complete',
    },
    'SelectHypothesis': {
        'inputs': [
            ('objects', False, 'INT', 1),
            ('samples', False, 'INT', 3),
            ('index', False, 'INT', 0),
            ('masks', True, 'MASK', None),
            ('images', True, 'IMAGE', None),
        ],
        'outputs': [('MASK', 'masks'), ('IMAGE', 'images')],
        'function': 'select',
    },
    'CompositeEdit': {
        'inputs': [
            ('images', False, 'IMAGE', None),
            ('amodal_rgb', False, 'IMAGE', None),
            ('amodal_masks', False, 'MASK', None),
            ('mode', False, 'COMBO', 'reveal'),
            ('modal_masks', True, 'MASK', None),
            ('occluder_masks', True, 'MASK', None),
            ('background', True, 'IMAGE', None),
            ('opacity', True, 'FLOAT', 0.5),
            ('feather', True, 'FLOAT', 0.0),
            ('offset_x', True, 'INT', 0),
            ('offset_y', True, 'INT', 0),
            ('outline_color', True, 'STRING', '#00FF00'),
            ('outline_width', True, 'INT', 2),
        ],
        'outputs': [('IMAGE', 'images'), ('MASK', 'mask')],
        'function': 'composite',
    },
    'EvaluateAmodal': {
        'inputs': [
            ('amodal_masks', False, 'MASK', None),
            ('true_amodal_masks', False, 'MASK', None),
            ('true_modal_masks', False, 'MASK', None),
            ('objects', False, 'INT', 1),
            ('amodal_rgb', True, 'IMAGE', None),
            ('true_amodal_rgb', True, 'IMAGE', None),
            ('samples', True, 'INT', 1),
        ],
        'outputs': [('STRING', 'report')],
        'function': 'evaluate',
    },
}


def declared(cls) -> list[tuple]:
    spec = cls.INPUT_TYPES()
    found = []
    for section in ("required", "optional"):
        for name, (kind, *options) in spec.get(section, {}).items():
            options = options[0] if options else {}
            found.append((name, section == "optional", kind if isinstance(kind, str) else "COMBO",
                          None if name == "model" else options.get("default")))
    return found


def accepts(declared_type: str, saved_type: str) -> bool:
    """A saved link of ``saved_type`` still validates: the same type, or a union that contains it (ComfyUI accepts
    a link whose type overlaps the input's comma-separated union, e.g. IMAGE into "IMAGE,VIDEO")."""
    return declared_type == saved_type or saved_type in {t.strip() for t in declared_type.split(",")}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_saved_workflows_keep_their_inputs_in_order(name):
    cls = NODE_CLASS_MAPPINGS[name]
    today, contract = declared(cls), CONTRACT[name]["inputs"]
    assert len(today) >= len(contract)
    for now, saved in zip(today, contract):
        assert (now[0], now[1], now[3]) == (saved[0], saved[1], saved[3]), f"{saved[0]} renamed, moved or re-defaulted"
        assert accepts(now[2], saved[2]), f"{saved[0]}: {now[2]} no longer takes {saved[2]}"
    assert all(optional for _, optional, _, _ in today[len(contract):]), "new inputs go at the end, optional"
    outputs = list(zip(cls.RETURN_TYPES, cls.RETURN_NAMES))
    assert outputs[:len(CONTRACT[name]["outputs"])] == CONTRACT[name]["outputs"], "outputs only appended"
    assert cls.FUNCTION == CONTRACT[name]["function"]


def test_long_shot_types():
    """The nodes that read frames take a VIDEO where they took an IMAGE, and hand results on as VIDEO too."""
    inputs = {name: {k: v[0] for section in ("required", "optional")
                     for k, v in NODE_CLASS_MAPPINGS[name].INPUT_TYPES().get(section, {}).items()}
              for name in ("PseudoDepth", "AmodalContentSVD", "CompositeEdit", "LoadModalMasks")}
    assert inputs["PseudoDepth"]["images"] == inputs["AmodalContentSVD"]["images"] == "IMAGE,VIDEO"
    assert inputs["CompositeEdit"]["images"] == inputs["CompositeEdit"]["amodal_rgb"] == "IMAGE,VIDEO"
    assert inputs["LoadModalMasks"]["reference_images"] == "IMAGE,VIDEO"
    assert NODE_CLASS_MAPPINGS["AmodalContentSVD"].RETURN_TYPES[-1] == "VIDEO"
    assert NODE_CLASS_MAPPINGS["CompositeEdit"].RETURN_TYPES[-1] == "VIDEO"
    assert NODE_CLASS_MAPPINGS["SelectVideoFrames"].RETURN_TYPES == ("VIDEO",)


def test_every_node_is_named_in_one_form():
    """One place for the pack's name: after what the node does, in brackets, for every node."""
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS) >= set(CONTRACT)
    for name in NODE_CLASS_MAPPINGS:
        shown = NODE_DISPLAY_NAME_MAPPINGS[name]
        assert shown.endswith(" (Diffusion-VAS)") and shown.count("Diffusion-VAS") == 1, shown
