"""Compact condition videos and piecewise decoding: the sampler gives the same numbers as with float tensors."""

from __future__ import annotations

import pytest
import torch

from diffusion_vas.models.engine.condition_video import ConditionVideo, as_condition_video


def _conditions(n: int, frames: int, seed: int = 0, size=(32, 64)):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, frames, 3, *size, generator=g) * 2 - 1, torch.rand(n, frames, 3, *size, generator=g) * 2 - 1)


def _uint8_video(cond: torch.Tensor) -> ConditionVideo:
    """A one-channel uint8 store expanded to 3 channels, as the stages keep mask conditions."""
    store = ((cond[:, :, 0] + 1) * 127.5).round().to(torch.uint8)  # [N, T, h, w]

    def expand(row: int, frames: slice) -> torch.Tensor:
        return (store[row, frames].float() / 255 * 2 - 1).unsqueeze(1).repeat(1, 3, 1, 1)

    return ConditionVideo(store.shape[0], store.shape[1], tuple(store.shape[-2:]), expand), store


def test_chunked_noise_is_one_draw():
    """The sampler draws condition noise a chunk of frames at a time: the same numbers as one draw."""
    for size in ((32, 64), (72, 136), (256, 512)):
        whole = torch.randn((7, 3, *size), generator=torch.Generator().manual_seed(5))
        g = torch.Generator().manual_seed(5)
        parts = [torch.randn((n, 3, *size), generator=g) for n in (3, 1, 2, 1)]
        assert torch.equal(whole, torch.cat(parts))


def test_compact_video_equals_its_float_tensor(stage1_pipe):
    a, b = _conditions(2, 40, seed=1)
    video_a, store = _uint8_video(a)
    dense_a = video_a.materialize()
    assert dense_a.shape == (2, 40, 3, 32, 64) and store.dtype == torch.uint8
    fast = dict(seed=4, num_inference_steps=2, window=25, overlap=8)
    from_tensor = stage1_pipe.sample(dense_a, b, samples=2, object_batch_size=3, **fast)
    from_video = stage1_pipe.sample(video_a, as_condition_video(b, "b"), samples=2, object_batch_size=3, **fast)
    assert torch.equal(from_tensor, from_video)


def test_pieces_equal_the_returned_frames(stage1_pipe):
    a, b = _conditions(2, 30, seed=2)
    fast = dict(seed=9, num_inference_steps=1, decode_chunk_size=7, samples=2, object_batch_size=3)
    whole = stage1_pipe.sample(a, b, **fast)  # [2, 2, 30, 3, h, w]
    got = torch.full_like(whole, -1.0)
    order = []

    def keep(row, frames, pixels):
        order.append((row, frames.start))
        got[row // 2, row % 2, frames] = pixels

    assert stage1_pipe.sample(a, b, on_decoded=keep, **fast) is None
    assert torch.equal(got, whole)
    for row in range(4):  # each row's pieces arrive in frame order
        starts = [s for r, s in order if r == row]
        assert starts == sorted(starts) == list(range(0, 30, 7))


def test_bad_condition_videos_are_refused(stage1_pipe):
    a, b = _conditions(1, 4)
    video_a, _ = _uint8_video(a)
    with pytest.raises(ValueError, match="same shape"):
        stage1_pipe.sample(video_a, b[:, :3], num_inference_steps=1)
    nan = ConditionVideo(1, 4, (32, 64), lambda row, frames: torch.full((frames.stop - frames.start, 3, 32, 64),
                                                                       float("nan")))
    with pytest.raises(ValueError, match="cond_a contains NaN"):
        stage1_pipe.sample(nan, b, num_inference_steps=1)
    with pytest.raises(ValueError, match="whole number"):
        ConditionVideo(3, 4, (32, 64), lambda r, f: None, hypotheses=2)


def test_expanded_frames_are_contiguous(stage1_pipe):
    """A channels-last expansion (stage 2's colours are built by a permute) reaches the encoders in the standard
    layout: the VAE's kernels, and so the last bits, depend on it."""
    a, b = _conditions(1, 6, seed=3)
    last = ConditionVideo(1, 6, (32, 64), lambda r, f: a[r, f].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2))
    assert not last.expand(0, slice(0, 6)).is_contiguous() and last.row(0).is_contiguous()
    fast = dict(seed=2, num_inference_steps=1)
    assert torch.equal(stage1_pipe.sample(last, b, **fast), stage1_pipe.sample(a, b, **fast))
