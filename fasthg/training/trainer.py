"""The training loop behind ``python -m fasthg.train``: one process, or one of torchrun's.

What makes a run survive: checkpoints are written atomically at every epoch end and every
``save_every`` steps, and hold the model, optimizer, scheduler, gradient scaler, RNG states,
the position in the epoch and the metrics history. Data is a function of (seed, epoch, index)
and its order of (seed, epoch), so a resumed run repeats exactly what the uninterrupted one
would have done. SIGTERM and Ctrl-C finish the current step, save and stop; a non-finite loss
stops before the optimizer applies it, leaving the last checkpoint as it was.
"""
import dataclasses
import itertools
import math
import signal
import time

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

import fasthg

from .. import distributed
from ..data import make_dataset
from ..errors import UserError
from ..extras import LazyModule
from ..pose import evaluation
from ..pose.inference import model_input, run_model
from ..pose.network import build_model, select_backend
from ..pose.scoring import describe, scoring_for
from ..pose.targets import HeatmapTargets
from ..pose.weights import load_weights
from ..precision import autocast_dtype
from .checkpoints import capture_rng, restore_rng, save_checkpoint
from .run_folder import RunFolder
from .tensorboard_log import TensorBoardLog
from .threads import choose_threads

tqdm = LazyModule("tqdm")

_PREVIEW_IMAGES = 16


class Interrupted(Exception):
    """Training stopped on a signal after saving its checkpoint."""

    def __init__(self, signum, message):
        super().__init__(message)
        self.signum = signum


class Diverged(Exception):
    """The loss stopped being finite; the optimizer never applied it."""


class _SkipSampler(torch.utils.data.Sampler):
    """The indices of ``sampler`` after the first ``skip``: resumes an epoch where it stopped."""

    def __init__(self, sampler, skip):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self):
        return len(self.sampler) - self.skip


def _ignore_interrupts(worker_id):
    # Ctrl-C reaches the whole process group: the loader's workers leave it to the main process,
    # which finishes its step and shuts them down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def learning_rate_factor(schedule, warmup_steps, total_steps):
    """The multiplier of the base learning rate at each step: linear warm-up, then ``schedule``."""
    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if schedule == "step":  # princeton-vl's decays, placed at fixed fractions of the run
            return 0.01 if progress >= 0.85 else 0.1 if progress >= 0.6 else 1.0
        return 1.0
    return factor


class Trainer:
    """A run of ``config`` (a TrainConfig) in ``context`` (fasthg.distributed), from scratch, from
    ``initial_weights`` (the (state_dict, info) of :func:`fasthg.pose.weights.read_pose_weights`, fine-tuned) or from ``checkpoint`` (a dict from
    :func:`fasthg.training.checkpoints.load_checkpoint`)."""

    def __init__(self, config, context, checkpoint=None, initial_weights=None):
        self.config, self.context = config, context
        select_backend(config.backend, context.device)
        torch.manual_seed(config.seed)  # the same initial weights in every process
        threads, source = choose_threads(config.threads)
        self.amp_dtype = autocast_dtype(config.amp, context.device)
        if context.is_main:
            precision = "fp32" if self.amp_dtype is None else f"{str(self.amp_dtype).removeprefix('torch.')} autocast"
            print(f"device {context.device}, {threads} CPU thread{'s' if threads > 1 else ''} ({source}), "
                  f"precision {precision} (--amp {config.amp})", flush=True)
        self.targets = HeatmapTargets(config.heatmap_style, config.sigma, config.weighted_loss)
        datasets = {split: make_dataset(config.dataset, split, config.input_size, config.seed,
                                        config.train_size if split == "train" else config.val_size,
                                        config.data_dir, config.annot_dir) for split in ("train", "val")}
        self.train_set, self.val_set = datasets["train"], datasets["val"]
        self.scoring = scoring_for(self.val_set)
        self.sampler = DistributedSampler(self.train_set, context.world_size, context.rank, shuffle=True,
                                          seed=config.seed, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // config.batch_size
        if self.steps_per_epoch == 0:
            raise UserError(f"--batch-size {config.batch_size}: more than the {len(self.sampler)} training items "
                            "each process gets per epoch")
        self.joint_set = self.train_set.joint_set
        self.model = build_model(config.nstack, config.inp_dim, context.device, len(self.joint_set))
        if initial_weights is not None:
            load_weights(self.model, *initial_weights)
        # The reference model's unused skip convolutions need DDP's search; fasthg's are frozen.
        unused = isinstance(self.model, fasthg.reference.PoseNet) and not isinstance(self.model, getattr(fasthg, "PoseNet", ()))
        self.network = DistributedDataParallel(self.model, find_unused_parameters=unused) if context.distributed else self.model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, learning_rate_factor(config.schedule, config.warmup_steps, self.total_steps))
        self.scaler = torch.amp.GradScaler(context.device.type, enabled=self.amp_dtype == torch.float16)
        self.progress = {"epoch": 0, "batch": 0, "step": 0, "loss_sum": 0.0, "seconds": 0.0}
        self.history = []
        self.stop_signal = None
        self.last_throughput = None
        self.folder = RunFolder(config.output) if context.is_main else None
        if checkpoint is not None:
            self._restore(checkpoint)
        if self.folder:  # a resumed run's too: its output folder may be new, its epochs changed
            self.folder.write_json("config.json", dataclasses.asdict(config))
        self.tensorboard = (TensorBoardLog(config.output, None if checkpoint is None else self.progress["step"])
                            if config.tensorboard and self.folder else None)

    @property
    def total_steps(self):
        steps = self.config.epochs * self.steps_per_epoch
        return steps if self.config.max_steps is None else min(steps, self.config.max_steps)

    def _restore(self, checkpoint):
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.progress = dict(checkpoint["progress"])
        self.history = list(checkpoint["history"])
        restore_rng(checkpoint["rng"])

    def _save(self, best=False):
        """Writes checkpoints/last.pt, and first checkpoints/best.pt when ``best``: killed between the
        two, the run resumes from the previous last.pt and repeats this epoch, its best included."""
        if not self.context.is_main:
            return
        save_checkpoint({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "progress": dict(self.progress), "history": list(self.history), "rng": capture_rng(),
            "config": dataclasses.asdict(self.config),
        }, *([self.folder.best_checkpoint] if best else []), self.folder.checkpoint)

    def _on_signal(self, signum, frame):
        if self.stop_signal is not None:  # asked twice: quit now, without saving
            raise KeyboardInterrupt
        self.stop_signal = signum

    def fit(self):
        """Trains to the configured end, validating each epoch; returns the final results dict (rank 0)."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            trained = False
            while self.progress["step"] < self.total_steps and self.progress["epoch"] < self.config.epochs:
                self._train_epoch()
                results = self._predict_validation()
                self._record(results)
                trained = True
            if not trained:  # resumed a finished run: report it again
                results = self._predict_validation()
            return self._finish(results)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self.tensorboard:
                self.tensorboard.close()

    def _loader(self, dataset, **options):
        return DataLoader(dataset, batch_size=self.config.batch_size, num_workers=self.config.workers,
                          pin_memory=self.context.device.type == "cuda", worker_init_fn=_ignore_interrupts, **options)

    def _train_epoch(self):
        epoch, config = self.progress["epoch"], self.config
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        loader = self._loader(self.train_set, sampler=_SkipSampler(self.sampler, self.progress["batch"] * config.batch_size),
                              drop_last=True)
        self.model.train()
        # with --max-steps the bar counts toward it, over the whole run; else through the epoch
        total, done = ((self.total_steps, self.progress["step"]) if config.max_steps is not None
                       else (self.steps_per_epoch, self.progress["batch"]))
        bar = tqdm.tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
                        disable=not self.context.is_main, dynamic_ncols=True, mininterval=1.0)
        started, images = time.perf_counter(), 0
        for batch in loader:
            loss = self._step(batch)
            self.progress["batch"] += 1
            self.progress["step"] += 1
            self.progress["loss_sum"] += loss
            images += len(batch["image"]) * self.context.world_size
            elapsed = time.perf_counter() - started
            bar.set_postfix(loss=f"{self.progress['loss_sum'] / self.progress['batch']:.3g}",
                            img_s=f"{images / elapsed:.1f}", refresh=False)
            bar.update()
            if self.progress["batch"] == self.steps_per_epoch or self.progress["step"] >= self.total_steps:
                break
            if self.stop_signal is not None:
                self._interrupt(time.perf_counter() - started)
            if config.save_every and self.progress["step"] % config.save_every == 0:
                self._save()
        bar.close()
        self.progress["seconds"] += time.perf_counter() - started
        self.last_throughput = images / max(time.perf_counter() - started, 1e-9)

    def _step(self, batch):
        """One optimizer step; returns the loss averaged over processes.

        The host reads device values once per step, after backward and before the optimizer: the
        forward and backward are queued without waiting for the GPU (their inputs are copied
        ahead, without blocking), and only the optimizer needs to know whether the loss was
        finite. One collective carries the loss, the stop request and divergence, so every process
        takes the same decision at the same step; a non-finite loss stops before the optimizer
        applies it (its backward ran, on every process, which is harmless: nothing reads its
        gradients).
        """
        device = self.context.device
        inputs = model_input(batch["image"], device)
        keypoints, visible = (batch[key].to(device, non_blocking=True) for key in ("keypoints", "visible"))
        stacks = run_model(self.network, inputs, self.amp_dtype)
        loss = self.targets.loss(stacks, keypoints, visible)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        value = loss.detach().float()
        # full_like fills on the device: torch.tensor(...) would be a blocking host-to-device copy.
        flags = torch.stack([value, (~torch.isfinite(value)).float(),
                             torch.full_like(value, self.stop_signal is not None)])
        loss_sum, diverged, stop = distributed.sum_across(self.context, flags).tolist()
        if stop > 0 and self.stop_signal is None:
            self.stop_signal = signal.SIGTERM  # another process was asked to stop
        if diverged > 0:
            self._diverged(value.item())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss_sum / self.context.world_size

    def _diverged(self, loss):
        checkpoint = self.folder.checkpoint if self.folder else "the run folder's checkpoints/last.pt"
        raise Diverged(f"the loss became {loss} at step {self.progress['step'] + 1} (epoch {self.progress['epoch'] + 1}); "
                       f"stopped before applying it. The last good checkpoint is {checkpoint} (if one was written: "
                       "every --save-every steps and at each epoch end); try a lower --lr or --amp off")

    def _interrupt(self, seconds):
        self.progress["seconds"] += seconds
        self._save()
        name = signal.Signals(self.stop_signal).name
        raise Interrupted(self.stop_signal, f"{name}: saved step {self.progress['step']} to "
                          f"{self.folder.checkpoint if self.folder else 'the checkpoint'}; continue with "
                          f"--resume {self.config.output}")

    def _predict_validation(self):
        """The validation set's predictions, each process predicting its share (gathered on rank 0)."""
        shard = Subset(self.val_set, range(self.context.rank, len(self.val_set), self.context.world_size))
        return evaluation.predict_dataset(self.model, self._loader(shard), self.context, self.targets, self.amp_dtype,
                                          joint_set=self.joint_set)

    def _record(self, results):
        """Closes the epoch (or the partial epoch at --max-steps): its metrics record, checkpoint and curves."""
        record = {"epoch": self.progress["epoch"] + 1, "step": self.progress["step"],
                  "train_loss": self.progress["loss_sum"] / max(1, self.progress["batch"]),
                  "lr": self.optimizer.param_groups[0]["lr"], "images_per_second": self.last_throughput,
                  "seconds": self.progress["seconds"]}
        if self.progress["batch"] == self.steps_per_epoch:
            self.progress.update(epoch=self.progress["epoch"] + 1, batch=0, loss_sum=0.0)
        if not self.context.is_main:
            return
        headline = self.scoring.headline(self.scoring.score(results))
        record.update(val_loss=results["loss"], **headline)
        key = self.scoring.best_by
        best = all(record[key] > earlier[key] for earlier in self.history)
        self.history.append(record)
        self._save(best)
        self.folder.write_metrics(self.history)
        if self.tensorboard:
            self.tensorboard.write(record)
        self.folder.write_curves(self.history)
        tqdm.tqdm.write(f"epoch {record['epoch']}: train loss {record['train_loss']:.4g}, val loss {record['val_loss']:.4g}, "
                        + describe(headline))

    def _finish(self, results):
        """Final report on rank 0: the table, the mean-pose baseline, results.json, curves and predictions."""
        if not self.context.is_main:
            return None
        scores = self.scoring.score(results)
        baseline = evaluation.baseline_score(results, evaluation.mean_pose(self.train_set), self.scoring)
        headline, baseline_headline = self.scoring.headline(scores), self.scoring.headline(baseline)
        self.folder.write_curves(self.history, next(iter(baseline_headline.values())))
        self._write_predictions()
        key = self.scoring.best_by
        best = max(self.history, key=lambda record: record[key])
        summary = {self.scoring.name: scores, "mean_pose_baseline": baseline, "train_seconds": self.progress["seconds"],
                   "steps": self.progress["step"], "checkpoint": self.folder.checkpoint,
                   "best_checkpoint": {"path": self.folder.best_checkpoint, "epoch": best["epoch"], "step": best["step"],
                                       key: best[key]}}
        self.folder.write_json("results.json", summary)
        print(self.scoring.format(scores, baseline))
        print(f"validation {describe(headline)}; mean-pose baseline {describe(baseline_headline)}; "
              f"{self.progress['step']} steps in {self.progress['seconds']:.0f} s; run folder {self.config.output}")
        return summary

    @torch.no_grad()
    def _write_predictions(self):
        items = [self.val_set[i] for i in range(min(_PREVIEW_IMAGES, len(self.val_set)))]
        images = np.stack([item["image"] for item in items])
        self.model.eval()
        stacks = run_model(self.model, model_input(torch.from_numpy(images), self.context.device), self.amp_dtype)
        coordinates, _ = self.targets.decode(stacks[:, -1])
        self.folder.write_predictions(images, coordinates.cpu().numpy())
