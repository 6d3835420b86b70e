"""The GPU speed paths, checked on the CPU for results equal to the plain path (within float rounding): one UNet
batch for guidance, SDPA attention, no host synchronisation while sampling, decoding several videos per call,
TF32 only inside a sampling call, torch.compile of the UNet, memory estimates and model offload."""

from __future__ import annotations

import logging

import pytest
import torch

from diffusion_vas.models import DEFAULT_SIZE, SamplingOptions, load_pipeline
from diffusion_vas.models.base import memory
from diffusion_vas.models.engine import runtime
from diffusion_vas.models.host import Host, get_host, set_host
from diffusion_vas.nodes import comfy_bridge, loader
from comfy_fakes import record_load_requests, record_memory_asked
from conftest import TINY


class _Memory(Host):
    """The plain host, with a free-memory figure set by the test."""

    def __init__(self, free):
        self.free = free

    def free_memory(self, device):
        return self.free


@pytest.fixture
def host_with_free_memory():
    previous = get_host()
    hosts = []

    def install(free):
        hosts.append(_Memory(free))
        set_host(hosts[-1])
        return hosts[-1]

    yield install
    set_host(previous)


def _conditions(frames=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(frames, 3, 64, 128, generator=gen) * 2 - 1, torch.rand(frames, 3, 64, 128, generator=gen) * 2 - 1


def test_sampling_never_reads_a_device_tensor_back():
    """On the meta device any read of a tensor's value on the host (``item``, ``bool``, ``nonzero``, ``tolist``,
    ``cpu``) raises, so encoding, CLIP and the whole denoising loop running there proves no host synchronisation
    until decoding hands the frames back."""
    pipe = load_pipeline(TINY.stage1).to("meta")
    pipe._decode = lambda latents, chunk, emit=None: latents  # decoding ends in the intended copy to the CPU
    a, b = _conditions(30)
    latents = pipe.sample(a, b, num_inference_steps=3, window=25, overlap=8)  # two windows, guidance on
    assert latents.device.type == "meta" and latents.shape == (30, 4, 8, 16)


def test_guidance_runs_as_one_unet_batch_per_window(stage1_pipe):
    batches = []
    handle = stage1_pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        a, b = _conditions(30)
        stage1_pipe.sample(torch.stack([a, a]), torch.stack([b, b]), num_inference_steps=2, window=25, overlap=8,
                           object_batch_size=2)
    finally:
        handle.remove()
    assert batches == [4] * 4  # 2 steps x 2 windows, each call unconditional + conditional rows of both objects


def test_attention_is_pytorch_sdpa(stage1_pipe):
    from diffusers.models.attention_processor import AttnProcessor2_0

    for module in (stage1_pipe.unet, stage1_pipe.vae):
        processors = module.attn_processors
        assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors.values())
    assert stage1_pipe.image_encoder.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("free,calls", [(None, [16, 16, 6]), (0, [8, 8, 8, 8, 3, 3]), (3 * 2**29, [24, 8, 6]),
                                        (2**50, [32, 6])])
def test_decoding_several_videos_per_call_gives_the_same_frames(stage1_pipe, host_with_free_memory, free, calls,
                                                                monkeypatch):
    """2 objects x 19 frames in chunks of 8: videos (0, 0..7) (1, 0..7) (0, 8..15) (1, 8..15) (0, 16..18)
    (1, 16..18), at most as many per call as half the free memory holds at 1024 x 8 x 64 x 128 x 4 bytes = 256 MiB
    per video, one length per call. Unknown memory: one chunk's rows per call (the previous behaviour); none free:
    one video per call; 1.5 GiB: 3 per call; ample: all 8-frame videos in one call."""
    from diffusion_vas.models.engine import pipeline

    monkeypatch.setattr(pipeline, "CPU_DECODE_BATCHING", True)  # on the CPU only where asked (long shots stay flat)
    latents = torch.randn(2, 19, 4, 8, 16, generator=torch.Generator().manual_seed(1))
    host_with_free_memory(0)
    reference = stage1_pipe._decode(latents, 8)
    host_with_free_memory(free)
    frames_per_call, pieces = [], []
    handle = stage1_pipe.vae.decoder.register_forward_pre_hook(
        lambda module, args: frames_per_call.append(args[0].shape[0]))
    try:
        frames = stage1_pipe._decode(latents, 8)
        stage1_pipe._decode(latents, 8, lambda row, part, pixels: pieces.append((row, part.start, part.stop, pixels)))
    finally:
        handle.remove()
    assert frames_per_call == calls * 2
    assert frames.shape == (2, 19, 3, 64, 128)
    assert (frames - reference).abs().max() <= 1e-5
    for row in (0, 1):  # each row's pieces in frame order, covering the clip, the same pixels
        mine = [(s, e, pixels) for r, s, e, pixels in pieces if r == row]
        assert [(s, e) for s, e, _ in mine] == [(0, 8), (8, 16), (16, 19)]
        assert torch.equal(torch.cat([pixels for _, _, pixels in mine]), frames[row])


def test_cpu_decodes_one_chunk_per_call(stage1_pipe, host_with_free_memory):
    """Whatever the free RAM, the CPU decodes a chunk's rows per call: a long shot's memory stays flat."""
    host_with_free_memory(2**50)
    frames_per_call = []
    handle = stage1_pipe.vae.decoder.register_forward_pre_hook(
        lambda module, args: frames_per_call.append(args[0].shape[0]))
    try:
        stage1_pipe._decode(torch.randn(2, 19, 4, 8, 16), 8)
    finally:
        handle.remove()
    assert frames_per_call == [16, 16, 6]


def test_videos_per_decode_by_hand():
    video = runtime.decode_bytes(8, (256, 512), torch.float16)
    assert video == 1024 * 8 * 256 * 512 * 2  # 2 GiB
    assert runtime.videos_per_decode(6, 8, (256, 512), torch.float16, 6 * video) == 3  # half of the free memory
    assert runtime.videos_per_decode(6, 8, (256, 512), torch.float16, 0) == 1
    assert runtime.videos_per_decode(2, 8, (256, 512), torch.float16, 100 * video) == 2


def test_tf32_only_on_cuda_inside_the_block(monkeypatch):
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    with runtime.tf32_matmuls(torch.device("cpu")):
        assert matmul.fp32_precision == before
    with runtime.tf32_matmuls(torch.device("cuda")):
        assert matmul.fp32_precision == "tf32"
    assert matmul.fp32_precision == before
    monkeypatch.setenv(runtime.TF32_ENV, "0")
    with runtime.tf32_matmuls(torch.device("cuda")):
        assert matmul.fp32_precision == before


def test_cpu_free_memory_is_mem_available():
    free = memory.free_memory(torch.device("cpu"))
    with open("/proc/meminfo", encoding="ascii") as f:
        available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    assert free is not None and abs(free - available) < 2**30


def test_compiled_unet_matches_eager():
    """Dynamo and AOTAutograd trace the forward (``aot_eager`` runs the traced graph without generating code, so
    the suite stays fast; ``benchmarks/device_check.sh --cpu --small`` compiles with inductor)."""
    pipe = load_pipeline(TINY.stage1)
    a, b = _conditions(4, seed=2)
    eager = pipe.sample(a, b, num_inference_steps=2)
    pipe.unet.set_compiled(True, backend="aot_eager")
    assert pipe.unet.is_compiled
    compiled = pipe.sample(a, b, num_inference_steps=2)
    assert (compiled - eager).abs().max() <= 1e-4
    pipe.unet.set_compiled(False)
    assert not pipe.unet.is_compiled and torch.equal(pipe.sample(a, b, num_inference_steps=2), eager)


def test_loader_node_compiles_on_request():
    model = loader.DiffusionVASLoader().load(str(TINY.stage1), "fp32")[0]
    assert not model.pipeline.unet.is_compiled  # the default: off
    assert loader.DiffusionVASLoader().load(str(TINY.stage1), "fp32", compile=True)[0].pipeline.unet.is_compiled
    assert not loader.DiffusionVASLoader().load(str(TINY.stage1), "fp32")[0].pipeline.unet.is_compiled


def test_prepared_asks_model_management_for_the_call_memory(monkeypatch):
    model = loader.DiffusionVASLoader().load(str(TINY.stage1), "fp32")[0]
    asked = record_memory_asked(monkeypatch, model)
    options = SamplingOptions(object_batch_size=3)
    with model.prepared():
        pass
    with model.prepared(options, objects=4, size=(128, 256), frames=10):
        pass
    assert asked == [runtime.sampling_bytes(SamplingOptions(), 1, DEFAULT_SIZE, torch.float32),
                     runtime.sampling_bytes(options, 4, (128, 256), torch.float32, frames=10)]


def test_comfyui_model_management_gets_the_call_memory(monkeypatch):
    calls = record_load_requests(monkeypatch, comfy_bridge)
    bundle = comfy_bridge.ManagedModels({"layer": torch.nn.Linear(2, 2)}, torch.device("cpu"))
    bundle.patcher = "patcher"
    with bundle.managed(123) as device:
        assert device == torch.device("cpu")
    assert calls == [(["patcher"], 123, True)]


def test_plain_host_offloads_other_models_when_memory_is_short(host_with_free_memory, caplog, monkeypatch):
    """Outside ComfyUI, a bundle placed on an accelerator (here the meta device) moves other bundles there back to
    the CPU, least recently used first, while the free memory is short; with enough memory nothing moves."""
    monkey = torch.device("meta")
    # meta tensors have no values to copy back: offloading them makes empty CPU tensors (the decision is tested)
    monkeypatch.setattr(comfy_bridge.ManagedModels, "offload",
                        lambda self: self.bundle.to_empty(device=self.offload_device))
    first = comfy_bridge.ManagedModels({"a": torch.nn.Linear(64, 64)}, monkey)
    second = comfy_bridge.ManagedModels({"b": torch.nn.Linear(64, 64)}, monkey)
    third = comfy_bridge.ManagedModels({"c": torch.nn.Linear(64, 64)}, monkey)
    weights = (64 * 64 + 64) * 4
    assert second.bytes_to_load() == weights
    host_with_free_memory(2**40)
    for bundle in (first, second):
        with bundle.managed(0):
            pass
    assert first.bundle.a.weight.is_meta and second.bundle.b.weight.is_meta  # ample memory: both stay
    host = host_with_free_memory(0)
    with caplog.at_level(logging.INFO, logger=comfy_bridge.__name__):
        with third.managed(10):
            pass
    # nothing ever frees in this fake: both others go back, oldest first, and the shortfall is a warning
    assert first.bundle.a.weight.device.type == "cpu" and second.bundle.b.weight.device.type == "cpu"
    assert third.bundle.c.weight.is_meta
    moves = [r.getMessage() for r in caplog.records if "moving" in r.getMessage()]
    assert len(moves) == 2 and moves[0].endswith("moving a to cpu") and moves[1].endswith("moving b to cpu")
    assert any(r.levelno == logging.WARNING and "may run out of memory" in r.getMessage() for r in caplog.records)
    host.free = 2**40
    caplog.clear()
    with first.managed(0):
        pass
    assert not [r for r in caplog.records if "moving" in r.getMessage()]
