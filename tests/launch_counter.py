"""Counting the aten ops of a call that would each launch a GPU kernel."""
import torch


class LaunchCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts aten ops that would launch a GPU kernel (allocation and view ops launch none)."""
    FREE = {"empty", "empty_strided", "empty_like", "view", "_unsafe_view", "split", "split_with_sizes",
            "permute", "as_strided", "detach", "alias", "t", "transpose", "unsqueeze", "squeeze", "expand",
            "new_empty", "new_empty_strided", "clone_noop"}

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in self.FREE and func.namespace != "fasthg":  # fasthg ops: their Triton launches count
            self.ops.append(name)
        return func(*args, **(kwargs or {}))
