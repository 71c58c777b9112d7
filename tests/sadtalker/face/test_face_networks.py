"""Face networks and their post-processing against the facemodels golden files (stand-in weights, base_seed)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from sadtalker.face.detection import nms, prior_boxes, select, to_input
from sadtalker.face.fan import FAN
from sadtalker.face.gfpgan import GFPGANv1Clean, to_bgr_uint8
from sadtalker.face.gfpgan import to_input as gfpgan_input
from sadtalker.face.landmarks import crop_landmarks98, heatmap_points, to_68
from sadtalker.face.parsenet import ParseNet
from sadtalker.face.paste import inverse_affine, parse_mask, paste_faces, warp_face
from sadtalker.face.retinaface import RetinaFace
from sadtalker.face.warp import warp_affine
from sadtalker.face.weights import detector_state, gfpgan_state, landmark_state

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def stand_in(reference_dir):
    """Stand-in state dict of a facemodels manifest (detweights.fill, base_seed 0), as torch tensors."""
    from sadtalker.face.standin import load_detweights

    detweights = load_detweights(reference_dir)

    def load(manifest: str) -> dict[str, torch.Tensor]:
        path = reference_dir / "facemodels" / "manifests" / manifest
        entries = json.loads(path.read_text())["tensors"]
        return {k: torch.from_numpy(np.array(v)) for k, v in detweights.fill(entries, 0).items()}

    return load


def test_priors_decode_threshold_and_nms_match_exactly(golden):
    g = golden("b_retinaface_decode_synth")
    h, w = (int(v) for v in g["hw"])
    priors = prior_boxes(h, w)
    assert np.array_equal(priors.numpy(), g["priors"])
    raw = [torch.from_numpy(g[k]) for k in ("loc", "conf", "landms")]
    for key in [k for k in g if k.startswith("dets_")]:
        conf, iou = (int(v) / 100 for v in key.split("_")[1:])
        np.testing.assert_array_equal(select(*raw, priors, h, w, conf, iou), g[key], err_msg=key)


def test_nms_follows_torchvision_semantics():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.95, 0.95, 0.1], np.float32)
    # equal scores keep index order (stable sort); IoU(1,2)=81/119 > 0.4 suppresses 2; box 0 overlaps 1
    assert nms(boxes, scores, 0.4).tolist() == [1, 3]
    assert nms(boxes, scores, 0.9).tolist() == [1, 2, 3]  # IoU(0,2) == 1 > 0.9 suppresses 0 only
    assert select(torch.zeros(4, 4), torch.tensor([[1.0, 0.0]] * 4), torch.zeros(4, 10),
                  prior_boxes(8, 8)[:4], 8, 8, 0.5).shape == (0, 15)


def test_heatmap_decode_reproduces_the_reference_rules(golden):
    g = golden("d_fan_decode_synth")
    for case in ("a", "b"):
        np.testing.assert_array_equal(heatmap_points(g[f"heat_{case}"]), g[f"pred_{case}"])
    peak_last = np.zeros((1, 1, 64, 64), np.float32)
    peak_last[0, 0, 63, 63] = 1  # the reference raises IndexError here; we give no x shift
    assert heatmap_points(peak_last)[0, 0].tolist() == [63.5, 63.75]  # "below" is the last cell itself


def test_98_to_68_map(golden):
    g = golden("c_fan")
    lm = to_68(g["pred98"])
    assert lm.dtype == np.float32
    np.testing.assert_array_equal(lm, g["pred68"])


@pytest.mark.slow
def test_fan_landmarks_match(golden, stand_in):
    g = golden("c_fan")
    net = FAN.from_state_dict(landmark_state(stand_in("alignment_WFLW_4HG.pth.json"), "fan"), "fan").eval()
    np.testing.assert_array_equal(crop_landmarks98(net, g["crop_rgb"]), g["pred98"])


@pytest.mark.slow
def test_retinaface_outputs_match(golden, stand_in):
    g = golden("a_retinaface")
    net = RetinaFace.from_state_dict(detector_state(stand_in("detection_Resnet50_Final.pth.json")), "det").eval()
    with torch.no_grad():
        loc, conf, landms = net(to_input(g["img_0"][None], CPU, torch.float32))
    for out, key in ((loc, "loc_0"), (conf, "conf_0"), (landms, "landms_0")):
        assert np.abs(out[0].numpy() - g[key]).max() <= 1e-5 * np.abs(g[key]).max(), key


def test_parsenet_small_window_matches(golden, stand_in):
    g = golden("e_parsenet")
    net = ParseNet.from_state_dict(stand_in("parsing_parsenet.pth.json"), "parse").eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(g["small_input"])[None])[0].numpy()
    assert np.abs(logits - g["small_logits"]).max() <= 1e-5 * np.abs(g["small_logits"]).max()


@pytest.mark.slow
def test_gfpgan_restores_like_the_reference(golden, stand_in):
    g = golden("f_gfpgan")
    net = GFPGANv1Clean.from_state_dict(gfpgan_state(stand_in("GFPGANv1.4.pth.json"), "g"), "g").eval()
    with torch.no_grad():
        out = net(gfpgan_input(g["face_bgr"][None], CPU, torch.float32))
    assert np.abs(out[0].numpy() - g["out_stored_noise"]).max() <= 1e-5 * np.abs(g["out_stored_noise"]).max()
    diff = np.abs(to_bgr_uint8(out)[0].astype(int) - g["restored_bgr_stored_noise"])
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.001


def test_alignment_and_paste_back_are_exact(golden):
    g = golden("g_pasteback")
    frame = g["frame_bgr"]
    crops = np.stack([warp_face(frame, a) for a in g["affine"]])
    np.testing.assert_array_equal(crops, g["cropped_bgr"])
    inverses = [inverse_affine(a, 2) for a in g["affine"]]
    np.testing.assert_array_equal(np.stack(inverses), g["inverse_affine_scaled_offset"])
    masks = [parse_mask(lab) for lab in g["parse_labels"]]
    np.testing.assert_array_equal(paste_faces(frame, list(g["restored_bgr"]), inverses, masks, 2), g["out_parse"])
    np.testing.assert_array_equal(paste_faces(frame, list(g["restored_bgr"]), inverses, None, 2), g["out_plain"])


def _bilinear(img: np.ndarray, m: np.ndarray, w: int, h: int, border) -> np.ndarray:
    a = cv2.invertAffineTransform(m)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = a[0, 0] * xs + a[0, 1] * ys + a[0, 2], a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]

    def px(y, x):
        inside = ((y >= 0) & (y < img.shape[0]) & (x >= 0) & (x < img.shape[1]))[..., None]
        return np.where(inside, img[np.clip(y, 0, img.shape[0] - 1), np.clip(x, 0, img.shape[1] - 1)], border)

    top = (1 - fx) * px(y0, x0) + fx * px(y0, x0 + 1)
    return (1 - fy) * top + fy * ((1 - fx) * px(y0 + 1, x0) + fx * px(y0 + 1, x0 + 1))


def test_warp_is_float_bilinear(rng):
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    m = cv2.getRotationMatrix2D((40, 30), 17.0, 1.3)
    ideal = _bilinear(img.astype(np.float64), m, 90, 70, np.array([135.0, 133, 132]))
    ours = warp_affine(img, m, (90, 70), (135, 133, 132))
    assert np.abs(ours - ideal).max() <= 0.5 + 1e-3  # float32 arithmetic, rounded once
    small = img[:12, :16]  # into a big canvas: only the window the image can reach is computed
    shift = np.float64([[0.9, 0.1, 200.3], [-0.1, 0.9, 150.7]])
    ideal = _bilinear(small.astype(np.float64), shift, 400, 300, np.zeros(3))
    assert np.abs(warp_affine(small, shift, (400, 300)) - ideal).max() <= 0.5 + 1e-3
    ones = warp_affine(np.ones((20, 20), np.float32), np.float32([[1, 0, 5], [0, 1, 5]]), (30, 30))
    assert ones.dtype == np.float32 and ones[5:25, 5:25].min() == 1 and ones[:5].max() == 0


@pytest.mark.slow
def test_enhance_flow_matches_the_reference(golden, stand_in):
    """GFPGANer.enhance on the golden frame: injected detections, stored noise, both faces in one forward."""
    from sadtalker.face import Enhancer, Face
    from sadtalker.face.enhancer import usable_landmarks

    g = golden("h_enhance_flow")
    gfpgan = GFPGANv1Clean.from_state_dict(gfpgan_state(stand_in("GFPGANv1.4.pth.json"), "g"), "g").eval()
    parsenet = ParseNet.from_state_dict(stand_in("parsing_parsenet.pth.json"), "parse").eval()
    enhancer = Enhancer(gfpgan, parsenet, None, noise="stored")
    faces = [Face(tuple(r[:4]), float(r[4]), r[5:15].reshape(5, 2)) for r in g["injected_dets"]]
    landmarks = usable_landmarks(faces)  # the third face's eyes are 2.2 px apart: skipped
    np.testing.assert_array_equal(np.stack(landmarks), g["landmarks5_used"])
    result = enhancer.run(np.ascontiguousarray(g["frame_rgb"][None, ..., ::-1]), [landmarks])[0]
    diff = np.abs(result.out_bgr[..., ::-1].astype(int) - g["out_rgb"])
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.001


def _rgb_tensor(bgr: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) BGR uint8 -> (N,3,H,W) RGB float 0..255, the device path's layout."""
    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(0, 3, 1, 2).float()


def test_device_alignment_and_paste_back_match_the_golden(golden):
    """The device twins (docs/performance.md tolerances): crops and the blended frame within 1 level."""
    from sadtalker.face import paste_device

    g = golden("g_pasteback")
    frame = _rgb_tensor(g["frame_bgr"][None])
    crops = paste_device.warp_faces(frame, [0, 0, 0], g["affine"])
    diff = np.abs(crops.numpy() - _rgb_tensor(g["cropped_bgr"]).numpy())
    assert diff.max() <= 1 and (diff > 0).mean() <= 1e-4
    masks = paste_device.parse_masks(torch.from_numpy(g["parse_labels"]))
    np.testing.assert_allclose(masks[0, 0].numpy(), parse_mask(g["parse_labels"][0]), atol=1e-10)
    inverses = np.stack([inverse_affine(a, 2) for a in g["affine"]])
    out = paste_device.paste_faces(frame, [0, 0, 0], _rgb_tensor(g["restored_bgr"]), inverses, masks, 2)
    diff = np.abs(out.numpy() - _rgb_tensor(g["out_parse"][None]).numpy())
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.02


def test_device_detection_decodes_like_the_host(small_face_dir, face_rgb):
    """RetinaFace batched on the device: the same rows as the per-image host decoding (stand-in weights,
    whose saturated scores on these crops leave hundreds of candidates to order and suppress)."""
    from sadtalker.face.detection import detect_faces, detect_faces_device
    from sadtalker.face.weights import detector_state, load_network

    net = load_network(RetinaFace, small_face_dir / "gfpgan" / "weights" / "detection_Resnet50_Final.pth",
                       detector_state, CPU)
    frames_bgr = np.ascontiguousarray(np.stack([face_rgb[:96, 100:196], face_rgb[100:196, 150:246]])[..., ::-1])
    threshold = 0.97
    host = detect_faces(net, frames_bgr, threshold)
    device = detect_faces_device(net, torch.from_numpy(frames_bgr).permute(0, 3, 1, 2).float(), threshold)
    assert sum(len(rows) for rows in host) > 2
    for h, d in zip(host, device, strict=True):
        np.testing.assert_array_equal(d, h)
