"""render_heatmaps: hand-derived golden maps per style, parity of both backends with the
reference, dropped joints, GPU tiles, the custom op, and bad input."""
import math

import pytest
import torch

import fasthg
from harness import assert_close
from heatmap_cases import BACKENDS, emulating, f32, gaussian_on, run

H, W = 12, 16  # non-square: x runs along W, y along H
ALL = ("reference", *BACKENDS)

# (x, y) -> (centre, xs, ys) or None (dropped), each derived by hand from the project's code
# (fasthg/reference/heatmaps.py cites it); ranges are the pixels of the pasted patch on the map.
GOLDEN = {
    ("princeton", 1.0, (H, W)): [
        # c = (int x, int y); patch [c - 4, c + 5) per axis, clipped to the map
        ((5.7, 3.2), ((5, 3), range(1, 10), range(0, 8))),
        ((0.5, 5.0), ((0, 5), range(0, 5), range(1, 10))),      # on the left border
        ((0.0, 5.0), None),                                       # x <= 0 is dropped
        ((15.99, 11.9), ((15, 11), range(11, 16), range(7, 12))),  # bottom-right pixel
        ((16.0, 5.0), None),                                      # just past the right border
        ((7.0, -0.5), ((7, 0), range(3, 12), range(0, 5))),       # int(-0.5) = 0: kept
        ((7.0, -1.0), None),                                      # just past the top
        ((7.0, 12.0), None),                                      # just past the bottom
    ],
    ("princeton", 2.0, (H, W)): [
        ((8.3, 6.6), ((8, 6), range(1, 16), range(0, 12))),      # patch 15 wide: [c - 7, c + 8)
    ],
    ("princeton", 3.0, (20, 24)): [
        ((10.5, 7.5), ((10, 7), range(0, 21), range(0, 18))),    # [c - 10, c + 11)
    ],
    ("bearpaw", 1.0, (H, W)): [
        # ul = int(p - 3), br = int(p + 4), centre ul + 3, patch [ul, br)
        ((5.7, 3.2), ((5, 3), range(2, 9), range(0, 7))),
        ((1.5, 5.0), ((2, 5), range(0, 5), range(2, 9))),        # ul = int(-1.5) = -1: centre rounded up
        ((-2.5, 5.0), ((-2, 5), range(0, 1), range(2, 9))),      # ul = -5, br = 1: one column left
        ((-3.5, 5.0), ((-3, 5), range(0), range(2, 9))),         # br = int(0.5) = 0: kept, nothing drawn
        ((-5.0, 5.0), None),                                      # br = -1 < 0: dropped
        ((18.9, 5.0), ((18, 5), range(15, 16), range(2, 9))),    # ul = 15 < 16: last column
        ((19.0, 5.0), None),                                      # ul = 16: dropped
    ],
    ("bearpaw", 2.0, (H, W)): [
        ((8.3, 6.6), ((8, 6), range(2, 15), range(0, 12))),      # ul = (2, 0), br = (15, 13)
    ],
    ("mmpose", 2.0, (H, W)): [
        # mu = int(p + 0.5); ul = mu - 6, br = mu + 7, centre mu
        ((5.5, 3.4), ((6, 3), range(0, 13), range(0, 10))),
        ((-0.6, 5.0), ((0, 5), range(0, 7), range(0, 12))),      # int(-0.1) = 0
        ((21.4, 5.0), ((21, 5), range(15, 16), range(0, 12))),   # mu = 21: ul = 15, last column
        ((21.5, 5.0), None),                                      # mu = 22: ul = 16, dropped
    ],
    ("mmpose", 1.0, (H, W)): [
        ((5.5, 3.4), ((6, 3), range(3, 10), range(0, 7))),
    ],
    ("mmpose", 3.0, (20, 24)): [
        ((10.5, 7.49), ((11, 7), range(2, 21), range(0, 17))),   # ul = (2, -2), br = (21, 17)
    ],
    ("unbiased", 1.0, (H, W)): [
        # the exact Gaussian on the whole map; dropped when x - 3 >= W or x + 4 < 0
        ((4.3, 2.8), ((f32(4.3), f32(2.8)), range(W), range(H))),
        ((18.9, 5.0), ((f32(18.9), 5.0), range(W), range(H))),   # 15.9 < 16: kept, its tail
        ((19.0, 5.0), None),
        ((-4.0, 5.0), ((-4.0, 5.0), range(W), range(H))),        # x + 4 = 0: kept
        ((-4.1, 5.0), None),
    ],
    ("unbiased", 2.0, (H, W)): [
        ((7.25, 6.5), ((7.25, 6.5), range(W), range(H))),
    ],
}


def assert_maps(got, expected, exact_zeros, name="heatmaps"):
    """Within a few float32 ulps of 1 everywhere; zero exactly where the expected map is (patch styles)."""
    assert got.dtype == torch.float32, f"{name}: dtype {got.dtype}"
    assert_close(got, expected, name, rtol=0, atol=3e-7, scale=1.0)
    if exact_zeros:
        differ = (got == 0) != (expected == 0)
        assert not differ.any(), f"{name}: zero pattern differs at {differ.nonzero()[:5].tolist()}"


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("style, sigma, size", list(GOLDEN), ids=lambda v: str(v))
def test_golden_maps(backend, style, sigma, size):
    cases = GOLDEN[(style, sigma, size)]
    keypoints = torch.tensor([[point for point, _ in cases]], dtype=torch.float32)
    expected = torch.stack([gaussian_on(size, *(want or (None, (), ())), sigma) for _, want in cases])[None]
    got = run(backend, fasthg.ops.render_heatmaps, keypoints, None, size, sigma, style)
    assert_maps(got, expected, exact_zeros=style != "unbiased")


def test_golden_peak_values():
    """A few values by hand: the peak is 1, a side neighbour exp(-1/2), a diagonal one exp(-1)."""
    maps = fasthg.ops.render_heatmaps(torch.tensor([[[5.7, 3.2]]]), size=(H, W))
    assert maps[0, 0, 3, 5] == 1.0
    assert abs(float(maps[0, 0, 3, 6]) - 0.6065306597126334) < 1e-7
    assert abs(float(maps[0, 0, 4, 6]) - 0.36787944117144233) < 1e-7
    assert maps[0, 0, 3, 10] == 0.0 and maps[0, 0, 3, 9] > 0.0  # the patch ends 4 pixels right


@pytest.mark.parametrize("backend", ALL)
def test_overlapping_joints_do_not_interact(backend):
    # Two joints one pixel apart (patches overlap) and a copy in a second sample: each channel
    # holds its own Gaussian only.
    points = [(5.2, 4.9), (6.2, 4.9)]
    keypoints = torch.tensor([points, points[::-1]], dtype=torch.float32)
    got = run(backend, fasthg.ops.render_heatmaps, keypoints, None, (H, W), 1.0, "princeton")
    first = gaussian_on((H, W), (5, 4), range(1, 10), range(0, 9), 1.0)
    second = gaussian_on((H, W), (6, 4), range(2, 11), range(0, 9), 1.0)
    assert_maps(got, torch.stack([torch.stack([first, second]), torch.stack([second, first])]), exact_zeros=True)


def _random_keypoints(batch, joints, size, generator):
    height, width = size
    keypoints = torch.rand(batch, joints, 2, generator=generator) * torch.tensor([width + 8.0, height + 8.0]) - 4.0
    keypoints[0, 0] = torch.tensor([float("nan"), 3.0])
    keypoints[-1, 1] = torch.tensor([2.0, float("inf")])
    keypoints[-1, 2] = torch.tensor([float("-inf"), float("nan")])
    keypoints[0, 3] = torch.tensor([width / 2 + 0.25, height / 2 - 0.75])
    return keypoints


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("style", fasthg.reference.heatmaps.STYLES)
@pytest.mark.parametrize("sigma, size", [(1.0, (9, 13)), (1.5, (16, 16)), (2.0, (7, 20)), (3.0, (24, 18))],
                         ids=str)
def test_matches_reference(backend, style, sigma, size):
    generator = torch.Generator().manual_seed(1)
    keypoints = _random_keypoints(3, 6, size, generator)
    visible = torch.rand(3, 6, generator=generator)  # numbers: visible above 0.5
    visible[0, 3] = 1.0
    expected = fasthg.reference.render_heatmaps(keypoints, visible, size, sigma, style)
    got = run(backend, fasthg.ops.render_heatmaps, keypoints, visible, size, sigma, style)
    assert_maps(got, expected, exact_zeros=style != "unbiased")
    dropped = (visible <= 0.5) | ~keypoints.isfinite().all(-1)
    assert (got[dropped] == 0).all()
    assert got[0, 3].max() > 0.5  # the visible central joint is drawn


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_joints_leave_the_others_untouched(backend):
    keypoints = torch.tensor([[[4.5, 3.5], [6.0, 2.0], [7.5, 5.5]]])
    clean = run(backend, fasthg.ops.render_heatmaps, keypoints, None, (H, W), 1.0, "mmpose")
    broken = keypoints.clone()
    broken[0, 1] = torch.tensor([float("nan"), float("inf")])
    got = run(backend, fasthg.ops.render_heatmaps, broken, torch.tensor([[True, True, True]]), (H, W), 1.0, "mmpose")
    assert torch.equal(got[0, [0, 2]], clean[0, [0, 2]])
    assert (got[0, 1] == 0).all()
    hidden = run(backend, fasthg.ops.render_heatmaps, keypoints, torch.tensor([[True, False, True]]), (H, W), 1.0, "mmpose")
    assert torch.equal(hidden[0, [0, 2]], clean[0, [0, 2]]) and (hidden[0, 1] == 0).all()


@pytest.mark.parametrize("style", fasthg.reference.heatmaps.STYLES)
def test_gpu_tiles_cover_large_maps(triton_backend, style):
    # 40 x 40 = 1600 pixels: two 1024-pixel programs per joint with the GPU configuration.
    generator = torch.Generator().manual_seed(2)
    keypoints = _random_keypoints(2, 4, (40, 40), generator)
    keypoints[1, 0] = torch.tensor([31.5, 30.25])  # in the second pixel block
    with emulating(80):
        got = fasthg.ops.render_heatmaps(keypoints, None, (40, 40), 2.0, style)
    assert_maps(got, fasthg.reference.render_heatmaps(keypoints, None, (40, 40), 2.0, style), style != "unbiased")


def test_sigma_is_rounded_to_float32_on_both_backends():
    keypoints = torch.tensor([[[5.3, 4.1]]])
    sigma = 1.1  # not a float32: both backends use float32(1.1)
    with fasthg.backend("torch"):
        torch_maps = fasthg.ops.render_heatmaps(keypoints, None, (H, W), sigma, "bearpaw")
    with fasthg.backend("triton"):
        triton_maps = fasthg.ops.render_heatmaps(keypoints, None, (H, W), sigma, "bearpaw")
    assert_maps(triton_maps, torch_maps.double(), exact_zeros=True)
    assert_maps(triton_maps, fasthg.reference.render_heatmaps(keypoints, None, (H, W), f32(sigma), "bearpaw"), True)


def test_visible_none_means_all_visible():
    keypoints = torch.tensor([[[4.5, 3.5], [9.0, 2.0]]])
    assert torch.equal(fasthg.ops.render_heatmaps(keypoints, None, (H, W)),
                       fasthg.ops.render_heatmaps(keypoints, torch.ones(1, 2, dtype=torch.bool), (H, W)))


def test_meta_tensors_give_shapes():
    out = fasthg.ops.render_heatmaps(torch.empty(16, 16, 2, device="meta"), None, (64, 48))
    assert out.shape == (16, 16, 64, 48) and out.dtype == torch.float32 and out.device.type == "meta"


def test_opcheck(triton_backend):
    keypoints = torch.tensor([[[4.5, 3.5], [9.0, 2.0]]])
    visible = torch.tensor([[True, False]])
    torch.library.opcheck(torch.ops.fasthg.render_heatmaps.default, (keypoints, visible, 6, 7, 1.0, "princeton"))


KEYPOINTS = torch.zeros(2, 3, 2)


@pytest.mark.parametrize("args, error, match", [
    ((torch.zeros(2, 3, 3),), ValueError, r"keypoints: expected shape \(B, K, 2\)"),
    ((torch.zeros(3, 2),), ValueError, "keypoints: expected a 3-D tensor"),
    ((torch.zeros(2, 3, 2, dtype=torch.int64),), TypeError, "keypoints: expected dtype"),
    (([[1.0, 2.0]],), TypeError, "keypoints: expected a torch.Tensor"),
    ((torch.zeros(0, 3, 2),), ValueError, "keypoints: expected a non-empty tensor"),
    ((KEYPOINTS, torch.ones(2, 4, dtype=torch.bool)), ValueError, r"visible: expected shape \(B, K\) = \(2, 3\)"),
    ((KEYPOINTS, torch.ones(2, 3, 1)), ValueError, "visible: expected a 2-D tensor"),
    ((KEYPOINTS, torch.ones(2, 3, dtype=torch.complex64)), TypeError, "visible: expected dtype"),
    ((KEYPOINTS, torch.ones(2, 3, device="meta")), ValueError, "visible: expected a tensor on cpu"),
    ((KEYPOINTS, None, (64,)), TypeError, r"size: expected a pair \(H, W\)"),
    ((KEYPOINTS, None, (64.0, 64)), TypeError, r"size: expected a pair \(H, W\) of ints"),
    ((KEYPOINTS, None, (0, 64)), ValueError, "size: expected H and W >= 1"),
    ((KEYPOINTS, None, (64, 64), 0.0), ValueError, "sigma: expected a finite number > 0"),
    ((KEYPOINTS, None, (64, 64), -1.0), ValueError, "sigma: expected a finite number > 0"),
    ((KEYPOINTS, None, (64, 64), math.nan), ValueError, "sigma: expected a finite number > 0"),
    ((KEYPOINTS, None, (64, 64), "1"), TypeError, "sigma: expected a number"),
    ((KEYPOINTS, None, (64, 64), 1.0, "gaussian"), ValueError, "style: expected one of 'princeton', 'bearpaw'"),
])
def test_bad_input(triton_backend, args, error, match):
    with pytest.raises(error, match=match):
        fasthg.ops.render_heatmaps(*args)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1)], ids=str)
def test_degenerate_maps(backend, size):
    keypoints = torch.tensor([[[0.5, 0.5], [0.2, 3.7], [2.0, 0.9]]])
    for style in fasthg.reference.heatmaps.STYLES:
        got = run(backend, fasthg.ops.render_heatmaps, keypoints, None, size, 1.0, style)
        assert_maps(got, fasthg.reference.render_heatmaps(keypoints, None, size, 1.0, style), style != "unbiased", style)
