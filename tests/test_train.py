"""``python -m fasthg.train`` end to end on tiny synthetic runs: artefacts, resuming after SIGKILL,
stopping on signals and on divergence, torchrun with two gloo processes."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import fasthg
from fasthg import distributed
from fasthg.precision import autocast_dtype
from fasthg.training import threads, trainer
from fasthg.training.checkpoints import load_checkpoint
from fasthg.training.options import parse
from test_data import stand_in_mpii  # noqa: F401 (a fixture shared with the data tests)


# A model and data small enough for a step in tens of milliseconds on one core.
TINY = ["--nstack", "1", "--inp-dim", "16", "--input-size", "64", "--batch-size", "4", "--train-size", "32",
        "--val-size", "8", "--lr", "2e-3", "--warmup-steps", "0", "--amp", "off", "--device", "cpu"]
ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1"}  # deterministic and gentle on a shared machine


def train(*arguments, check=True, cwd=None):
    """Runs ``python -m fasthg.train`` to completion (in folder ``cwd``); returns the CompletedProcess."""
    result = subprocess.run([sys.executable, "-m", "fasthg.train", *TINY, *arguments], env=ENVIRONMENT,
                            capture_output=True, text=True, timeout=300, cwd=cwd)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def start(*arguments):
    return subprocess.Popen([sys.executable, "-m", "fasthg.train", *TINY, *arguments], env=ENVIRONMENT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, process, timeout=120):
    """Waits until ``path`` exists while ``process`` runs."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, f"training ended before {path} appeared: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def records(folder):
    with open(os.path.join(folder, "metrics.jsonl")) as file:
        return [json.loads(line) for line in file]


def assert_same_weights(first, second):
    a, b = load_checkpoint(first)["model"], load_checkpoint(second)["model"]
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# session: made once per worker
@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished 3-epoch run, logged for TensorBoard too: its folder and its output."""
    folder = str(tmp_path_factory.mktemp("runs") / "tiny")
    result = train("--epochs", "3", "--tensorboard", "--output", folder)
    return folder, result


def test_a_short_run_learns_and_writes_every_artefact(trained_run):
    folder, result = trained_run
    for name in ("config.json", "checkpoints/last.pt", "metrics.jsonl", "curves.png", "predictions.png", "results.json"):
        assert os.path.getsize(os.path.join(folder, name)) > 0, name
    history = records(folder)
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert history[-1]["step"] == 24
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert {"val_loss", "pckh_mpii", "pckh_all16", "lr", "images_per_second"} <= set(history[0])
    with open(os.path.join(folder, "config.json")) as file:
        assert json.load(file)["inp_dim"] == 16
    with open(os.path.join(folder, "results.json")) as file:
        results = json.load(file)
    assert set(results["pckh"]) == {"mpii", "all16", "mmpose"} and "mean_pose_baseline" in results
    assert "r_wrist" in result.stdout and "mean-pose baseline" in result.stdout and "mean (mpii)" in result.stdout
    assert "img_s=" in result.stderr  # the progress bar shows throughput
    assert "8/8 [" in result.stderr and "/24 [" not in result.stderr  # without --max-steps it counts through each epoch
    assert result.stdout.startswith("device cpu, 1 CPU thread (OMP_NUM_THREADS), precision fp32 (--amp off)\n")


def test_the_best_epoch_is_kept_beside_the_last(trained_run):
    folder, _ = trained_run
    history = records(folder)
    best = max(history, key=lambda record: record["pckh_mpii"])
    kept = load_checkpoint(os.path.join(folder, "checkpoints", "best.pt"))
    assert kept["progress"]["step"] == best["step"]
    assert kept["history"][-1] == best
    with open(os.path.join(folder, "results.json")) as file:
        assert json.load(file)["best_checkpoint"]["epoch"] == best["epoch"]


def test_tensorboard_logs_every_record_beside_metrics_jsonl(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    folder, _ = trained_run
    events = EventAccumulator(os.path.join(folder, "tensorboard")).Reload()
    for name in ("train_loss", "val_loss", "pckh_mpii", "pckh_all16", "lr"):
        logged = [(event.step, event.value) for event in events.Scalars(name)]
        assert logged == [(record["step"], pytest.approx(record[name])) for record in records(folder)], name


def test_the_progress_bar_counts_toward_max_steps(tmp_path):
    result = train("--epochs", "3", "--max-steps", "11", "--output", str(tmp_path / "run"))  # 8 steps per epoch
    assert "11/11 [" in result.stderr and "8/8 [" not in result.stderr
    assert [record["step"] for record in records(str(tmp_path / "run"))] == [8, 11]


def test_checkpoints_load_into_the_reference_model(trained_run):
    folder, _ = trained_run
    model = fasthg.reference.PoseNet(1, 16, 16)
    state = fasthg.load_state_dict_compat(os.path.join(folder, "checkpoints", "last.pt"), model)
    assert torch.equal(model.outs[0].conv.weight, state["outs.0.conv.weight"])
    model.eval()(torch.rand(1, 64, 64, 3))


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    schedule = ["--epochs", "2", "--train-size", "48", "--save-every", "3"]  # 12 steps per epoch
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    train(*schedule, "--output", reference)
    process = start(*schedule, "--output", killed)
    wait_for(os.path.join(killed, "checkpoints", "last.pt"), process)
    process.kill()
    process.wait()
    saved = load_checkpoint(killed)["progress"]
    assert saved["step"] < 24 and saved["batch"] > 0  # killed in the middle of an epoch
    train(*schedule, "--resume", killed)
    assert_same_weights(os.path.join(reference, "checkpoints", "last.pt"), os.path.join(killed, "checkpoints", "last.pt"))
    timeless = [{k: v for k, v in record.items() if k not in ("seconds", "images_per_second")} for record in records(killed)]
    assert timeless == [{k: v for k, v in record.items() if k not in ("seconds", "images_per_second")}
                        for record in records(reference)]


def digests(folder):
    """Every file under ``folder``: its path relative to it and the SHA-256 of its bytes."""
    return {os.path.relpath(os.path.join(root, name), folder): hashlib.sha256(open(os.path.join(root, name), "rb").read()).hexdigest()
            for root, _, names in os.walk(folder) for name in names}


def test_resuming_a_copied_run_writes_only_to_the_copy(tmp_path):
    original, copy, elsewhere = tmp_path / "original", tmp_path / "copy", tmp_path / "elsewhere"
    train("--epochs", "1", "--output", str(original))
    shutil.copytree(original, copy)
    before = digests(original)
    elsewhere.mkdir()
    train("--resume", str(copy), "--epochs", "2", cwd=elsewhere)  # its config.json says --output original
    assert digests(original) == before
    assert os.listdir(elsewhere) == []
    assert [record["epoch"] for record in records(copy)] == [1, 2]
    assert load_checkpoint(str(copy))["progress"]["epoch"] == 2
    with open(copy / "config.json") as file:
        assert json.load(file)["output"] == str(copy)


def test_resuming_a_checkpoint_file_writes_to_its_run_folder(tmp_path):
    folder = tmp_path / "run"
    train("--epochs", "1", "--output", str(folder))
    train("--resume", os.path.join("run", "checkpoints", "last.pt"), "--epochs", "2", cwd=tmp_path)
    assert [record["epoch"] for record in records(folder)] == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["run"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_saves_and_stops_cleanly(tmp_path, signum):
    folder = str(tmp_path / "run")
    process = start("--epochs", "50", "--save-every", "2", "--output", folder)
    wait_for(os.path.join(folder, "checkpoints", "last.pt"), process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    step = load_checkpoint(folder)["progress"]["step"]
    assert f"stopped by {signal.Signals(signum).name}: saved step {step} " in stderr
    assert f"--resume {folder}" in stderr


def test_a_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    folder = str(tmp_path / "run")
    result = train("--epochs", "1", "--lr", "1e30", "--save-every", "1", "--output", folder, check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "error: the loss became" in result.stderr and "last good checkpoint is" in result.stderr
    checkpoint = load_checkpoint(folder)
    failed_at = int(result.stderr.split("at step ")[1].split()[0])
    assert checkpoint["progress"]["step"] == failed_at - 1
    assert all(torch.isfinite(tensor).all() for tensor in checkpoint["model"].values() if tensor.is_floating_point())


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("requested, environment, expected", [
    (None, None, (1, "default")), (None, "3", (3, "OMP_NUM_THREADS")), (2, "3", (2, "--threads")), (None, "", (1, "default")),
])
def test_threads_come_from_the_option_then_the_environment_then_one(restore_threads, monkeypatch, requested, environment, expected):
    if environment is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", environment)
    assert threads.choose_threads(requested) == expected
    assert torch.get_num_threads() == expected[0]


def test_amp_auto_is_fp32_on_every_cpu(monkeypatch):
    # a CPU with AVX512-BF16 or AMX, as oneDNN reports it, trains in fp32 too: the same numbers everywhere
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16


class HostReads:
    """Records what, between a training step's forward and its backward, would make the host wait
    for a GPU: reading a device value (``.item()``, ``bool()``, ``float()``, ``.tolist()``, ...)
    or a blocking copy to the device (``.to(device)``, ``torch.tensor(..., device=...)``).

    Everything runs on the CPU here, so device values are told from host arithmetic by origin:
    tensors built by ``torch.tensor`` without a device, and their dtype conversions, are host
    constants, and reading them waits for nothing.
    """
    READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")

    def __init__(self, monkeypatch):
        self.window, self.reads, self.host = False, [], torch.utils.weak.WeakIdKeyDictionary()
        run_model, backward, to, tensor = trainer.run_model, torch.Tensor.backward, torch.Tensor.to, torch.tensor

        def forward(*args, **kwargs):
            self.window = True
            return run_model(*args, **kwargs)

        def backward_(t, *args, **kwargs):
            self.window = False
            return backward(t, *args, **kwargs)

        def to_(t, *args, **kwargs):
            device = next((a for a in (*args, kwargs.get("device")) if isinstance(a, (str, torch.device))), None)
            self._check(f"{t.device} to {device}", device is not None and not kwargs.get("non_blocking"))
            out = to(t, *args, **kwargs)
            if device is None and t in self.host:
                self.host[out] = True
            return out

        def tensor_(data, *args, **kwargs):
            self._check(f"torch.tensor(device={kwargs.get('device')})", kwargs.get("device") is not None)
            out = tensor(data, *args, **kwargs)
            if kwargs.get("device") is None:
                self.host[out] = True
            return out

        def read(name, method):
            def read_(t, *args, **kwargs):
                self._check(name, t not in self.host)
                return method(t, *args, **kwargs)
            return read_

        monkeypatch.setattr(trainer, "run_model", forward)
        monkeypatch.setattr(torch, "tensor", tensor_)
        for name, method in {"backward": backward_, "to": to_,
                             **{name: read(name, getattr(torch.Tensor, name)) for name in self.READS}}.items():
            monkeypatch.setattr(torch.Tensor, name, method)

    def _check(self, what, waits):
        if self.window and waits:
            self.reads.append(what)


def test_no_host_read_between_forward_and_backward(tmp_path, monkeypatch):
    """On the torch path; the Triton launchers pass too, but the interpreter takes minutes for the two steps."""
    host_reads = HostReads(monkeypatch)
    config, _, _ = parse([*TINY, "--max-steps", "2", "--output", str(tmp_path / "run")])
    run = trainer.Trainer(config, distributed.setup("cpu"))
    run._train_epoch()
    assert run.progress["step"] == 2
    assert not host_reads.window  # every forward reached its backward
    assert host_reads.reads == []


def test_torchrun_with_two_gloo_processes(tmp_path):
    folder = str(tmp_path / "ddp")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "fasthg.train", *TINY, "--epochs", "2", "--output", folder],
                            env=ENVIRONMENT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    history = records(folder)
    assert [record["step"] for record in history] == [4, 8]  # 32 figures / 2 processes / batch 4
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert result.stdout.count("mean (mpii)") == 1  # only rank 0 reports
    assert os.path.exists(os.path.join(folder, "predictions.png"))


def test_training_on_mpii_stand_in_images(stand_in_mpii, tmp_path):
    """The MPII pipeline end to end (with a data-loader worker): 6 people, batches of 2."""
    images, annotations, _ = stand_in_mpii
    folder = str(tmp_path / "mpii")
    train("--dataset", "mpii", "--data-dir", str(images), "--annot-dir", str(annotations), "--batch-size", "2",
          "--epochs", "1", "--workers", "1", "--output", folder)
    assert records(folder)[0]["step"] == 3
    with open(os.path.join(folder, "config.json")) as file:
        assert json.load(file)["dataset"] == "mpii"
