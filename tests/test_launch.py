"""The one launcher's GPU safety, as far as a machine without a GPU can show it (fasthg/ops/launch.py):
launches enter their tensors' device, arrival counters belong to one (device, stream), a killed
launch leaves no stale count behind, and a CUDA graph capture allocates no counters."""
import contextlib

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from triton.runtime import interpreter

import fasthg
from bench.launches import recording_launches
from fasthg.kernels import registry
from fasthg.ops import conv_launchers, launch
from harness import assert_close

CUDA1 = torch.device("cuda", 1)


def _channel_stats(x):
    """(mean, biased var) of NHWC ``x`` per channel by the channel_stats kernel."""
    c = x.shape[1]
    stats = conv_launchers.BatchStatistics(torch.empty(c), torch.empty(c), torch.zeros(c), torch.ones(c))
    conv_launchers.channel_stats(x, stats, momentum=0.1)
    return stats.mean, stats.var


def _input():
    return torch.randn(2, 3, 16, 16).to(memory_format=torch.channels_last)


def _assert_right(x, mean, var):
    exact_var, exact_mean = torch.var_mean(x.double(), dim=(0, 2, 3), correction=0)
    assert_close(mean, exact_mean.float(), "mean")
    assert_close(var, exact_var.float(), "var")


def test_counters_belong_to_the_current_stream(triton_backend, monkeypatch):
    streams = iter(["stream A", "stream B", "stream A"])
    monkeypatch.setattr(launch, "current_stream", lambda device: current)
    used = []
    x = _input()
    with recording_launches(lambda call: used.append(call.arguments["counter_ptr"]), run=True):
        for current in streams:
            _assert_right(x, *_channel_stats(x))
    a, b, a_again = (counter.untyped_storage().data_ptr() for counter in used)
    assert a == a_again != b, "two streams shared arrival counters, or one stream got two buffers"
    for stream in ("stream A", "stream B"):
        assert not launch._counters[(torch.device("cpu"), stream)].any(), f"{stream}'s counters were left nonzero"


def test_a_killed_launch_leaves_no_stale_count(triton_backend, monkeypatch):
    # GPU tiles: many row tiles, so the launch dies after some programs arrived and before the last.
    x = torch.randn(4, 3, 32, 32).to(memory_format=torch.channels_last)
    started = []
    set_grid_idx = interpreter.interpreter_builder.set_grid_idx

    def dying(*index):
        started.append(index)
        if len(started) == 4:
            raise KeyboardInterrupt
        set_grid_idx(*index)

    with registry.emulating(80):
        monkeypatch.setattr(interpreter.interpreter_builder, "set_grid_idx", dying)
        with pytest.raises(KeyboardInterrupt):
            _channel_stats(x)
        monkeypatch.undo()
        assert len(started) == 4, "the launch was not interrupted midway"
        counters = launch._counters[(torch.device("cpu"), None)]
        assert not counters.any(), f"a killed launch left arrival counts {counters.nonzero().flatten().tolist()}"
        _assert_right(x, *_channel_stats(x))


class _Recorder:
    """Stands for torch.cuda.device: records the device a block enters."""
    entered = []

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        self.entered.append(self.device)

    def __exit__(self, *exc):
        self.entered.pop()


def test_a_launch_enters_its_tensors_device(monkeypatch):
    seen = []

    class Kernel:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: seen.append(list(_Recorder.entered))

    monkeypatch.setattr(torch.cuda, "device", _Recorder)
    config = registry.KernelConfig("fake", Kernel(), torch.float32, {})
    with FakeTensorMode():  # tensors that say cuda:1, on a machine without one
        launch.launch_config(config, (1,), 3, torch.empty(4, device=CUDA1))
    launch.launch_config(config, (1,), torch.empty(4))
    assert seen == [[CUDA1], []], f"entered {seen}: cuda:1 for the CUDA tensor and nothing on CPU"


@pytest.fixture
def capturing(monkeypatch):
    """A stand-in for CUDA graph capture on cuda:1's stream "capture stream": a buffer an eager step
    there left (``capturing.eager_buffer``), and any allocation of counters fails the test."""
    eager_buffer = torch.zeros(1024, dtype=torch.int32)
    monkeypatch.setattr(launch, "current_stream", lambda device: "capture stream")
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    monkeypatch.setattr(launch, "_counters", {(CUDA1, "capture stream"): eager_buffer})
    monkeypatch.setattr(launch, "_held_by_graphs", [])

    def forbidden(*args, **kwargs):
        raise AssertionError("arrival counters were allocated during a capture")

    monkeypatch.setattr(torch, "zeros", forbidden)
    return contextlib.nullcontext(eager_buffer)


def test_a_capture_reuses_the_eager_counters_and_keeps_them(capturing):
    with capturing as eager_buffer:
        assert launch.counters(CUDA1, 64) is eager_buffer
        assert launch.counters(CUDA1, 1024) is eager_buffer
    assert launch._held_by_graphs == [eager_buffer], "a captured buffer must outlive later growth (the graph addresses it)"


@pytest.mark.parametrize("device, size", [(CUDA1, 1025), (torch.device("cuda", 0), 8)], ids=["bigger", "no eager step"])
def test_a_capture_that_would_allocate_says_what_to_do(capturing, device, size):
    with capturing, pytest.raises(RuntimeError, match="run one eager step on the stream you capture on first"):
        launch.counters(device, size)


def test_named_arguments_must_be_what_the_variant_takes():
    config = registry.lookup("max_pool2x2_backward", torch.float32, torch.device("cpu"), HAS_THROUGH=True)
    x = torch.zeros(4)
    given = {name: x if name.endswith("_ptr") else 1 for name in config.signature}
    del given["through_ptr"]
    with pytest.raises(TypeError, match=r"arguments missing \['through_ptr'\], not taken by this variant \['stray'\]"):
        launch.launch_config(config, (1,), **given, stray=x)


def test_workspace_views_are_aligned_and_sized():
    parts = ((torch.float64, 3), (torch.float32, 5), (torch.float32, 0), (torch.int32, 2))
    views = launch.workspace(torch.device("cpu"), *parts)
    storages = {view.untyped_storage().data_ptr() for view in views}
    assert len(storages) == 1, "one allocation"
    for view, (dtype, elements) in zip(views, parts):
        assert view.dtype == dtype and view.shape == (elements,)
        assert view.storage_offset() * view.element_size() % launch.WORKSPACE_ALIGNMENT == 0
    ends = [view.storage_offset() * view.element_size() + view.numel() * view.element_size() for view in views]
    starts = [view.storage_offset() * view.element_size() for view in views]
    assert all(end <= start for end, start in zip(ends, starts[1:])), "views overlap"


def test_an_autotuned_launch_times_each_tile_once_and_restores_the_running_statistics(triton_backend, monkeypatch):
    # As on a GPU (autotuning forced on CPU tensors, GPU tiles): the Residual's 3x3 forward times
    # its two tiles (a fake clock makes the second, 128-row one faster), runs it, and the running
    # statistics see one update, as with the default tile; the same shape again times nothing.
    timed = []

    def fake_benchmark(kernel_call, quantiles):
        kernel_call()
        timed.append(kernel_call)
        return [2.0 if len(timed) % 2 else 1.0] * len(quantiles)

    torch.manual_seed(0)
    default, tuned = fasthg.Residual(6, 8).half(), fasthg.Residual(6, 8).half()  # 16-bit: autotuned
    tuned.load_state_dict(default.state_dict())
    x = torch.randn(2, 6, 5, 9).half()
    with registry.emulating(80):
        expected = default(x)
        monkeypatch.setattr(launch, "autotuning", lambda device: True)
        monkeypatch.setattr(launch, "benchmark", fake_benchmark)
        monkeypatch.setattr(launch, "_autotuners", {})
        out = tuned(x)
        assert len(timed) == 2, f"{len(timed)} timing runs: one per tile of the 3x3 forward"
        (autotuner, tuned_names), = launch._autotuners.values()
        assert tuned_names == ["BLOCK_M"] and [c.kwargs["BLOCK_M"] for c in autotuner.cache.values()] == [128]
        # The tiles differ in rows only: each output's sum runs in the same order (a rounding apart
        # at most); running statistics updated thrice instead of once would be off by 170%.
        assert_close(out, expected, "output", rtol=2**-10, atol=2**-14)
        for name in ("running_mean", "running_var"):
            assert_close(getattr(tuned.bn3, name), getattr(default.bn3, name), f"bn3.{name}", rtol=2**-10, atol=2**-14)
        tuned(x)
        assert len(timed) == 2, "the same shape was timed again"


@pytest.mark.parametrize("pooled_height, fine", [(8, True), (130, False)], ids=["few-tiles", "enough-tiles"])
def test_a_pixel_launch_too_small_to_fill_the_gpu_runs_the_fine_tile(pooled_height, fine):
    # GPU tiles, recorded and not run: a 2x2 max-pool to 2 x h x h pixels of 3 channels has
    # 2 h^2 / 16 regular tiles in one channel block; h = 130 gives 2,113 tiles, 16 per multiprocessor
    # of the modelled 132, h = 8 eight, so that launch takes the tile of a quarter of the pixels.
    x = torch.empty(2, 3, 2 * pooled_height, 2 * pooled_height).to(memory_format=torch.channels_last)
    launches = []
    with registry.emulating(90), fasthg.backend("triton"), recording_launches(launches.append, run=False):
        fasthg.ops.max_pool2x2(x)
        regular = registry.lookup("max_pool2x2_forward", torch.float32, x.device, STATS=False, WRITE_INDEX=False)
    (pool,) = launches
    expected = registry.finer_tile(regular) if fine else regular
    assert pool.arguments["BLOCK_P"] == expected.constexprs["BLOCK_P"] == (4 if fine else 16)
    assert pool.grid == (-(-2 * pooled_height ** 2 // expected.constexprs["BLOCK_P"]), 1)
    regular_tiles = -(-2 * pooled_height ** 2 // 16)
    assert (regular_tiles < launch.FINE_TILES_BELOW * launch.multiprocessors(x.device)) == fine
