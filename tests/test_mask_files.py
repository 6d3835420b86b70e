"""One mask reader for the files people save (models.io.mask_files): every format built here, read as the authors
read masks (binary: PIL grey level > 128) or as the right objects (labels)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from diffusion_vas.models.io.mask_files import (MIN_OBJECT_FRACTION, read_mask_files, read_mask_folder,
                                                voc_palette)

H, W, T = 60, 90, 3


def soft_disk(frame: int) -> np.ndarray:
    """``[H, W]`` uint8: a white disk on black with an anti-aliased ramp of greys at its edge (moves per frame)."""
    ys, xs = np.mgrid[0:H, 0:W]
    distance = np.hypot(ys - 30, xs - (35 + 5 * frame))
    return (np.clip(16 - distance, 0, 1) * 255).round().astype(np.uint8)


def authors_reading(file) -> np.ndarray:
    """The authors' reading of any mask image: PIL 'L' > 128."""
    with Image.open(file) as image:
        return np.asarray(image.convert("L")) > 128


def save_all(folder, arrays, name="{:05d}.png", **kwargs):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, array in enumerate(arrays):
        image = array if isinstance(array, Image.Image) else Image.fromarray(array)
        paths.append(folder / name.format(k))
        image.save(paths[-1], **kwargs)
    return paths


def palette_image(index: np.ndarray, palette: np.ndarray) -> Image.Image:
    image = Image.fromarray(index.astype(np.uint8), mode="P")
    image.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
    return image


def three_objects(frame: int) -> np.ndarray:
    """``[H, W]`` ids 0..3: three rectangles (object 2 moves)."""
    ids = np.zeros((H, W), np.uint8)
    ids[5:25, 5:30] = 1
    ids[30:55, 10 + frame:40 + frame] = 2
    ids[10:50, 60:85] = 3
    return ids


def test_grey_ramp_palette_with_index_0_white_is_read_as_grey_levels(tmp_path):
    ramp = np.stack([255 - np.arange(256)] * 3, axis=1)  # index 0 white, higher indices darker
    paths = save_all(tmp_path, [palette_image(255 - soft_disk(k), ramp) for k in range(T)])
    masks = read_mask_folder(tmp_path)
    assert masks.format == "binary" and "shades of grey" in masks.reason
    assert masks.ids == [0]
    expected = np.stack([authors_reading(p) for p in paths])
    np.testing.assert_array_equal(masks.select(0), expected)
    np.testing.assert_array_equal(expected, np.stack([soft_disk(k) > 128 for k in range(T)]))


def test_adaptive_palette_with_fringe_colours_is_one_binary_object(tmp_path):
    images = [Image.fromarray(soft_disk(k)).convert("RGB").quantize(colors=24) for k in range(T)]
    assert len(np.unique(np.asarray(images[0]))) > 10  # many fringe indices, as in the tryout
    paths = save_all(tmp_path, images)
    masks = read_mask_folder(tmp_path)
    assert masks.format == "binary"
    assert [o.id for o in masks.objects] == [0]
    np.testing.assert_array_equal(masks.select(0), np.stack([authors_reading(p) for p in paths]))
    truth = np.stack([soft_disk(k) > 128 for k in range(T)])
    iou = (masks.select(0) & truth).sum() / (masks.select(0) | truth).sum()
    assert iou > 0.97


def test_davis_palette_three_objects(tmp_path):
    save_all(tmp_path, [palette_image(three_objects(k), voc_palette()) for k in range(T)])
    masks = read_mask_folder(tmp_path)
    assert masks.format == "labels" and "3 distinct label colours" in masks.reason
    assert masks.ids == [1, 2, 3]
    assert [o.pixels for o in masks.objects] == [T * 20 * 25, T * 25 * 30, T * 40 * 25]
    assert masks.objects[0].colour == (128, 0, 0)
    truth = np.stack([three_objects(k) for k in range(T)])
    np.testing.assert_array_equal(masks.select(2), truth == 2)
    np.testing.assert_array_equal(masks.select(0), truth > 0)  # 0: every object pixel
    with pytest.raises(ValueError, match=r"object_id 7 appears in none .* ids present: \[1, 2, 3\]"):
        masks.select(7)
    # Binary asked for: exactly the authors' grey level > 128, which the dark label colours never reach.
    assert not read_mask_folder(tmp_path, "binary").select(0).any()


def test_davis_colours_saved_as_rgb_keep_their_palette_ids(tmp_path):
    save_all(tmp_path, [voc_palette()[three_objects(k)] for k in range(T)])
    masks = read_mask_folder(tmp_path)
    assert masks.format == "labels" and masks.ids == [1, 2, 3]
    np.testing.assert_array_equal(masks.select(3), np.stack([three_objects(k) == 3 for k in range(T)]))


def test_grey_label_values_and_16_bit_labels(tmp_path):
    save_all(tmp_path / "l8", [three_objects(k) for k in range(T)])
    save_all(tmp_path / "l16", [three_objects(k).astype(np.uint16) for k in range(T)])
    for sub in ("l8", "l16"):
        masks = read_mask_folder(tmp_path / sub)
        assert masks.format == "labels" and "no pixel is brighter than 128" in masks.reason, sub
        assert masks.ids == [1, 2, 3]
        np.testing.assert_array_equal(masks.select(1), np.stack([three_objects(k) == 1 for k in range(T)]))


def test_16_bit_grey_masks_are_scaled_not_clipped(tmp_path):
    ramp16 = [(soft_disk(k).astype(np.uint32) * 257).astype(np.uint16) for k in range(T)]
    paths = save_all(tmp_path, ramp16)
    assert Image.open(paths[0]).mode.startswith("I")
    masks = read_mask_folder(tmp_path)
    assert masks.format == "binary" and "16-bit values scaled" in masks.reason
    np.testing.assert_array_equal(masks.select(0), np.stack([soft_disk(k) > 128 for k in range(T)]))


@pytest.mark.parametrize("on", [1, 255])
def test_zero_one_and_zero_255_masks(tmp_path, on):
    truth = np.stack([soft_disk(k) > 128 for k in range(T)])
    save_all(tmp_path, [(t * on).astype(np.uint8) for t in truth])
    masks = read_mask_folder(tmp_path)
    assert masks.format == "binary" and masks.ids == [0]
    np.testing.assert_array_equal(masks.select(0), truth)


def test_jpeg_masks_with_compression_noise(tmp_path):
    truth = np.stack([soft_disk(k) > 128 for k in range(T)])
    paths = save_all(tmp_path, [np.repeat((t * 255).astype(np.uint8)[..., None], 3, -1) for t in truth],
                     name="{:05d}.jpg", quality=70)
    assert len(np.unique(np.asarray(Image.open(paths[0])))) > 20  # noise
    masks = read_mask_folder(tmp_path)
    assert masks.format == "binary"
    np.testing.assert_array_equal(masks.select(0), np.stack([authors_reading(p) for p in paths]))
    assert (masks.select(0) != truth).mean() < 0.01


def test_rgba_alpha_masks(tmp_path):
    rng = np.random.default_rng(0)
    truth = np.stack([soft_disk(k) for k in range(T)])
    cutouts = [np.dstack([rng.integers(0, 256, (H, W, 3), dtype=np.uint8), a]) for a in truth]  # colour: a cut-out
    save_all(tmp_path / "cutout", cutouts)
    white = [np.dstack([np.full((H, W, 3), 255, np.uint8), a]) for a in truth]  # transparent white background
    save_all(tmp_path / "white", white)
    for sub in ("cutout", "white"):
        masks = read_mask_folder(tmp_path / sub)
        assert masks.format == "binary" and "alpha" in masks.reason, sub
        np.testing.assert_array_equal(masks.select(0), truth > 128)
    with pytest.raises(ValueError, match="transparency"):
        read_mask_folder(tmp_path / "white", "labels")


def test_opaque_rgba_is_read_by_colour(tmp_path):
    truth = np.stack([soft_disk(k) > 128 for k in range(T)])
    save_all(tmp_path, [np.dstack([np.repeat(t[..., None] * 255, 3, -1), np.full((H, W), 255)]).astype(np.uint8)
                        for t in truth])
    masks = read_mask_folder(tmp_path)
    assert masks.format == "binary"
    np.testing.assert_array_equal(masks.select(0), truth)


def test_tiny_label_ids_are_left_out_with_a_warning(tmp_path, caplog):
    frames = []
    for k in range(T):
        ids = three_objects(k)
        ids[0, 0:3] = 5  # a 3-pixel id: below 0.1% of the 5400-pixel frame in every frame
        frames.append(palette_image(ids, voc_palette()))
    save_all(tmp_path, frames)
    with caplog.at_level(logging.INFO, logger="diffusion_vas.models.io.mask_files"):
        masks = read_mask_folder(tmp_path)
    assert masks.format == "labels"
    assert masks.ids == [1, 2, 3] and masks.tiny_ids == [5]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "id 5: 9 pixels in 3 frames" in warnings[0]
    assert masks.select(5).sum() == 9  # still selectable by its id
    assert "read as labels" in masks.describe() and "id 1: 1500 pixels" in masks.describe()


def test_tiny_binary_object_is_kept_with_a_warning(tmp_path, caplog):
    frames = [np.zeros((H, W), np.uint8) for _ in range(T)]
    frames[1][10:12, 10:12] = 255  # 4 pixels: 0.07% of the frame
    save_all(tmp_path, frames)
    with caplog.at_level(logging.WARNING, logger="diffusion_vas.models.io.mask_files"):
        masks = read_mask_folder(tmp_path)
    assert masks.format == "binary" and masks.ids == [0]
    assert masks.objects[0].max_fraction < MIN_OBJECT_FRACTION
    assert any("less than 0.1% of the frame in every frame" in r.getMessage() for r in caplog.records)


def test_range_and_messages(tmp_path):
    truth = [(soft_disk(k) > 128).astype(np.uint8) * 255 for k in range(5)]
    paths = save_all(tmp_path / "m", truth, name="m{}.png")
    masks = read_mask_folder(tmp_path / "m", start=1, count=2, every=2)
    assert [p.name for p in masks.files] == ["m1.png", "m3.png"]
    with pytest.raises(ValueError, match="does not exist"):
        read_mask_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        read_mask_folder(paths[0])
    with pytest.raises(ValueError, match="mask_format 'grey'"):
        read_mask_folder(tmp_path / "m", "grey")
    Image.fromarray(np.zeros((10, 20), np.uint8)).save(tmp_path / "m" / "m9.png")
    with pytest.raises(ValueError, match=r"m9.png is 20x10 but m0.png is 90x60 \(WxH"):
        read_mask_files(sorted((tmp_path / "m").glob("*.png")))


# -- through the LoadModalMasks node ----------------------------------------------------------------------------

def test_node_mask_format_input_and_inverted_palette(tmp_path):
    from diffusion_vas.nodes import masks as node_masks

    optional = node_masks.LoadModalMasks.INPUT_TYPES()["optional"]
    assert list(optional)[-1] == "mask_format" and optional["mask_format"][0] == ["auto", "binary", "labels"]
    assert optional["mask_format"][1]["default"] == "auto"

    ramp = np.stack([255 - np.arange(256)] * 3, axis=1)  # index 0 white: object_id 0 used to give the inverse
    save_all(tmp_path / "ramp", [palette_image(255 - soft_disk(k), ramp) for k in range(T)])
    node = node_masks.LoadModalMasks()
    (loaded,) = node.load(folder=str(tmp_path / "ramp"))
    truth = np.stack([soft_disk(k) > 128 for k in range(T)])
    np.testing.assert_array_equal(loaded.numpy() > 0.5, truth)

    save_all(tmp_path / "davis", [palette_image(three_objects(k), voc_palette()) for k in range(T)])
    (every,) = node.load(folder=str(tmp_path / "davis"))
    np.testing.assert_array_equal(every.numpy() > 0.5, np.stack([three_objects(k) > 0 for k in range(T)]))
    (two,) = node.load(folder=str(tmp_path / "davis"), object_id=2)
    np.testing.assert_array_equal(two.numpy() > 0.5, np.stack([three_objects(k) == 2 for k in range(T)]))
    (grey,) = node.load(folder=str(tmp_path / "davis"), mask_format="binary")
    assert not grey.any()  # the authors' reading of dark label colours


def test_node_missing_folder_is_reported_once(tmp_path):
    from diffusion_vas.nodes import masks as node_masks

    missing = str(tmp_path / "nowhere")
    changed = node_masks.LoadModalMasks.IS_CHANGED(folder=missing)  # never raises: load reports it, once
    assert isinstance(changed, str)
    with pytest.raises(ValueError, match=r"^folder: Mask folder .*nowhere does not exist"):
        node_masks.LoadModalMasks().load(folder=missing)
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        node_masks.LoadModalMasks().load(folder=str(tmp_path / "file.png"))


def test_a_mask_sequence_decodes_each_file_once_and_reads_it_back_exactly(tmp_path, monkeypatch):
    """The stages read an object's masks on several passes; the files are decoded on the first only, and every
    later pass gives the same masks (kept packed)."""
    import torch

    from diffusion_vas.models.io import mask_files

    save_all(tmp_path, [three_objects(k) * 80 for k in range(4)])
    folder = read_mask_folder(tmp_path, "labels")
    decoded = []
    read = mask_files._MaskImage.read
    monkeypatch.setattr(mask_files._MaskImage, "read", staticmethod(lambda f: decoded.append(f) or read(f)))
    sequence = folder.sequence(object_id=160, size=(30, 45))
    parts = [slice(0, 3), slice(3, 4)]
    first = list(sequence.read(parts))
    files_read = len(decoded)
    second = list(sequence.read(parts))
    assert len(decoded) == files_read  # nothing decoded again
    for a, b, part in zip(first, second, parts):
        assert torch.equal(a, b)
        assert a.shape == (part.stop - part.start, 30, 45) and a.dtype == torch.bool


def test_packed_masks_give_back_clean_and_noisy_masks_exactly():
    """Clean masks are kept zlib-compressed, noise as packed bits (and the next frames without trying zlib);
    both come back bit for bit; a mask of the wrong size or type is refused."""
    import torch

    from diffusion_vas.models.base.packed_masks import RETRY, PackedMasks

    generator = torch.Generator().manual_seed(0)
    clean = torch.zeros(4, 37, 53, dtype=torch.bool)
    clean[:, 5:20, 10:40] = True
    noisy = torch.rand(RETRY + 3, 37, 53, generator=generator) > 0.5
    kept = PackedMasks((37, 53))
    kept.put_part(slice(0, 4), clean)
    kept.put_part(slice(4, 4 + noisy.shape[0]), noisy)
    assert kept.holds(slice(0, 4 + noisy.shape[0])) and not kept.holds(slice(0, 5 + noisy.shape[0]))
    assert torch.equal(kept.get_part(slice(0, 4)), clean)
    assert torch.equal(kept.get_part(slice(4, 4 + noisy.shape[0])), noisy)
    assert kept.nbytes < clean.numel() // 8 + noisy.numel() // 8 + 8 * noisy.shape[0]
    with pytest.raises(ValueError, match="bool mask of"):
        kept.put(0, clean[0].float())
