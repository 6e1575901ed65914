"""Bytes and FLOPs of one kernel: a model read off the kernels' code.

Bytes are the tensors a kernel touches, each counted once per pass over it (inputs read, outputs
written), as if every re-read across tiles (a GEMM's A operand per column tile, a 3x3 conv's nine
taps) hit in cache: the traffic to HBM in the best case, the same rule for fasthg's Triton kernels
and for eager PyTorch's aten ops. FLOPs count multiply-adds of convolutions and GEMMs as 2 each;
elementwise work counts 0 (it is memory-bound), as in ``torch.utils.flop_counter``.

Launchers pass None for the pointer parameters that a kernel variant's constexpr flags leave unused
(``fasthg.kernels.registry.CONDITIONAL_PARAMETERS``), so a pointer counts when it is given:
:data:`TRITON_TRAFFIC` lists each pointer parameter with the passes over it. The per-tile partials
of the reductions that programs share (statistics, BN's backward sums, split-K weight gradients) are
written and read back up their reduction tree (2 passes over the whole tree buffer); running
statistics are read and written (2). Arrival counters (a few bytes per column tile) are left out.
"""
import torch
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry

_BN = ("mean_ptr", "var_ptr", "bn_weight_ptr", "bn_bias_ptr")
_Y_BN = ("y_mean_ptr", "y_var_ptr", "y_weight_ptr", "y_bias_ptr")
_Z_BN = ("z_ptr", "z_mean_ptr", "z_var_ptr", "z_weight_ptr", "z_bias_ptr", "z_sum_grad_ptr", "z_sum_grad_xhat_ptr")
# The statistics of an output for the BN that normalises it next (STATS of upsample-add and max-pool)
_OUT_STATS = [(("mean_ptr", "var_ptr"), 1), (("part_mean_ptr", "part_m2_ptr", "running_mean_ptr", "running_var_ptr"), 2)]

# kernel: [(pointer parameters, passes over each when given)]
TRITON_TRAFFIC = {
    "conv_forward_kernel": [
        (("y_ptr", "w_ptr", "bias_ptr", "out_ptr", *_BN, "skip_x_ptr", "skip_w_ptr", "skip_bias_ptr", "residual_ptr",
          "upsampled_ptr", "out_mean_ptr", "out_var_ptr"), 1),
        (("part_mean_ptr", "part_m2_ptr", "running_mean_ptr", "running_var_ptr"), 2),
    ],
    "conv_backward_kernel": [
        (("grad_ptr", *_Z_BN, "y_ptr", *_Y_BN, "w_ptr", "grad2_ptr", "w2_ptr", "w3_ptr", "grad2_out_ptr", "out_ptr", "sum_grad_ptr", "sum_grad_xhat_ptr",
          "bn_dbias_ptr", "bn_dweight_ptr", "extra_ptr", "through_ptr", "dw_ptr", "dbias_ptr", "skip_x_ptr",
          "skip_dw_ptr", "skip_dbias_ptr", "dw2_ptr", "dbias2_ptr"), 1),
        (("part_first_ptr", "part_second_ptr", "part_dw_ptr", "part_dbias_ptr"), 2),
    ],
    "channel_stats_kernel": [
        (("x_ptr", "mean_ptr", "var_ptr"), 1),
        (("part_mean_ptr", "part_m2_ptr", "running_mean_ptr", "running_var_ptr"), 2),
    ],
    "upsample_add_forward_kernel": [(("low_ptr", "skip_ptr", "out_ptr"), 1), *_OUT_STATS],
    "upsample_add_backward_kernel": [(("grad_ptr", "grad_low_ptr"), 1)],
    "max_pool2x2_forward_kernel": [(("x_ptr", "out_ptr", "index_ptr"), 1), *_OUT_STATS],
    "max_pool2x2_backward_kernel": [(("grad_ptr", "index_ptr", "through_ptr", "grad_x_ptr"), 1)],
    # visibility and the loss gradient may be empty placeholders (0 bytes) when unused
    "render_heatmaps_kernel": [(("keypoints_ptr", "visible_ptr", "out_ptr"), 1)],
    "heatmap_loss_kernel": [(("preds_ptr", "keypoints_ptr", "visible_ptr", "grad_ptr", "partial_ptr"), 1)],
    "decode_heatmaps_kernel": [(("heatmaps_ptr", "coords_ptr", "peaks_ptr"), 1)],
}
UNCOUNTED_POINTERS = {"counter_ptr", "wgrad_counter_ptr"}


def tensor_bytes(tensor):
    """Bytes of the elements a tensor addresses (a broadcast dimension, stride 0, counts once)."""
    elements = 1
    for size, stride in zip(tensor.shape, tensor.stride()):
        elements *= size if stride else 1
    return elements * tensor.element_size()


def _identity(tensor):
    return tensor.untyped_storage()._cdata, tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride())


def distinct_bytes(passes_by_tensor):
    """Total bytes of (tensor, passes) pairs, a tensor given twice counting once with its most passes."""
    most = {}
    for tensor, passes in passes_by_tensor:
        key = _identity(tensor)
        most[key] = max(most.get(key, (0, tensor))[0], passes), tensor
    return sum(passes * tensor_bytes(tensor) for passes, tensor in most.values())


def triton_bytes(kernel, arguments):
    """Bytes one launch of ``kernel`` moves, given all its arguments by name (constexprs included)."""
    touched = [(arguments[name], passes) for names, passes in TRITON_TRAFFIC[kernel] for name in names
               if arguments[name] is not None]
    return distinct_bytes(touched)


def triton_flops(kernel, arguments):
    """2 x the multiply-adds of a conv kernel's GEMMs (dgrad over its K of C_out (+ C_out2) channels,
    with COMPLETE_GRAD2 grad2's completion from C_out channels as each dgrad column tile runs it,
    wgrad (+ WGRAD2's over C_out2 rows and C_out columns) and the joined skip conv); 0 for the others."""
    a = arguments
    if kernel not in ("conv_forward_kernel", "conv_backward_kernel"):
        return 0
    rows, taps = a["N"] * a["H"] * a["W"], a["KSIZE"] ** 2
    skip = a["C_skip"] if a["HAS_SKIP"] else 0
    if kernel == "conv_forward_kernel":
        return 2 * rows * a["C_out"] * (a["C_in"] * taps + skip)
    dgrad = 0
    if a["DGRAD"]:
        dgrad = a["C_dgrad"] * taps * (a["C_out"] + (a["C_out2"] if a["SECOND_GRAD"] else 0))
        if a["COMPLETE_GRAD2"]:
            dgrad += -(-a["C_dgrad"] // a["BLOCK_N"]) * a["C_out2"] * a["C_out"]
    wgrad = (a["C_out"] * (a["C_wgrad"] * taps + skip) + (a["C_out2"] * a["C_out"] if a["WGRAD2"] else 0)
             if a["WGRAD"] else 0)
    return 2 * rows * (dgrad + wgrad)


def aten_bytes(args, kwargs, out):
    """Bytes of an aten op: every tensor argument read once, every tensor result written once."""
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    results = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
    return distinct_bytes((t, 1) for t in tensors) + distinct_bytes((t, 1) for t in results)


def aten_flops(func, args, kwargs, out):
    """FLOPs of an aten op by ``torch.utils.flop_counter``'s formulas (convolutions and GEMMs, forward and backward)."""
    formula = flop_registry.get(func.overloadpacket)
    return int(formula(*args, **kwargs, out_val=out)) if formula is not None else 0
