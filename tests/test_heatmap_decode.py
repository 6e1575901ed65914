"""decode_heatmaps per convention (hand-computed cases: ties, borders, non-positive peaks),
parity with the reference, GPU tiles; flip merging; mapping back to image coordinates."""
import pytest
import torch

import fasthg
from fasthg.joints import FLIP_PAIRS, JOINT_NAMES
from harness import assert_close
from heatmap_cases import BACKENDS, emulating, run

ALL = ("reference", *BACKENDS)


def _hand_maps():
    """Eight 6x7 maps (H=6, W=7), each set pixel given as (col, row): value."""
    cases = [
        {(3, 2): 1.0, (4, 2): 0.5, (2, 2): 0.2, (3, 3): 0.1, (3, 1): 0.3},  # interior: right and up higher
        {(3, 2): 1.0, (4, 2): 0.5, (2, 2): 0.5, (3, 3): 0.1, (3, 1): 0.3},  # left == right
        {(0, 2): 1.0, (1, 2): 0.5, (0, 1): 0.2, (0, 3): 0.4},               # left border
        {(1, 2): 1.0, (0, 2): 0.1, (2, 2): 0.3, (1, 1): 0.4, (1, 3): 0.2},  # col 1: interior for bearpaw only
        {(6, 5): 1.0, (5, 5): 0.5, (6, 4): 0.7},                            # bottom-right corner
        {},                                                                  # all zero
        "negative",                                                          # all -1 but (4, 3) = -0.1
        {(5, 1): 1.0, (0, 2): 1.0},                                          # two maxima: the first row-major
    ]
    maps = torch.zeros(1, len(cases), 6, 7)
    for k, case in enumerate(cases):
        if case == "negative":
            maps[0, k] = -1.0
            case = {(4, 3): -0.1}
        for (col, row), value in case.items():
            maps[0, k, row, col] = value
    return maps


EXPECTED = {  # (x, y) per case, worked out by hand from each convention's rule
    "princeton": [(3.75, 2.25), (3.25, 2.25), (0.25, 2.75), (1.75, 2.25), (6.75, 5.75), (0.0, 0.0), (4.0, 3.0),
                  (5.25, 1.25)],
    "bearpaw": [(3.75, 2.25), (3.5, 2.25), (0.5, 2.5), (1.75, 2.25), (6.5, 5.5), (-0.5, -0.5), (-0.5, -0.5),
                (5.5, 1.5)],
    "mmpose": [(3.25, 1.75), (3.0, 1.75), (0.0, 2.0), (1.0, 2.0), (6.0, 5.0), (-1.0, -1.0), (-1.0, -1.0), (5.0, 1.0)],
}
PEAKS = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, -0.1, 1.0]


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("style", list(EXPECTED))
def test_hand_computed_cases(backend, style):
    coords, peaks = run(backend, fasthg.ops.decode_heatmaps, _hand_maps(), style)
    assert coords.tolist() == [[list(xy) for xy in EXPECTED[style]]]
    assert_close(peaks.float(), torch.tensor([PEAKS]), "peaks", rtol=0, atol=0)


def _random_maps(dtype, generator):
    maps = torch.randint(0, 4, (3, 5, 6, 9), generator=generator).to(dtype)  # small integers: many ties
    maps[0, 0] = -torch.rand(6, 9, generator=generator).to(dtype)            # negative peak
    maps[0, 1, 2, 4] = float("nan")                                           # a NaN is the maximum
    maps[1, 2] = 0
    maps[1, 2, 0, 8] = 5.0                                                    # top-right corner
    maps[2, 3] = 0
    maps[2, 3, 5, 0] = 5.0                                                    # bottom-left corner
    return maps


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("style", list(EXPECTED))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_matches_reference(backend, style, dtype):
    maps = _random_maps(dtype, torch.Generator().manual_seed(4))
    want_coords, want_peaks = fasthg.reference.decode_heatmaps(maps, style)
    coords, peaks = run(backend, fasthg.ops.decode_heatmaps, maps, style)
    expected_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    assert coords.dtype == expected_dtype and peaks.dtype == expected_dtype
    assert torch.equal(coords.double(), want_coords)
    assert torch.equal(peaks.double().isnan(), want_peaks.isnan()) and peaks.isnan().sum() == 1
    assert torch.equal(peaks.double().nan_to_num(), want_peaks.nan_to_num())


@pytest.mark.parametrize("style", list(EXPECTED))
def test_gpu_tiles_argmax_across_pixel_blocks(triton_backend, style):
    maps = torch.zeros(1, 3, 40, 40)  # 1600 pixels: two 1024-pixel blocks on a GPU
    maps.view(1, 3, -1)[0, 0, 1500] = 2.0                                # the maximum in the second block
    maps.view(1, 3, -1)[0, 1, [100, 1500]] = 2.0                         # a tie across blocks: the first wins
    maps.view(1, 3, -1)[0, 2, [100, 1500]] = torch.tensor([9.0, float("nan")])  # NaN beats any number
    with emulating(80):
        coords, peaks = fasthg.ops.decode_heatmaps(maps, style)
    want_coords, _ = fasthg.reference.decode_heatmaps(maps, style)
    assert torch.equal(coords.double(), want_coords)
    assert peaks[0, :2].tolist() == [2.0, 2.0] and peaks[0, 2].isnan()
    assert int(coords[0, 1, 1]) == 100 // 40  # the tie resolved to the first block's pixel


def test_flip_merge_moves_left_to_right():
    heatmaps = torch.zeros(1, 16, 4, 5)
    flipped = torch.zeros(1, 16, 4, 5)
    flipped[0, 0, 1, 0] = 1.0  # the mirrored image's r_ankle, at its left edge
    merged = fasthg.ops.flip_merge_heatmaps(heatmaps, flipped)
    assert merged[0, 5, 1, 4] == 0.5  # the l_ankle (pair of 0), at the right edge
    assert merged.sum() == 0.5


def test_flip_pairs_swap_left_and_right_joints_by_name():
    mirrored = {"r_": "l_", "l_": "r_"}
    expected = [JOINT_NAMES.index(mirrored.get(name[:2], name[:2]) + name[2:]) for name in JOINT_NAMES]
    assert list(FLIP_PAIRS) == expected


@pytest.mark.parametrize("pairs", [FLIP_PAIRS, None], ids=["mpii", "custom"])
def test_flip_merge_matches_reference(pairs):
    generator = torch.Generator().manual_seed(5)
    joints = 16 if pairs else 3
    pairs = pairs or (0, 2, 1)
    heatmaps, flipped = torch.rand(2, 2, joints, 5, 6, generator=generator, dtype=torch.float64)
    assert_close(fasthg.ops.flip_merge_heatmaps(heatmaps, flipped, pairs),
                 fasthg.reference.flip_merge_heatmaps(heatmaps, flipped, pairs), "merged")


def test_to_image_coordinates_by_hand():
    # size (H, W) = (32, 64), center (100, 50), scale (1, 0.5): a 200 x 100 box around the centre.
    coords = torch.tensor([[[32.0, 16.0], [0.0, 0.0], [64.0, 32.0], [16.0, 8.0]]], dtype=torch.float64)
    got = fasthg.ops.to_image_coordinates(coords, torch.tensor([[100.0, 50.0]], dtype=torch.float64),
                                          torch.tensor([[1.0, 0.5]], dtype=torch.float64), (32, 64))
    assert got.tolist() == [[[100.0, 50.0], [0.0, 0.0], [200.0, 100.0], [50.0, 25.0]]]


def test_to_image_coordinates_matches_reference():
    generator = torch.Generator().manual_seed(6)
    coords = torch.rand(3, 16, 2, generator=generator, dtype=torch.float64) * 64
    center = torch.rand(3, 2, generator=generator, dtype=torch.float64) * 500
    scale = torch.rand(3, generator=generator, dtype=torch.float64) + 0.5
    assert_close(fasthg.ops.to_image_coordinates(coords, center, scale),
                 fasthg.reference.to_image_coordinates(coords, center, scale), "image coordinates")


def test_meta_tensors_give_shapes():
    coords, peaks = fasthg.ops.decode_heatmaps(torch.empty(16, 16, 64, 64, device="meta", dtype=torch.bfloat16))
    assert coords.shape == (16, 16, 2) and peaks.shape == (16, 16) and coords.dtype == torch.float32


def test_opcheck(triton_backend):
    maps = _random_maps(torch.float32, torch.Generator().manual_seed(7)).nan_to_num(7.0)  # opcheck compares NaN unequal
    torch.library.opcheck(torch.ops.fasthg.decode_heatmaps.default, (maps, "bearpaw"))


MAPS = torch.zeros(1, 2, 4, 4)


@pytest.mark.parametrize("fn, args, error, match", [
    (fasthg.ops.decode_heatmaps, (torch.zeros(2, 4, 4),), ValueError, r"heatmaps: expected a 4-D tensor \(B, K, H, W\)"),
    (fasthg.ops.decode_heatmaps, (torch.zeros(1, 2, 4, 4, dtype=torch.int64),), TypeError, "heatmaps: expected dtype"),
    (fasthg.ops.decode_heatmaps, (torch.zeros(1, 0, 4, 4),), ValueError, "heatmaps: expected a non-empty tensor"),
    (fasthg.ops.decode_heatmaps, (MAPS, "unbiased"), ValueError, "style: expected one of 'princeton', 'bearpaw', 'mmpose'"),
    (fasthg.ops.flip_merge_heatmaps, (MAPS, torch.zeros(1, 2, 4, 5), (1, 0)), ValueError, "flipped: expected the shape"),
    (fasthg.ops.flip_merge_heatmaps, (MAPS, MAPS, (0, 0)), ValueError, "flip_pairs: expected a permutation of the 2"),
    (fasthg.ops.flip_merge_heatmaps, (MAPS, MAPS.double(), (1, 0)), TypeError, "flipped: expected dtype torch.float32"),
    (fasthg.ops.to_image_coordinates, (torch.zeros(1, 2, 3), torch.zeros(1, 2), torch.ones(1)), ValueError,
     r"coords: expected shape \(B, K, 2\)"),
    (fasthg.ops.to_image_coordinates, (torch.zeros(1, 2, 2), torch.zeros(2, 2), torch.ones(1)), ValueError,
     r"center: expected shape \(B, 2\) = \(1, 2\)"),
    (fasthg.ops.to_image_coordinates, (torch.zeros(1, 2, 2), torch.zeros(1, 2), torch.ones(1, 3)), ValueError,
     r"scale: expected shape \(B,\) or \(B, 2\)"),
])
def test_bad_input(triton_backend, fn, args, error, match):
    with pytest.raises(error, match=match):
        fn(*args)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (1, 2, 1, 5), (1, 2, 4, 1)], ids=str)
def test_degenerate_maps(backend, shape):
    maps = torch.randn(shape, generator=torch.Generator().manual_seed(8))
    for style in EXPECTED:
        want_coords, want_peaks = fasthg.reference.decode_heatmaps(maps, style)
        coords, peaks = run(backend, fasthg.ops.decode_heatmaps, maps, style)
        assert torch.equal(coords.double(), want_coords), style
        assert torch.equal(peaks.double(), want_peaks), style
