"""The one launcher's GPU safety, as far as a machine without a GPU can show it (fasthg/ops/launch.py):
launches enter their tensors' device, arrival counters belong to one (device, stream), a killed
launch leaves no stale count behind, and a CUDA graph capture allocates no counters."""
import contextlib

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from triton.runtime import interpreter

from bench.launches import recording_launches
from fasthg.kernels import registry
from fasthg.ops import launch, residual_kernels
from harness import assert_close

CUDA1 = torch.device("cuda", 1)


def _channel_stats(x):
    """(mean, biased var) of NHWC ``x`` per channel by the channel_stats kernel."""
    c = x.shape[1]
    stats = residual_kernels.BatchStatistics(torch.empty(c), torch.empty(c), torch.zeros(c), torch.ones(c))
    residual_kernels.channel_stats(x, stats, momentum=0.1)
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
    config = registry.KernelConfig("fake", Kernel(), torch.float32, {}, {})
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
