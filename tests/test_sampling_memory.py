"""The working memory model management is told before a sampling call (`runtime.sampling_memory`): computed from
the call that will run, growing with each of its settings, and what the stage nodes pass to it."""

from __future__ import annotations

import pytest
import torch

from comfy_fakes import record_memory_asked
from conftest import TINY
from diffusion_vas.models import SamplingOptions
from diffusion_vas.models.engine import runtime
from diffusion_vas.models.engine.resize import ENCODE_CHUNK
from diffusion_vas.nodes import loader, stages

SIZE = (256, 512)
BASE = dict(options=SamplingOptions(object_batch_size=4), objects=4, size=SIZE, dtype=torch.float16, frames=25,
            encode_dtype=torch.float16)  # four objects sampled together at the reference's settings


def memory(**changes) -> runtime.SamplingMemory:
    call = {**BASE, **changes}
    return runtime.sampling_memory(call["options"], call["objects"], call["size"], call["dtype"], call["frames"],
                                   call["encode_dtype"], call.get("samples"))


def test_parts_by_hand():
    """Every part is its per-element constant times the shape the sampler gives that part, in the part's dtype."""
    m = runtime.sampling_memory(SamplingOptions(object_batch_size=3, samples=2, decode_chunk_size=5), 4, SIZE,
                                torch.float16, frames=40, encode_dtype=torch.float32)
    latent = 32 * 64
    assert m.unet == runtime.UNET_ELEMENTS_PER_LATENT_PIXEL * latent * 25 * (3 * 2) * 2  # 3 rows, x2 guidance
    assert m.decode == runtime.DECODE_ELEMENTS_PER_PIXEL * 5 * 256 * 512 * 2
    assert m.encode == runtime.ENCODE_ELEMENTS_PER_PIXEL * min(ENCODE_CHUNK, 40) * 256 * 512 * 4  # float32 encoder
    assert m.clip == runtime.CLIP_ELEMENTS_PER_FRAME * min(ENCODE_CHUNK, 40) * 2
    assert m.held == runtime.HELD_ELEMENTS_PER_LATENT_PIXEL * latent * 40 * 3 * 2
    assert m.peak == runtime.CALL_OVERHEAD_BYTES + m.held + max(m.unet, m.decode, m.encode, m.clip)
    assert runtime.sampling_bytes(SamplingOptions(object_batch_size=3, samples=2, decode_chunk_size=5), 4, SIZE,
                                  torch.float16, 40, torch.float32) == m.peak


def test_rows_in_flight_are_the_batch_or_all_object_samples():
    """The UNet batch is min(object_batch_size, objects x samples): a batch larger than the call's object-samples
    costs nothing more."""
    def unet(objects, batch, samples=1):
        return memory(objects=objects, options=SamplingOptions(object_batch_size=batch, samples=samples)).unet

    assert unet(1, 1) == unet(1, 8) < unet(2, 8) == unet(2, 2) < unet(3, 8)
    assert unet(2, 8, samples=2) == unet(4, 8) == unet(4, 4)
    assert memory(objects=2, samples=3, options=SamplingOptions(object_batch_size=8)).unet == unet(6, 6)


@pytest.mark.parametrize("setting, low, high, base", [
    ("size", (128, 256), (256, 512), {}),
    ("frames", 8, 25, {}),
    ("object_batch_size", 4, 6, dict(objects=8)),
    ("samples", 2, 4, dict(objects=2, options=SamplingOptions(object_batch_size=8))),
    ("guidance_scale", 1.0, 1.5, {}),
    ("dtype", torch.float16, torch.float32, {}),
])
def test_estimate_grows_with_each_setting(setting, low, high, base):
    """Each setting alone: the estimate grows strictly (with four object-samples in a batch the UNet's activations
    are the largest part)."""
    def estimate(value):
        if setting in ("size", "frames"):
            return memory(**base, **{setting: value})
        if setting == "dtype":
            return memory(**base, dtype=value, encode_dtype=value)
        options = base.get("options", BASE["options"]).with_changes(**{setting: value})
        return memory(**{**base, "options": options})

    small, large = estimate(low), estimate(high)
    assert small.peak < large.peak and small.unet < large.unet
    assert max(vars(large), key=vars(large).get) == "unet"


def test_frames_beyond_a_window_grow_only_what_spans_the_clip():
    """A clip longer than the window denoises one window at a time: the UNet part stays, the latents held over
    the whole clip grow."""
    window, long = memory(frames=25), memory(frames=100)
    assert window.unet == long.unet and window.decode == long.decode and window.held < long.held
    assert window.peak < long.peak


def test_decode_chunk_grows_the_decoder_part():
    """The decoder part grows strictly with decode_chunk_size (up to the clip's frames); the estimate grows with it
    (strictly once the decoder is the largest part)."""
    parts = [memory(options=BASE["options"].with_changes(decode_chunk_size=c)) for c in (1, 4, 8, 16, 25)]
    assert all(a.decode < b.decode for a, b in zip(parts, parts[1:]))
    assert all(a.peak <= b.peak for a, b in zip(parts, parts[1:]))
    single = SamplingOptions(guidance_scale=1.0)
    one, two = (memory(objects=1, options=single.with_changes(decode_chunk_size=c)) for c in (16, 25))
    assert max(vars(two), key=vars(two).get) == "decode" and one.peak < two.peak
    assert memory(frames=8, options=SamplingOptions(decode_chunk_size=8)).decode == \
        memory(frames=8, options=SamplingOptions(decode_chunk_size=25)).decode  # one chunk holds the whole clip


def test_float16_encoder_in_float32_counts_at_float32():
    assert memory(encode_dtype=torch.float32).encode == 2 * memory(encode_dtype=torch.float16).encode


# -- the nodes pass the call's values -----------------------------------------------------------------------------

@pytest.fixture()
def spied(monkeypatch):
    """The loader's models with `prepared` recorded: (model, the calls' arguments)."""
    calls = []
    real = loader.DiffusionVASModel.prepared

    def prepared(self, *args, **kwargs):
        calls.append((self, args, kwargs))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(loader.DiffusionVASModel, "prepared", prepared)
    return calls


def test_stage_nodes_pass_the_calls_values(spied, monkeypatch):
    frames, height, width = 6, 40, 72
    model1 = loader.DiffusionVASLoader().load(str(TINY.stage1), "fp32")[0]
    model2 = loader.DiffusionVASLoader().load(str(TINY.stage2), "fp32")[0]
    asked1, asked2 = record_memory_asked(monkeypatch, model1), record_memory_asked(monkeypatch, model2)
    modal = torch.zeros(2 * frames, height, width)  # two objects stacked
    modal[:frames, 10:30, 10:40] = 1
    modal[frames:, 5:25, 30:60] = 1
    depth = torch.rand(frames, height, width, 1).expand(-1, -1, -1, 3)
    widgets = dict(seed=1, steps=1, guidance_scale=2.0, width=64, height=32, window=4, overlap=1,
                   object_batch_size=3, decode_chunk_size=2)
    with torch.inference_mode():
        masks, *_ = stages.AmodalMaskSVD().predict(model1, modal, depth, samples=2, combine="all", **widgets)
        images = torch.rand(frames, height, width, 3)
        stages.AmodalContentSVD().complete(model2, images, modal, masks, **widgets)  # 2 hypotheses per object
    (m1, args1, kwargs1), (m2, args2, kwargs2) = spied
    assert m1 is model1 and m2 is model2
    options1 = stages.sampling_options("amodal", {**widgets, "samples": 2})
    options2 = stages.sampling_options("content", widgets)
    assert args1 == (options1, 2, (32, 64), frames) and not kwargs1
    assert args2 == (options2, 2, (32, 64), frames, 2) and not kwargs2  # stage 2 draws one per hypothesis
    assert asked1 == [runtime.sampling_bytes(options1, 2, (32, 64), torch.float32, frames)]
    assert asked2 == [runtime.sampling_bytes(options2, 2, (32, 64), torch.float32, frames, samples=2)]
    # three of the four object-samples share a batch, twice with guidance, over a 4-frame window
    assert runtime.sampling_memory(options1, 2, (32, 64), torch.float32, frames).unet == \
        runtime.UNET_ELEMENTS_PER_LATENT_PIXEL * 4 * 8 * 4 * 3 * 2 * 4
