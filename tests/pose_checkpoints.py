"""Checkpoint files of every kind the pose commands read, built from a tiny reference PoseNet:
a fasthg run and its checkpoint file, princeton-vl's checkpoint.pt (``state_dict`` under
``model.module.`` prefixes, beside the optimizer and epoch) and its legacy-format .pth.tar, and a
bare state_dict; plus files that are not a PoseNet's."""
import dataclasses
import os

import torch

import fasthg
from fasthg.train_options import parse

NSTACK, INP_DIM, JOINTS, INPUT_SIZE = 1, 8, 16, 64


def tiny_posenet(nstack=NSTACK, inp_dim=INP_DIM, joints=JOINTS, seed=0):
    """A reference PoseNet with random weights and running statistics (eval mode must use them)."""
    torch.manual_seed(seed)
    model = fasthg.reference.PoseNet(nstack, inp_dim, joints)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.uniform_(-0.1, 0.1)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5)
    return model.eval()


def princeton_checkpoint(state):
    """The dict princeton-vl's train.py saves: its Trainer wraps a DataParallel PoseNet."""
    optimizer = torch.optim.Adam(torch.nn.Linear(2, 2).parameters()).state_dict()
    return {"state_dict": {f"model.module.{key}": value for key, value in state.items()},
            "optimizer": optimizer, "epoch": 3}


def fasthg_checkpoint(state, input_size=INPUT_SIZE, dataset="synthetic"):
    """A fasthg training checkpoint's essentials: the weights and the run's config."""
    config, _, _ = parse(["--nstack", str(NSTACK), "--inp-dim", str(INP_DIM), "--input-size", str(input_size),
                          "--output", "unused"])
    return {"model": state, "config": {**dataclasses.asdict(config), "dataset": dataset}}


def write_checkpoints(folder, state):
    """Writes every kind of PoseNet checkpoint of ``state`` into ``folder``; returns {kind: path}."""
    run = os.path.join(folder, "run")
    os.makedirs(os.path.join(run, "checkpoints"))
    paths = {"fasthg run": run, "fasthg file": os.path.join(run, "checkpoints", "last.pt"),
             "princeton": os.path.join(folder, "checkpoint.pt"), "princeton tar": os.path.join(folder, "checkpoint.pth.tar"),
             "state_dict": os.path.join(folder, "weights.pth")}
    torch.save(fasthg_checkpoint(state), paths["fasthg file"])
    torch.save(princeton_checkpoint(state), paths["princeton"])
    torch.save(princeton_checkpoint(state), paths["princeton tar"], _use_new_zipfile_serialization=False)
    torch.save(state, paths["state_dict"])
    return paths


def write_non_posenets(folder):
    """Files that hold no PoseNet's weights: {kind: (path, the message's expected words)}."""
    text = os.path.join(folder, "README.md")
    with open(text, "w") as file:
        file.write("# not a checkpoint\n")
    pickled = os.path.join(folder, "whole_model.pt")
    torch.save(torch.nn.Linear(2, 2), pickled)
    other = os.path.join(folder, "linear.pt")
    torch.save(torch.nn.Linear(2, 2).state_dict(), other)
    return {"text": (text, "is corrupt or not a PyTorch file"),
            "pickled module": (pickled, "holds Python objects besides tensors"),
            "other state_dict": (other, "not a fasthg run, princeton-vl's checkpoint.pt or any PoseNet's weights")}
