"""Synthetic non-uniform motion blur with its true per-pixel blur extent.

Made the way the GoPro set was made: render sub-frames of a moving scene and average them in
linear light (sRGB -> linear with `gamma`, average, back). The scene is the sharp image seen
by a shaking camera (smooth random path + small in-plane rotation + small zoom, about a random
centre) with 0..k foreground layers (blobs cut from the image itself) that move on their own
paths on top of the camera motion, so the blur varies across the image. The motion is centred
on the middle sub-frame, which is the identity: the returned `sharp` is the input, as GoPro's
sharp frame is the middle frame of the burst. Mild Gaussian + signal-dependent noise follows.

All randomness comes from the `rng` passed in: the same seed gives the same sample.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from scipy.special import ndtri

# Trajectories are drawn on this many time samples in [0, 1] (odd, so t = 0.5 is a sample),
# then sampled at the sub-frame times.
_FINE_SAMPLES = 257


@dataclass(frozen=True)
class BlurSettings:
    """Parameters of `synthesize_blur`; every range is sampled afresh for each image.

    Lengths are in pixels of the image passed in. Defaults match real blur in GoPro-like
    1280x720 frames and hand-held photos: camera paths log-uniform in 3..45 px (median ~12 px),
    smooth and curved, sometimes almost straight; a few near-sharp samples.
    """

    sub_frames: int = 31
    """Most sub-frames rendered (odd). Fewer are used for short motions: just enough that no
    point moves more than `max_step_px` between consecutive sub-frames (1 when nothing moves)."""
    max_step_px: float = 1.0
    """Largest wanted displacement between consecutive sub-frames (smaller = smoother, slower)."""
    camera_path_px: tuple[float, float] = (3.0, 45.0)
    """(min, max) length of the camera-shake translation path, sampled log-uniformly
    (uniformly if min is 0)."""
    path_wobble: float = 1.5
    """Largest random deviation of the path's velocity from its mean velocity (relative);
    each path draws its own wobble in [0, path_wobble], skewed to small: 0 = straight pans."""
    max_rotation_deg: float = 1.5
    """Largest in-plane camera rotation over the exposure, about a random centre."""
    max_zoom: float = 0.03
    """Largest relative scale change over the exposure (camera moving forward or back)."""
    still_probability: float = 0.1
    """Chance that the camera does not move at all (then only the layers move, if any)."""
    max_layers: int = 3
    """Foreground layers per image: uniform in 0..max_layers."""
    layer_path_px: tuple[float, float] = (2.0, 40.0)
    """(min, max) length of a layer's own path (on top of the camera's), log-uniform."""
    layer_radius: tuple[float, float] = (0.08, 0.3)
    """(min, max) mean radius of a layer blob, as a fraction of the shorter image side."""
    layer_rotation_deg: float = 5.0
    """Largest rotation of a layer about its own centre over the exposure."""
    noise_std: tuple[float, float] = (0.002, 0.012)
    """(min, max) noise standard deviation at mid-grey; the std at value x is
    std * sqrt(0.25 + 1.5 x) (read noise + shot noise), added in sRGB after blurring."""
    gamma: float = 2.2
    """sRGB -> linear exponent for averaging sub-frames (1.0 averages the sRGB values)."""
    srgb_average_probability: float = 0.0
    """Chance that a sample averages its sub-frames in sRGB (gamma 1, as GoPro's `blur` frames
    were made) instead of with `gamma` (as `blur_gamma` and real cameras). Linear-light
    averaging brightens the blurred image (by about 0.013 on average with the defaults), which a
    model can learn as a cue; mixing both removes it. Drawn only when positive, so 0 leaves
    every seeded sample as it was."""

    def __post_init__(self) -> None:
        if self.sub_frames < 1 or self.sub_frames % 2 == 0:
            raise ValueError(f"sub_frames must be a positive odd number, got {self.sub_frames}")
        if self.max_step_px <= 0:
            raise ValueError(f"max_step_px must be positive, got {self.max_step_px}")
        for name in ("camera_path_px", "layer_path_px", "layer_radius", "noise_std"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be (min, max) with 0 <= min <= max, got {low, high}")
        if self.layer_radius[0] <= 0 and self.max_layers > 0:
            raise ValueError("layer_radius must be positive when layers are used")
        if not 0 <= self.still_probability <= 1:
            raise ValueError(f"still_probability must be in [0, 1], got {self.still_probability}")
        if self.max_layers < 0:
            raise ValueError(f"max_layers must be >= 0, got {self.max_layers}")
        if min(self.path_wobble, self.max_rotation_deg, self.max_zoom) < 0:
            raise ValueError("path_wobble, max_rotation_deg and max_zoom must be >= 0")
        if self.layer_rotation_deg < 0 or self.gamma <= 0:
            raise ValueError("layer_rotation_deg must be >= 0 and gamma > 0")
        if not 0 <= self.srgb_average_probability <= 1:
            raise ValueError(
                f"srgb_average_probability must be in [0, 1], got {self.srgb_average_probability}"
            )

    @classmethod
    def calibrated(cls) -> BlurSettings:
        """Blur matched to real GoPro pairs by `train/blur_stats.py` (model card, section "Blur
        matched to real pairs").

        Against the defaults: no camera path longer than 28 px (the real pairs' best-fitting
        motion lengths stop at about 22-32 px, the defaults' reach 64), at most 13 sub-frames
        (GoPro averaged 7 to 13 frames of a 240 fps camera; fewer warps to render) and layer
        paths to 28 px. The noise stays: with less of it (0..0.006) the gradient energy ratio
        moved away from the real pairs' (median 0.16 against their 0.24; 0.18 with this noise).
        """
        return cls(sub_frames=13, camera_path_px=(6.0, 28.0), layer_path_px=(2.0, 28.0))

    @property
    def margin_px(self) -> int:
        """Border to synthesize beyond a crop so that reflected borders stay out of it."""
        return int(math.ceil(0.55 * self.camera_path_px[1])) + 8


class BlurSample(NamedTuple):
    """One synthetic pair; all arrays float32, images (H, W, 3) in [0, 1]."""

    blurred: np.ndarray
    sharp: np.ndarray
    blur_extent: np.ndarray
    """(H, W): pixels travelled during the exposure by the scene point seen at that pixel in
    the sharp frame (sum over consecutive sub-frames of its displacement); 0 where still."""


@dataclass(frozen=True)
class _Motion:
    """A smooth motion p -> s(t) R(a(t)) (p - centre) + centre + path(t), t in [0, 1]
    (translation, rotation and scale); the identity at t = 0.5 (the sharp frame)."""

    path: np.ndarray  # (_FINE_SAMPLES, 2) xy offsets, path[mid] == 0
    centre: np.ndarray  # (2,) xy
    angle_span: float  # radians over the exposure
    angle_bend: float  # curvature of a(t), relative
    log_zoom_span: float

    def transforms(self, times: np.ndarray) -> np.ndarray:
        """(T,) times in [0, 1] -> (T, 2, 3) affine maps from sharp-frame to sub-frame pixels."""
        fine = np.linspace(0.0, 1.0, _FINE_SAMPLES)
        offset = np.stack([np.interp(times, fine, self.path[:, k]) for k in (0, 1)], axis=-1)
        u = times - 0.5
        # Monotonic for |bend| < 0.5; a(0.5) = 0 and a(1) - a(0) = angle_span.
        angle = self.angle_span * (u + 2.0 * self.angle_bend * u * u)
        scale = np.exp(self.log_zoom_span * u)
        cos, sin = scale * np.cos(angle), scale * np.sin(angle)
        linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (T,2,2)
        shift = self.centre - linear @ self.centre + offset  # (T, 2)
        return np.concatenate([linear, shift[..., None]], axis=-1)


def _still_motion() -> _Motion:
    return _Motion(np.zeros((_FINE_SAMPLES, 2)), np.zeros(2), 0.0, 0.0, 0.0)


def _sample_length(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if high <= 0:
        return 0.0
    if low <= 0:
        return float(rng.uniform(low, high))
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _smooth_path(rng: np.random.Generator, length: float, max_wobble: float) -> np.ndarray:
    """(_FINE_SAMPLES, 2) smooth random path of arc length `length`, zero at t = 0.5.

    The velocity is a mean direction plus random deviations at a few knots, interpolated
    linearly: wobble 0 gives a straight line, larger wobble curved or hooked paths."""
    knots = int(rng.integers(3, 8))
    wobble = max_wobble * float(rng.random()) ** 1.5
    heading = rng.uniform(0.0, 2.0 * math.pi)
    velocity_knots = np.array([math.cos(heading), math.sin(heading)]) + wobble * (
        rng.standard_normal((knots, 2))
    )
    fine = np.linspace(0.0, 1.0, _FINE_SAMPLES)
    knot_times = np.linspace(0.0, 1.0, knots)
    velocity = np.stack([np.interp(fine, knot_times, velocity_knots[:, k]) for k in (0, 1)], -1)
    steps = 0.5 * (velocity[1:] + velocity[:-1])  # trapezoid integration, (F-1, 2)
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    arc = float(np.linalg.norm(steps, axis=-1).sum())
    if length <= 0 or arc < 1e-12:
        return np.zeros((_FINE_SAMPLES, 2))
    path *= length / arc
    return path - path[_FINE_SAMPLES // 2]


def _camera_motion(
    rng: np.random.Generator, height: int, width: int, settings: BlurSettings
) -> _Motion:
    if rng.random() < settings.still_probability:
        return _still_motion()
    path = _smooth_path(rng, _sample_length(rng, settings.camera_path_px), settings.path_wobble)
    # The rotation / zoom centre may lie outside the frame (a rotation far away is mostly a
    # translation; one inside the frame makes the blur vary strongly).
    centre = np.array([rng.uniform(-0.5, 1.5) * width, rng.uniform(-0.5, 1.5) * height])
    angle_span = math.radians(rng.uniform(-1.0, 1.0) * settings.max_rotation_deg)
    angle_bend = float(rng.uniform(-0.5, 0.5))
    log_zoom_span = float(rng.uniform(-1.0, 1.0) * math.log1p(settings.max_zoom))
    return _Motion(path, centre, angle_span, angle_bend, log_zoom_span)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(T, 2, 3) affine maps: outer o inner."""
    linear = outer[:, :, :2] @ inner[:, :, :2]
    shift = (outer[:, :, :2] @ inner[:, :, 2:])[..., 0] + outer[:, :, 2]
    return np.concatenate([linear, shift[..., None]], axis=-1)


def _corner_path_length(transforms: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Longest path, over the corners of box (x0, y0, x1, y1), under (T, 2, 3) transforms.

    The path length of a point is convex in the point, so its maximum over a box is at a corner.
    """
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]])
    positions = transforms @ corners.T  # (T, 2, 4)
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum(axis=0).max())


# The path-length map is evaluated exactly every _EXTENT_STRIDE pixels and interpolated
# bilinearly in between: it is smooth (a sum of norms of affine fields), so the error is far
# below 0.1 px, and it costs 1/16 of the full-resolution evaluation.
_EXTENT_STRIDE = 4


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(size: int, stride: int) -> np.ndarray:
    """(size, ceil((size - 1) / stride) + 1) float32 linear-interpolation weights from grid
    points at 0, stride, 2 stride, ... to every pixel 0..size-1."""
    points = (size - 1 + stride - 1) // stride + 1
    position = np.arange(size) / stride
    low = np.minimum(np.floor(position).astype(int), points - 1)
    frac = position - low
    weights = np.zeros((size, points), np.float32)
    weights[np.arange(size), low] = 1.0 - frac
    high = np.minimum(low + 1, points - 1)
    np.add.at(weights, (np.arange(size), high), frac)
    return weights


def _path_length_map(transforms: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(y1 - y0, x1 - x0) float32: sum over t of |M_{t+1} p - M_t p| at the box's pixels p."""
    x0, y0, x1, y1 = box
    deltas = np.diff(transforms, axis=0)  # (T-1, 2, 3)
    if len(deltas) == 0:
        return np.zeros((y1 - y0, x1 - x0), np.float32)
    if np.abs(deltas[:, :, :2]).max() < 1e-12:  # pure translation: the same everywhere
        return np.full(
            (y1 - y0, x1 - x0), np.linalg.norm(deltas[:, :, 2], axis=-1).sum(), np.float32
        )
    columns = _interpolation_matrix(x1 - x0, _EXTENT_STRIDE)  # (w, gx)
    rows = _interpolation_matrix(y1 - y0, _EXTENT_STRIDE)  # (h, gy)
    xs = x0 + _EXTENT_STRIDE * np.arange(columns.shape[1], dtype=np.float64)
    ys = y0 + _EXTENT_STRIDE * np.arange(rows.shape[1], dtype=np.float64)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = np.stack([grid_x.ravel(), grid_y.ravel(), np.ones(grid_x.size)], axis=-1)  # (P, 3)
    moves = points @ deltas.reshape(-1, 3).T  # (P, 2 (T-1)): x, y moves per step
    coarse = np.hypot(moves[:, 0::2], moves[:, 1::2]).sum(axis=1)  # (P,)
    coarse = coarse.reshape(grid_x.shape).astype(np.float32)  # (gy, gx)
    return rows @ coarse @ columns.T


@dataclass(frozen=True)
class _Layer:
    """A foreground blob: its alpha in a box of the sharp frame and its own motion."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in the sharp frame
    alpha: np.ndarray  # (y1 - y0, x1 - x0) float32 in [0, 1]; exactly 1 inside
    motion: _Motion


def _blob_polygon(rng: np.random.Generator, radius: float, centre: np.ndarray) -> np.ndarray:
    """(V, 2) xy vertices of a smooth random star-shaped blob (low harmonics, stretched)."""
    vertices = int(rng.integers(24, 49))
    angles = np.linspace(0.0, 2.0 * math.pi, vertices, endpoint=False)
    radial = np.ones(vertices)
    for harmonic in range(2, 6):
        radial += rng.uniform(-0.3, 0.3) / harmonic * np.cos(harmonic * angles + rng.uniform(0, 7))
    stretch = math.exp(rng.uniform(-0.5, 0.5))
    turn = rng.uniform(0.0, math.pi)
    x = radius * radial * np.cos(angles) * stretch
    y = radius * radial * np.sin(angles) / stretch
    x, y = x * math.cos(turn) - y * math.sin(turn), x * math.sin(turn) + y * math.cos(turn)
    return np.stack([x, y], axis=-1) + centre


def _sample_layer(
    rng: np.random.Generator, height: int, width: int, settings: BlurSettings
) -> _Layer | None:
    radius = rng.uniform(*settings.layer_radius) * min(height, width)
    centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
    polygon = _blob_polygon(rng, radius, centre)
    edge_sigma = rng.uniform(0.4, 1.2)
    path = _smooth_path(rng, _sample_length(rng, settings.layer_path_px), settings.path_wobble)
    angle_span = math.radians(rng.uniform(-1.0, 1.0) * settings.layer_rotation_deg)
    motion = _Motion(path, centre, angle_span, float(rng.uniform(-0.5, 0.5)), 0.0)

    # The blob's box in the sharp frame, with room for its soft edge.
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 4
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 5
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    shift = 4  # sub-pixel vertex precision for fillPoly
    vertices = np.round((polygon - [x0, y0]) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [vertices], 255, cv2.LINE_AA, shift)
    # Soft-ish edge; on uint8 the interior stays exactly 255 so alpha is exactly 1 there.
    mask = cv2.GaussianBlur(mask, (0, 0), edge_sigma)
    if not mask.any():
        return None
    return _Layer((int(x0), int(y0), int(x1), int(y1)), mask.astype(np.float32) / 255.0, motion)


def _check_image(sharp: np.ndarray) -> np.ndarray:
    if not isinstance(sharp, np.ndarray) or sharp.ndim != 3 or sharp.shape[-1] != 3:
        shape = getattr(sharp, "shape", None)
        raise ValueError(f"expected an (H, W, 3) RGB array in [0, 1], got shape {shape}")
    if not np.issubdtype(sharp.dtype, np.floating):
        raise ValueError(f"expected a float image in [0, 1], got dtype {sharp.dtype}")
    if min(sharp.shape[:2]) < 8:
        raise ValueError(f"the image must be at least 8x8 pixels, got {sharp.shape[:2]}")
    return np.ascontiguousarray(np.clip(sharp, 0.0, 1.0), dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """(65536,) float32 standard-normal quantiles at (k + 0.5) / 65536."""
    return ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)


def _standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard-normal float32 noise by inverse-CDF lookup (5x faster than rng.standard_normal;
    tails cut at 4.3 sigma, which sensor noise does not miss)."""
    return np.take(_normal_quantiles(), rng.integers(0, 65536, shape, dtype=np.uint16))


def _fill_holes(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Copy of the (H, W, C) image with `hole` ((H, W) bool) filled by a smooth continuation
    of the colours around it (push-pull: average known pixels down a pyramid, blend back up)."""
    rows, columns = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
    if len(rows) == 0:
        return image
    height, width = hole.shape
    y0, y1 = max(0, rows[0] - 16), min(height, rows[-1] + 17)
    x0, x1 = max(0, columns[0] - 16), min(width, columns[-1] + 17)
    crop_hole = hole[y0:y1, x0:x1]
    known = (~crop_hole).astype(np.float32)
    sums = [image[y0:y1, x0:x1] * known[..., None]]
    weights = [known]
    while min(weights[-1].shape) > 1 and weights[-1].min() <= 0:
        size = (max(1, weights[-1].shape[1] // 2), max(1, weights[-1].shape[0] // 2))
        sums.append(cv2.resize(sums[-1], size, interpolation=cv2.INTER_AREA))
        weights.append(cv2.resize(weights[-1], size, interpolation=cv2.INTER_AREA))
    estimate = sums[-1] / np.maximum(weights[-1], 1e-6)[..., None]
    # Back up the pyramid to level 1; where a level saw enough known pixels, keep its average.
    for level_sums, level_weights in zip(sums[-2:0:-1], weights[-2:0:-1], strict=True):
        size = (level_weights.shape[1], level_weights.shape[0])
        coarse = cv2.resize(estimate, size, interpolation=cv2.INTER_LINEAR)
        coverage = np.minimum(level_weights * 4.0, 1.0)[..., None]
        own = level_sums / np.maximum(level_weights, 1e-6)[..., None]
        estimate = coverage * own + (1.0 - coverage) * coarse
    estimate = cv2.resize(estimate, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    filled = image.copy()
    np.copyto(filled[y0:y1, x0:x1], estimate.reshape(sums[0].shape), where=crop_hole[..., None])
    return filled


def _warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    """Render `image` moved by matrix (source -> destination pixels) into a (h, w) canvas."""
    return cv2.warpAffine(
        image, matrix.astype(np.float64), size, flags=cv2.INTER_LINEAR, borderMode=border
    )


def synthesize_blur(
    sharp: np.ndarray, rng: np.random.Generator, settings: BlurSettings = BlurSettings()
) -> BlurSample:
    """Blur a sharp float RGB (H, W, 3) image in [0, 1] with random non-uniform motion."""
    sharp = _check_image(sharp)
    height, width = sharp.shape[:2]
    gamma = settings.gamma
    if settings.srgb_average_probability > 0 and rng.random() < settings.srgb_average_probability:
        gamma = 1.0
    camera = _camera_motion(rng, height, width, settings)
    layers = []
    for _ in range(int(rng.integers(0, settings.max_layers + 1))):
        layer = _sample_layer(rng, height, width, settings)
        if layer is not None:
            layers.append(layer)

    # Choose the sub-frame count from the longest path any point takes (at box corners).
    fine_times = np.linspace(0.0, 1.0, _FINE_SAMPLES)
    camera_fine = camera.transforms(fine_times)
    longest = _corner_path_length(camera_fine, (0, 0, width - 1, height - 1))
    for layer in layers:
        layer_fine = _compose(camera_fine, layer.motion.transforms(fine_times))
        x0, y0, x1, y1 = layer.box
        longest = max(longest, _corner_path_length(layer_fine, (x0, y0, x1 - 1, y1 - 1)))
    steps = min(settings.sub_frames - 1, 2 * math.ceil(longest / settings.max_step_px / 2))
    times = np.linspace(0.0, 1.0, steps + 1) if steps > 0 else np.array([0.5])
    camera_maps = camera.transforms(times)  # (N, 2, 3), identity at the middle

    # Linear-light RGB with a spare 4th channel (cv2 warps 4 channels faster than 3).
    linear = np.empty((height, width, 4), np.float32)
    linear[..., :3] = cv2.pow(sharp, gamma) if gamma != 1 else sharp
    linear[..., 3] = 0.0
    extent = _path_length_map(camera_maps, (0, 0, width, height))

    background = linear
    layer_sources = []
    if layers:
        # What a moving layer uncovers: a smooth continuation of the background around it,
        # only where a layer is fully opaque in the sharp frame (so the middle sub-frame still
        # equals the input exactly). (A shifted copy of the image would draw random outlines.)
        interior = np.zeros((height, width), bool)
        for layer in layers:
            x0, y0, x1, y1 = layer.box
            interior[y0:y1, x0:x1] |= layer.alpha >= 1.0
        background = _fill_holes(linear, interior)
        covered = np.zeros((height, width), bool)  # interiors of the layers above, top-down
        for layer in reversed(layers):
            x0, y0, x1, y1 = layer.box
            # A layer's own content, except where a layer above hides it: there, what is behind.
            content = np.where(
                covered[y0:y1, x0:x1, None], background[y0:y1, x0:x1], linear[y0:y1, x0:x1]
            )
            # Premultiplied linear RGB, and the transparency (1 - alpha) in the 4th channel.
            premultiplied = content * layer.alpha[..., None]
            premultiplied[..., 3] = 1.0 - layer.alpha
            layer_sources.append(premultiplied)
            covered[y0:y1, x0:x1] |= layer.alpha >= 1.0
        layer_sources.reverse()

    # Per layer: sub-frame maps (camera o own motion), the output box that holds it in every
    # sub-frame, and its extent where it is the visible (alpha >= 0.5) scene point.
    layer_renders = []
    for layer, source in zip(layers, layer_sources, strict=True):
        x0, y0, x1, y1 = layer.box
        maps = _compose(camera_maps, layer.motion.transforms(times))  # (N, 2, 3)
        corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]]).T
        reached = maps @ corners  # (N, 2, 4)
        ox0 = max(0, int(math.floor(reached[:, 0].min())) - 2)
        oy0 = max(0, int(math.floor(reached[:, 1].min())) - 2)
        ox1 = min(width, int(math.ceil(reached[:, 0].max())) + 3)
        oy1 = min(height, int(math.ceil(reached[:, 1].max())) + 3)
        # Source-box pixels -> output-box pixels.
        local = maps.copy()
        local[:, :, 2] += local[:, :, 0] * x0 + local[:, :, 1] * y0
        local[:, 0, 2] -= ox0
        local[:, 1, 2] -= oy0
        layer_renders.append(((ox0, oy0, ox1, oy1), source, local))
        layer_extent = _path_length_map(maps, layer.box)
        region = extent[y0:y1, x0:x1]
        np.copyto(region, layer_extent, where=layer.alpha >= 0.5)

    middle = len(times) // 2
    accumulated = np.zeros((height, width, 4), np.float32)
    for index, matrix in enumerate(camera_maps):
        if index == middle:
            frame = background.copy()
        else:
            frame = _warp(background, matrix, (width, height), cv2.BORDER_REFLECT)
        for (ox0, oy0, ox1, oy1), source, local in layer_renders:
            moved = cv2.warpAffine(
                source,
                local[index],
                (ox1 - ox0, oy1 - oy0),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(0.0, 0.0, 0.0, 1.0),  # outside the box: transparent
            )
            # Over-compositing in place: region = region * (1 - alpha) + premultiplied (the
            # spare 4th channel of the frame collects junk that is never read).
            region = frame[oy0:oy1, ox0:ox1]
            cv2.multiply(region, cv2.merge([moved[..., 3]] * 4), dst=region)
            cv2.add(region, moved, dst=region)
        cv2.add(accumulated, frame, dst=accumulated)
    blurred = accumulated[..., :3] * np.float32(1.0 / len(times))
    np.clip(blurred, 0.0, 1.0, out=blurred)
    if gamma != 1:
        blurred = cv2.pow(blurred, 1.0 / gamma)

    noise_std = rng.uniform(*settings.noise_std)
    if noise_std > 0:
        noise = _standard_normal(rng, blurred.shape)
        noise *= np.sqrt(0.25 + 1.5 * blurred) * np.float32(noise_std)
        blurred += noise
    np.clip(blurred, 0.0, 1.0, out=blurred)
    return BlurSample(blurred, sharp, extent)


def _as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if height < 8 or width < 8:
        raise ValueError(f"crop size must be at least 8x8, got {height}x{width}")
    return int(height), int(width)


def fit_image(image: np.ndarray, height: int, width: int, min_size: tuple[int, int]) -> np.ndarray:
    """Make an image at least (height, width): upscale it (bicubic) if it is smaller than
    `min_size` (h, w), then reflect-pad what is still missing evenly on both sides."""
    h, w = image.shape[:2]
    scale = max(min_size[0] / h, min_size[1] / w)
    if scale > 1:
        new_size = (max(w, math.ceil(w * scale)), max(h, math.ceil(h * scale)))
        image = np.clip(cv2.resize(image, new_size, interpolation=cv2.INTER_CUBIC), 0, 1)
        h, w = image.shape[:2]
    pad_y, pad_x = max(0, height - h), max(0, width - w)
    if pad_y or pad_x:
        image = cv2.copyMakeBorder(
            image,
            pad_y // 2,
            pad_y - pad_y // 2,
            pad_x // 2,
            pad_x - pad_x // 2,
            cv2.BORDER_REFLECT_101,
        )
    return image


def synthesize_crop(
    image: np.ndarray,
    rng: np.random.Generator,
    size: int | tuple[int, int],
    settings: BlurSettings = BlurSettings(),
) -> BlurSample:
    """Blur a random crop of `image` (float RGB in [0, 1]) of `size` (int or (h, w)).

    The blur is synthesized on the crop plus a `settings.margin_px` border, then the centre
    `size` is cut out of all three arrays, so reflected borders stay out of the result. Images
    smaller than the crop are upscaled; smaller than crop + margin, reflect-padded.
    """
    height, width = _as_size(size)
    margin = settings.margin_px
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got {getattr(image, 'shape', None)}")
    image = fit_image(image, height + 2 * margin, width + 2 * margin, (height, width))
    top = int(rng.integers(0, image.shape[0] - height - 2 * margin + 1))
    left = int(rng.integers(0, image.shape[1] - width - 2 * margin + 1))
    patch = image[top : top + height + 2 * margin, left : left + width + 2 * margin]
    sample = synthesize_blur(patch, rng, settings)
    window = (slice(margin, margin + height), slice(margin, margin + width))
    return BlurSample(*(np.ascontiguousarray(array[window]) for array in sample))
