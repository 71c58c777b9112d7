"""The GFPGAN enhancer flow on narrow stand-in GFPGAN/ParseNet files, with dlib finding the real face."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sadtalker.errors import MissingCheckpoints
from sadtalker.face import Enhancer
from sadtalker.face.paste import upscale_background


@pytest.fixture(scope="module")
def enhancer(enhancer_only_dir) -> Enhancer:
    return Enhancer.load(enhancer_only_dir, device="cpu")


@pytest.fixture(scope="module")
def frames(face_rgb, noface_rgb) -> np.ndarray:
    """A 256 px crop around the astronaut's face and one of the coffee cup (no face)."""
    return np.stack([face_rgb[20:276, 90:346], noface_rgb[50:306, 150:406]])


def test_missing_files_are_reported(tmp_path):
    with pytest.raises(MissingCheckpoints) as e:
        Enhancer.load(tmp_path)
    assert e.value.code == "models_unavailable" and "GFPGANv1.4.pth" in str(e.value)
    assert "parsing_parsenet.pth" in str(e.value)


@pytest.mark.slow
def test_batch_is_upscaled_2x_and_faces_are_restored(enhancer, frames):
    assert enhancer.analyzer.backend == "dlib"
    out = enhancer.enhance(frames, torch.Generator().manual_seed(3))
    assert out.shape == (2, 512, 512, 3) and out.dtype == np.uint8
    plain = [upscale_background(f[..., ::-1], 2)[..., ::-1] for f in frames]
    assert np.array_equal(out[1], plain[1])  # no face: just the Lanczos ×2 frame
    changed = np.any(out[0] != plain[0], axis=-1)
    ys, xs = np.nonzero(changed)
    assert changed.mean() > 0.02  # the face was pasted back ...
    assert 100 < xs.mean() < 400 and 50 < ys.mean() < 350  # ... around where it is (box ~ (178,126)-(354,302))
    assert not changed[:, :40].any() and not changed[-40:].any()  # the soft mask leaves the rest alone
    # the noise is drawn face by face in order: splitting the batch with one generator changes nothing
    gen = torch.Generator().manual_seed(3)
    split = np.concatenate([enhancer.enhance(frames[:1], gen), enhancer.enhance(frames[1:], gen)])
    assert np.array_equal(split, out)


@pytest.mark.slow
def test_device_path_matches_the_reference_and_forced_faces_are_restored(enhancer, frames, rng):
    """enhance_device (CPU tensors) against enhance: the detected face, and a face forced onto a noise frame
    (the benchmark's path: no detector would find it, GFPGAN still runs). Tolerance: docs/performance.md."""
    from sadtalker.face.enhancer import usable_landmarks

    noise = rng.integers(0, 256, frames[:1].shape, dtype=np.uint8)
    batch = np.concatenate([frames[:1], noise])
    detected = usable_landmarks(enhancer.analyzer.detect(frames[0], largest_first=False))
    landmarks = [detected, detected]   # the astronaut's face points, forced onto the noise frame too
    ref = enhancer.enhance(batch, torch.Generator().manual_seed(5), landmarks=landmarks)
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    ours = enhancer.enhance_device(x, torch.Generator().manual_seed(5), landmarks=landmarks)
    assert ours.shape == (2, 3, 512, 512) and ours.device == x.device
    diff = np.abs(ours.permute(0, 2, 3, 1).numpy() - ref)
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.001
    plain = upscale_background(noise[0][..., ::-1], 2)[..., ::-1]
    assert np.any(ref[1] != plain, axis=-1).mean() > 0.02        # the forced face was restored and pasted
    # detection on the device path finds the same face as on the host (dlib here: one host copy per batch)
    assert len(enhancer._detect_landmarks(x[:1])[0]) == len(detected) == 1
