"""CompositeEdit: exact pixels of every mode on small constructed clips, the clean plate, errors, the node."""

from __future__ import annotations

import pytest
import torch

from diffusion_vas.models.editing.clean_plate import clean_plate
from diffusion_vas.models.editing.composite import MODES, composite_edit, feather_alpha, outline
from diffusion_vas.nodes.composite import CompositeEdit

T, H, W = 4, 10, 14


def _square(top: int, left: int, size: int = 4, frames: int = T) -> torch.Tensor:
    mask = torch.zeros(frames, H, W)
    mask[:, top:top + size, left:left + size] = 1
    return mask


def _clip(seed: int = 0):
    """Random frames and object colours, an amodal square with its right half hidden behind a vertical bar."""
    g = torch.Generator().manual_seed(seed)
    images, rgb = torch.rand(T, H, W, 3, generator=g), torch.rand(T, H, W, 3, generator=g)
    amodal = _square(3, 4)
    occluder = torch.zeros(T, H, W)
    occluder[:, :, 6:9] = 1
    modal = amodal * (1 - occluder)
    return images, rgb, amodal, modal, occluder


def _run(node_inputs: dict):
    node = CompositeEdit()
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        return getattr(node, CompositeEdit.FUNCTION)(**node_inputs)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_runs_under_inference_mode_on_inference_tensors(mode):
    """ComfyUI runs nodes under torch.inference_mode() on tensors made there; the clean plate's worker threads
    write into them (a thread does not inherit the mode: it is set in each worker). Same result as outside."""
    images, rgb, amodal, modal, occluder = _clip(12)
    args = dict(modal_masks=modal, occluder_masks=occluder, offset=(3, 2))
    expected = composite_edit(images, rgb, amodal, mode, **args)
    with torch.inference_mode():
        inputs = [x.clone() for x in (images, rgb, amodal, modal, occluder)]  # inference tensors, as node outputs are
        got = composite_edit(*inputs[:3], mode, modal_masks=inputs[3], occluder_masks=inputs[4], offset=(3, 2))
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_reveal_hard_edges_is_exact():
    images, rgb, amodal, _, _ = _clip()
    out, mask = composite_edit(images, rgb, amodal, "reveal")
    inside = amodal.bool()
    assert torch.equal(out[inside], rgb[inside])
    assert torch.equal(out[~inside], images[~inside])
    assert torch.equal(mask, amodal)


def test_soft_mask_values_are_the_alpha():
    images, rgb, amodal, _, _ = _clip()
    soft = amodal * 0.25
    out, mask = composite_edit(images, rgb, soft, "reveal")
    assert torch.allclose(out, images * (1 - soft[..., None]) + rgb * soft[..., None], atol=1e-6)
    assert torch.equal(mask, soft)


@pytest.mark.parametrize("hint", ["modal_masks", "occluder_masks"])
def test_xray_blends_only_the_hidden_part(hint):
    images, rgb, amodal, modal, occluder = _clip()
    given = {"modal_masks": modal} if hint == "modal_masks" else {"occluder_masks": occluder}
    out, mask = composite_edit(images, rgb, amodal, "xray", opacity=0.4, outline_width=0, **given)
    hidden = (amodal.bool() & ~modal.bool())
    assert hidden.any()
    assert torch.allclose(out[hidden], images[hidden] * 0.6 + rgb[hidden] * 0.4, atol=1e-6)
    assert torch.equal(out[~hidden], images[~hidden])
    assert torch.equal(mask, hidden.float())


def test_xray_outline_is_the_inner_border_of_the_full_shape():
    images, rgb, amodal, modal, _ = _clip()
    out, _ = composite_edit(images, rgb, amodal, "xray", modal_masks=modal, opacity=0.5,
                            outline_color=(1.0, 0.0, 1.0), outline_width=1)
    ring = amodal.bool() & ~_square(4, 5, size=2).bool()
    assert torch.equal(outline(amodal, 1), ring)
    assert torch.equal(out[ring], torch.tensor([1.0, 0.0, 1.0]).expand(int(ring.sum()), 3))
    untouched = ~ring & ~(amodal.bool() & ~modal.bool())
    assert torch.equal(out[untouched], images[untouched])


def test_xray_without_visibility_information_is_an_error():
    images, rgb, amodal, _, _ = _clip()
    with pytest.raises(ValueError, match="modal_masks"):
        composite_edit(images, rgb, amodal, "xray")


def test_layer_is_the_object_with_its_mask_as_alpha():
    images, rgb, amodal, _, _ = _clip()
    out, alpha = composite_edit(images, rgb, amodal, "layer")
    assert torch.equal(out, rgb)
    assert torch.equal(alpha, amodal)


def test_feathered_alpha_is_smooth_and_in_range():
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:24, 8:24] = 1
    alpha = feather_alpha(mask, 3.0)
    assert 0 <= float(alpha.min()) and float(alpha.max()) <= 1
    assert float(alpha[0, 16, 16]) == pytest.approx(1.0) and float(alpha[0, 0, 0]) == pytest.approx(0.0)
    edge = alpha[0, 16, 4:13]
    assert (edge[1:] >= edge[:-1]).all() and 0.3 < float(alpha[0, 16, 8]) < 0.7
    assert float((alpha[0, :, 1:] - alpha[0, :, :-1]).abs().max()) < 0.45  # a hard edge jumps by 1
    images, rgb = torch.rand(1, 32, 32, 3), torch.rand(1, 32, 32, 3)
    _, layer_alpha = composite_edit(images, rgb, mask, "layer", feather=3.0)
    assert torch.equal(layer_alpha, alpha)


def test_removed_regions_are_feathered_outward_so_no_fringe_stays():
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:24, 8:24] = 1
    alpha = feather_alpha(mask, 2.5, outward=True)
    assert float(alpha[mask.bool()].min()) > 1 - 1e-6
    assert 0 < float(alpha[0, 16, 25]) < 1 and float(alpha[0, 16, 1]) == 0
    images, rgb, amodal, _, occluder = _clip()
    plate = torch.rand(T, H, W, 3)
    out, _ = composite_edit(images, rgb, amodal * 0, "remove_occluder", occluder_masks=occluder, background=plate,
                            feather=2.0)
    assert torch.allclose(out[occluder.bool()], plate[occluder.bool()], atol=1e-6)


def test_move_shifts_the_object_and_fills_its_hole_from_the_plate():
    background = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(1))
    rgb = torch.rand(T, H, W, 3, generator=torch.Generator().manual_seed(2))
    amodal = _square(3, 4)
    images = torch.where(amodal.bool()[..., None], rgb, background.expand(T, H, W, 3))
    out, mask = composite_edit(images, rgb, amodal, "move", background=background, offset=(3, 0))
    assert torch.equal(out[:, 3:7, 7:11], rgb[:, 3:7, 4:8])
    assert torch.equal(out[:, 3:7, 4:7], background.expand(T, H, W, 3)[:, 3:7, 4:7])
    changed = torch.zeros(T, H, W, dtype=torch.bool)
    changed[:, 3:7, 4:11] = True
    assert torch.equal(out[~changed], images[~changed])
    assert torch.equal(mask, changed.float())


def test_move_with_the_clean_plate_recovers_what_the_object_covered():
    g = torch.Generator().manual_seed(3)
    background, rgb = torch.rand(H, W, 3, generator=g), torch.rand(T, H, W, 3, generator=g)
    amodal = torch.cat([_square(3, 2 + 3 * t, frames=1) for t in range(T)])  # moves right: every pixel seen
    images = torch.where(amodal.bool()[..., None], rgb, background)
    out, _ = composite_edit(images, rgb, amodal, "move", offset=(0, 3))
    moved, moved_rgb = torch.zeros_like(amodal), torch.zeros_like(rgb)  # 3 rows down, by hand
    moved[:, 3:], moved_rgb[:, 3:] = amodal[:, :-3], rgb[:, :-3]
    hole = amodal.bool() & ~moved.bool()
    assert torch.equal(out[hole], background.expand(T, H, W, 3)[hole])
    assert torch.equal(out[moved.bool()], moved_rgb[moved.bool()])


@pytest.mark.parametrize("offset", [(-6, -5), (12, 8), (-20, 0), (0, 11)])
def test_move_drops_what_leaves_the_frame(offset):
    """An object moved partly (or wholly) out of the frame: the part still inside is exact, the rest is dropped."""
    background = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(1))
    rgb = torch.rand(T, H, W, 3, generator=torch.Generator().manual_seed(2))
    amodal = _square(3, 4)
    images = torch.where(amodal.bool()[..., None], rgb, background.expand(T, H, W, 3))
    out, mask = composite_edit(images, rgb, amodal, "move", background=background, offset=offset)
    dx, dy = offset
    expected, expected_mask = background.expand(T, H, W, 3).clone(), torch.zeros(T, H, W)
    expected[~amodal.bool()] = images[~amodal.bool()]
    expected_mask[amodal.bool()] = 1
    for y in range(3, 7):
        for x in range(4, 8):
            if 0 <= y + dy < H and 0 <= x + dx < W:
                expected[:, y + dy, x + dx] = rgb[:, y, x]
                expected_mask[:, y + dy, x + dx] = 1
    assert torch.equal(out, expected)
    assert torch.equal(mask, expected_mask)


def test_remove_occluder_with_a_background_plate():
    images, rgb, amodal, _, occluder = _clip()
    plate = torch.rand(T, H, W, 3, generator=torch.Generator().manual_seed(4))
    out, mask = composite_edit(images, rgb, amodal, "remove_occluder", occluder_masks=occluder, background=plate)
    obj, occ = amodal.bool(), occluder.bool()
    assert torch.equal(out[obj], rgb[obj])
    assert torch.equal(out[occ & ~obj], plate[occ & ~obj])
    assert torch.equal(out[~occ & ~obj], images[~occ & ~obj])
    assert torch.equal(mask, (obj | occ).float())


def test_remove_occluder_with_the_clean_plate():
    g = torch.Generator().manual_seed(5)
    background, rgb = torch.rand(H, W, 3, generator=g), torch.rand(T, H, W, 3, generator=g)
    amodal = _square(5, 9, size=3)
    occluder = torch.zeros(T, H, W)
    occluder[:, 0:4, 0:3] = 1  # never seen: covered in every frame
    for t in range(T):
        occluder[t, :, 3 + t:5 + t] = 1  # a bar sliding right: each of its pixels is background in some frame
    images = torch.where(occluder.bool()[..., None], torch.tensor([1.0, 0.0, 0.0]), background)
    images = torch.where(amodal.bool()[..., None], rgb, images)
    out, _ = composite_edit(images, rgb, amodal, "remove_occluder", occluder_masks=occluder)
    never_seen = occluder.bool().all(dim=0)
    recovered = occluder.bool() & ~never_seen & ~amodal.bool()
    assert recovered.any()
    assert torch.equal(out[recovered], background.expand(T, H, W, 3)[recovered])
    fill = out[:, never_seen]
    assert torch.isfinite(fill).all() and float(fill.min()) >= 0 and float(fill.max()) <= 1
    assert torch.equal(out[amodal.bool()], rgb[amodal.bool()])


def test_clean_plate_fill_is_smooth():
    ramp = torch.linspace(0, 1, 32).expand(32, 32)
    frames = torch.stack([ramp] * 3, dim=-1).expand(2, 32, 32, 3)
    covered = torch.zeros(2, 32, 32, dtype=torch.bool)
    covered[:, 10:20, 10:20] = True
    plate = clean_plate(frames, covered)
    assert torch.equal(plate[~covered[0]], frames[0][~covered[0]])
    hole = plate[10:20, 10:20, 0]
    assert torch.isfinite(hole).all()
    assert float(hole.min()) >= float(ramp[0, 10]) - 0.05 and float(hole.max()) <= float(ramp[0, 19]) + 0.05
    assert float((hole[:, 1:] - hole[:, :-1]).abs().max()) < 0.1


@pytest.mark.parametrize("frames, height, width, dtype", [
    (1, 5, 7, torch.float32),  # one frame: the time-last copy must not alias the input
    (6, 9, 11, torch.float32),  # an even count of uncovered frames: the lower median, as nanmedian
    (48, 40, 33, torch.float32),
    (5, 2400, 3, torch.uint8),  # several bands of rows, 8-bit colours
])
def test_clean_plate_median_equals_torch_nanmedian(frames, height, width, dtype, monkeypatch):
    from diffusion_vas.models.editing import clean_plate as module

    monkeypatch.setattr(module, "BAND_ELEMENTS", 900)  # many bands, so the threads share the work
    g = torch.Generator().manual_seed(frames)
    images = torch.rand(frames, height, width, 3, generator=g)
    images = (images * 255).to(torch.uint8) if dtype == torch.uint8 else (images * 8).round() / 8  # with ties
    covered = torch.rand(frames, height, width, generator=g) < 0.4
    kept = images.clone()
    expected = images.float().masked_fill(covered.unsqueeze(-1), float("nan")).nanmedian(dim=0).values
    if dtype == torch.uint8:  # 8-bit frames give the plate in 0..1, as float frames do
        expected = expected / 255
    seen = ~covered.all(dim=0)
    assert torch.equal(module._uncovered_median(images, covered)[0][seen], expected[seen])
    assert torch.equal(images, kept)


def test_clean_plate_where_needed_equals_the_full_plate_there():
    """The plate computed only around the repainted pixels is the full plate there (seen and never-seen pixels)."""
    g = torch.Generator().manual_seed(7)
    frames = torch.rand(6, 96, 128, 3, generator=g)
    covered = torch.zeros(6, 96, 128, dtype=torch.bool)
    for t in range(6):
        covered[t, :, 40 + 4 * t:52 + 4 * t] = True  # a sliding bar
    covered[:, 40:44, 60:64] = True  # never seen, inside the bar's path
    needed = covered.any(dim=0)
    full, limited = clean_plate(frames, covered), clean_plate(frames, covered, needed)
    seen = ~covered.all(dim=0)
    assert torch.equal(limited[needed & seen], full[needed & seen])
    assert (limited[needed & ~seen] - full[needed & ~seen]).abs().max() < 0.05  # the fill sees less context
    assert torch.isfinite(limited).all()


def test_clean_plate_along_a_diagonal_path_equals_the_full_plate_there(monkeypatch):
    """An object moving diagonally: each band of rows takes the median over its own span of columns only; the
    plate equals the full plate at the needed pixels, never-seen ones within the fill's tolerance."""
    from diffusion_vas.models.editing import clean_plate as module

    monkeypatch.setattr(module, "BAND_ELEMENTS", 2000)  # bands of a few rows
    g = torch.Generator().manual_seed(8)
    frames = torch.rand(8, 120, 160, 3, generator=g)
    covered = torch.zeros(8, 120, 160, dtype=torch.bool)
    for t in range(8):
        covered[t, 10 + 12 * t:30 + 12 * t, 5 + 16 * t:25 + 16 * t] = True
    covered[:, 50:53, 70:73] = True  # never seen
    needed = covered.any(dim=0)
    full, limited = clean_plate(frames, covered), clean_plate(frames, covered, needed)
    seen = ~covered.all(dim=0)
    assert torch.equal(limited[needed & seen], full[needed & seen])
    assert (limited[needed & ~seen] - full[needed & ~seen]).abs().max() < 0.05
    far = ~module.dilate(needed, module.NEEDED_MARGIN)
    assert far[5:30, 120:].all() and (limited[far] == 0).all()  # the box's far corner was never computed
    assert torch.isfinite(limited).all()


def test_plate_falls_back_to_the_whole_frame_when_no_background_is_near():
    """The occluder sits inside a large object, so nothing around it is ever background: the plate is built
    from the whole frame (the fill reaches the far background) instead of failing or leaving holes."""
    g = torch.Generator().manual_seed(11)
    frames, height, width = 3, 40, 120
    images, rgb = torch.rand(frames, height, width, 3, generator=g), torch.rand(frames, height, width, 3, generator=g)
    amodal = torch.zeros(frames, height, width)
    amodal[:, :, :80] = 1  # the object covers the left two thirds in every frame
    occluder = torch.zeros(frames, height, width)
    occluder[:, 10:20, 10:20] = 1
    out, _ = composite_edit(images, rgb, amodal, "remove_occluder", occluder_masks=occluder, modal_masks=amodal)
    assert torch.isfinite(out).all()
    from diffusion_vas.models.editing.composite import _Scene

    scene = _Scene.build(images, rgb, amodal, amodal, occluder, None)
    used = scene.plate(scene.repainted("remove_occluder", 0.0))[0]  # the plate the edit draws under the object
    whole = clean_plate(images, (amodal > 0.5) | (occluder > 0.5))
    hole = (occluder > 0).any(dim=0)
    assert torch.allclose(used[hole], whole[hole])


@pytest.mark.parametrize("mode", MODES)
def test_masks_outside_0_1_act_as_clamped(mode):
    """Mask values are read clamped to 0..1 (1.7 is fully on, -0.3 off), in every mode, as clamped masks give."""
    images, rgb, amodal, modal, occluder = _clip(6)
    def stretched(m):
        return torch.where(m > 0, m * 1.7, torch.full_like(m, -0.3))
    args = dict(modal_masks=modal, occluder_masks=occluder, offset=(2, 1))
    expected = composite_edit(images, rgb, amodal, mode, **args)
    got = composite_edit(images, rgb, stretched(amodal), mode, modal_masks=stretched(modal),
                         occluder_masks=stretched(occluder), offset=(2, 1))
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_dilate_is_the_square_maximum():
    from diffusion_vas.models.base.chunking import dilate

    masks = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(2)) > 0.9
    for radius in (0, 1, 4, 30):
        square = torch.nn.functional.max_pool2d(masks.float().reshape(-1, 1, 17, 23), 2 * radius + 1, stride=1,
                                                padding=radius).reshape(masks.shape)
        assert torch.equal(dilate(masks, radius), square > 0)
        assert torch.equal(dilate(masks.float() * 0.5, radius), square * 0.5)


def test_outline_growth_equals_dilate_at_every_width():
    """The outline grows the uncovered pixels by shifted ORs (fast for its few pixels); the same pixels as
    `dilate`, on fragmented masks too, and `dilate` itself past `OUTLINE_SHIFTS`."""
    from diffusion_vas.models.editing import composite
    from diffusion_vas.models.base.chunking import dilate

    masks = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(5)) > 0.7
    for width in (0, 1, 2, 5, composite.OUTLINE_SHIFTS, composite.OUTLINE_SHIFTS + 1):
        assert torch.equal(composite._near(masks, width), dilate(masks, width)), width


def test_remove_occluder_and_move_draw_the_plate_only_where_needed():
    """composite_edit computes the plate around the occluder / the object only; results equal the full plate's."""
    from diffusion_vas.models.editing import composite as module

    g = torch.Generator().manual_seed(9)
    images, rgb = torch.rand(T, H, W, 3, generator=g), torch.rand(T, H, W, 3, generator=g)
    amodal = _square(5, 9, size=3)
    occluder = torch.zeros(T, H, W)
    for t in range(T):
        occluder[t, :, 3 + t:5 + t] = 1
    calls = []
    original = module.clean_plate

    def full_plate(images, covered, needed=None):
        calls.append(needed)
        return original(images, covered)

    for mode, extra in (("remove_occluder", {}), ("move", {"offset": (2, 1)})):
        limited = composite_edit(images, rgb, amodal, mode, occluder_masks=occluder, feather=1.5, **extra)
        module.clean_plate = full_plate
        try:
            full = composite_edit(images, rgb, amodal, mode, occluder_masks=occluder, feather=1.5, **extra)
        finally:
            module.clean_plate = original
        assert calls[-1] is not None and not bool(calls[-1].all()), "a region was asked for"
        assert torch.equal(limited[0], full[0]) and torch.equal(limited[1], full[1]), mode


def test_clean_plate_needs_some_background():
    with pytest.raises(ValueError, match="background"):
        clean_plate(torch.rand(2, 4, 4, 3), torch.ones(2, 4, 4, dtype=torch.bool))


def test_objects_are_drawn_back_to_front_in_the_order_given():
    images = torch.zeros(T, H, W, 3)
    far, near = _square(2, 2), _square(4, 4)
    red, blue = torch.tensor([1.0, 0, 0]).expand(T, H, W, 3), torch.tensor([0, 0, 1.0]).expand(T, H, W, 3)
    out, mask = composite_edit(images, torch.stack([red, blue]), torch.stack([far, near]), "reveal")
    overlap = far.bool() & near.bool()
    assert overlap.any()
    assert torch.equal(out[overlap], blue[overlap])
    assert torch.equal(out[far.bool() & ~near.bool()], red[far.bool() & ~near.bool()])
    assert torch.equal(mask, (far.bool() | near.bool()).float())
    layer, _ = composite_edit(images, torch.stack([red, blue]), torch.stack([far, near]), "layer")
    assert torch.equal(layer[overlap], blue[overlap])


def test_node_called_like_comfyui_with_stacked_objects():
    images, rgb, amodal, modal, occluder = _clip()
    rgb2, amodal2 = rgb.flip(-1), _square(1, 9)
    out, mask, _ = _run({
        "images": images,
        "amodal_rgb": torch.cat([rgb, rgb2]),
        "amodal_masks": torch.cat([amodal, amodal2]),
        "mode": "remove_occluder",
        "modal_masks": torch.cat([modal, amodal2]),
        "occluder_masks": occluder,
        "background": torch.zeros(1, H, W, 3),
        "feather": 0.0,
    })
    expected = composite_edit(images, torch.stack([rgb, rgb2]), torch.stack([amodal, amodal2]), "remove_occluder",
                              occluder_masks=occluder, background=torch.zeros(1, H, W, 3))
    assert out.shape == (T, H, W, 3) and mask.shape == (T, H, W)
    assert torch.equal(out, expected[0]) and torch.equal(mask, expected[1])


def test_node_metadata():
    spec = CompositeEdit.INPUT_TYPES()
    inputs = {**spec["required"], **spec["optional"]}
    assert all("tooltip" in options for _, options in inputs.values())
    assert tuple(inputs["mode"][0]) == MODES == ("reveal", "xray", "remove_occluder", "layer", "move")
    assert CompositeEdit.RETURN_TYPES == ("IMAGE", "MASK", "VIDEO") and len(CompositeEdit.OUTPUT_TOOLTIPS) == 3
    assert CompositeEdit.CATEGORY == "Diffusion-VAS"
    from diffusion_vas import NODE_CLASS_MAPPINGS

    assert NODE_CLASS_MAPPINGS["CompositeEdit"] is CompositeEdit


def test_node_accepts_a_single_hw_mask_and_parses_the_outline_colour():
    images, rgb, amodal, modal, _ = _clip()
    out, _, _ = _run({"images": images[:1], "amodal_rgb": rgb[:1], "amodal_masks": amodal[0], "mode": "xray",
                   "modal_masks": modal[0], "outline_color": "#FF0000", "outline_width": 1})
    assert torch.equal(out[0, 3, 4], torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="outline_color"):
        _run({"images": images, "amodal_rgb": rgb, "amodal_masks": amodal, "mode": "xray",
              "modal_masks": modal, "outline_color": "green"})


def test_node_rejects_a_mask_count_that_is_not_a_multiple_of_the_frames():
    images, rgb, amodal, _, _ = _clip()
    with pytest.raises(ValueError, match=r"amodal_masks has 5 frames but images has 4: give one amodal_masks frame"):
        _run({"images": images, "amodal_rgb": rgb, "amodal_masks": torch.cat([amodal, amodal[:1]]),
              "mode": "reveal"})


@pytest.mark.parametrize("change, message", [
    (lambda k: {**k, "amodal_masks": k["amodal_masks"][:, :, :-1]}, r"amodal_masks is 10x13 .* resize"),
    (lambda k: {**k, "amodal_rgb": k["amodal_rgb"][:3]}, r"amodal_rgb has 3 frames per object but images has 4"),
    (lambda k: {**k, "amodal_masks": torch.stack([k["amodal_masks"]] * 2)}, r"amodal_masks has 2 object"),
    (lambda k: {**k, "modal_masks": k["amodal_masks"][:2]}, r"modal_masks has 2 frames"),
    (lambda k: {**k, "background": torch.rand(2, H, W, 3)}, r"background has 2 frames"),
    (lambda k: {**k, "background": torch.rand(1, H + 1, W, 3)}, r"background is 11x14"),
    (lambda k: {**k, "mode": "remove_occluder"}, r"occluder_masks"),
    (lambda k: {**k, "mode": "blur"}, r"mode must be one of"),
    (lambda k: {**k, "images": k["images"][..., :2]}, r"images must be RGB"),
])
def test_mismatched_inputs_raise_clear_errors(change, message):
    images, rgb, amodal, _, _ = _clip()
    kwargs = change({"images": images, "amodal_rgb": rgb, "amodal_masks": amodal, "mode": "reveal"})
    with pytest.raises(ValueError, match=message):
        composite_edit(**kwargs)


def test_a_single_frame_background_plate_is_broadcast():
    images, rgb, amodal, _, occluder = _clip()
    plate = torch.rand(H, W, 3)
    out, _ = composite_edit(images, rgb, amodal, "remove_occluder", occluder_masks=occluder, background=plate)
    spot = occluder.bool() & ~amodal.bool()
    assert torch.equal(out[spot], plate.expand(T, H, W, 3)[spot])


def test_every_mode_keeps_the_input_size():
    images, rgb, amodal, modal, occluder = _clip()
    for mode in MODES:
        out, mask = composite_edit(images, rgb, amodal, mode, modal_masks=modal, occluder_masks=occluder,
                                   feather=1.5, offset=(-2, 1))
        assert out.shape == images.shape and mask.shape == amodal.shape and out.dtype == torch.float32
        assert torch.isfinite(out).all() and 0 <= float(mask.min()) and float(mask.max()) <= 1
