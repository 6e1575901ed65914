"""The stack head of the hourglass network, fused: ``fasthg::head_forward`` / ``fasthg::head_backward``.

After each hourglass and its features Residual (output h)::

    z = conv_f(h)                       1x1, with the batch statistics of z in its epilogue
    feature = relu(bn(z))               never stored: the two convs below apply it in their prologue
    preds = conv_o(feature)             the stack's heatmaps
    x_next = x + conv_mp(preds) + conv_mf(feature)    one GEMM over concatenated K [feature | preds],
                                                      x added in the epilogue (not on the last stack),
                                                      and in a model x_next's statistics for the next
                                                      hourglass's first BN (fasthg.ops.statistics)

Saved for backward: h, z, preds and z's statistics; PyTorch would also keep ``feature``.

Backward, given dL/dpreds and dL/dx_next (= dL/dx, passed through by autograd). preds feeds the
merge too, so its whole gradient is dp = dL/dpreds + dL/dx_next w_mp (1x1 weights as matrices
[C_out, C_in]). Two launches::

    wgrad conv_mf and conv_mp (over preds) |
        g = dgrad over [dx_next | dp] x [w_mf ; w_o] with the ReLU mask and BN sums: concatenated K
        read from the two gradients (no cat in memory), dp completed per tile from dL/dpreds and the
        dx_next tile it reads anyway (COMPLETE_GRAD2), and written once for the launch below
    wgrad conv_f and conv_o (over relu(bn(z)), WGRAD2) | dgrad conv_f, with dz = BN backward of g in
        their prologues

so dL/dx_next is read once (by the first launch) and z once per launch. On the last stack (no
merge) the first launch is the dgrad over dL/dpreds alone. (Moving w_mp onto the weights instead,
w' = w_mf + w_mp w_o and dw_o += w_mp^T dw_mf, would spare forming dp but turns a non-finite
feature's inf into NaN where PyTorch keeps it: tests/test_numerics.py.)
"""
from typing import List, Optional, Tuple

import torch

from .launch import accumulation_dtype, channels_last, empty_nhwc, eval_statistics
from .conv_launchers import BackwardSums, BatchNormState, conv_backward, conv_forward
from .statistics import BatchStatistics, NextBatchNorm, new_statistics, statistics_for

KERNEL_LAUNCHES = {"forward": 3, "forward_last": 2, "backward": 2, "backward_last": 2}


@torch.library.custom_op("fasthg::head_forward",
                         mutates_args=("running_mean", "running_var", "next_stats", "next_running_mean", "next_running_var"))
def head_forward(
    h: torch.Tensor, x: Optional[torch.Tensor],
    conv_weight: torch.Tensor, conv_bias: torch.Tensor, bn_weight: torch.Tensor, bn_bias: torch.Tensor,
    running_mean: torch.Tensor, running_var: torch.Tensor, out_weight: torch.Tensor, out_bias: torch.Tensor,
    merge_feature_weight: Optional[torch.Tensor], merge_feature_bias: Optional[torch.Tensor],
    merge_pred_weight: Optional[torch.Tensor], merge_pred_bias: Optional[torch.Tensor],
    training: bool, momentum: float, eps: float, next_stats: Optional[torch.Tensor] = None,
    next_running_mean: Optional[torch.Tensor] = None, next_running_var: Optional[torch.Tensor] = None,
    next_momentum: float = 0.0,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (preds, x_next, z, stats); x_next is empty on the last stack (no merge).

    ``next_stats`` (given or None) receives x_next's batch mean and biased var, for the BN whose
    running statistics ``next_running_*`` are (updated with ``next_momentum``).
    """
    h = channels_last(h)
    n, c, height, width = h.shape
    z = empty_nhwc(n, conv_weight.shape[0], height, width, h)
    preds = empty_nhwc(n, out_weight.shape[0], height, width, h)
    if training:
        stats = torch.empty(2 * z.shape[1], dtype=accumulation_dtype(h.dtype), device=h.device)
        mean, var = stats.chunk(2)
        conv_forward(h, None, conv_weight, conv_bias, z, eps, out_stats=BatchStatistics(mean, var, running_mean, running_var),
                     momentum=momentum)
    else:  # the prologues read the running statistics; stats stays empty
        stats = h.new_empty(0, dtype=accumulation_dtype(h.dtype))
        mean, var = running_mean, running_var
        conv_forward(h, None, conv_weight, conv_bias, z, eps)
    bn = BatchNormState(mean, var, bn_weight, bn_bias)
    conv_forward(z, bn, out_weight, out_bias, preds, eps)
    x_next = h.new_empty(0)
    if merge_feature_weight is not None:
        x_next = empty_nhwc(*x.shape, like=h)
        conv_forward(z, bn, merge_feature_weight, merge_feature_bias, x_next, eps,
                     skip=(preds, merge_pred_weight, merge_pred_bias), residual=channels_last(x),
                     out_stats=statistics_for(next_stats, next_running_mean, next_running_var), momentum=next_momentum)
    return preds, x_next, z, stats


@head_forward.register_fake
def _(h, x, conv_weight, conv_bias, bn_weight, bn_bias, running_mean, running_var, out_weight, out_bias,
      merge_feature_weight, merge_feature_bias, merge_pred_weight, merge_pred_bias, training, momentum, eps,
      next_stats=None, next_running_mean=None, next_running_var=None, next_momentum=0.0):
    n, c, height, width = h.shape
    x_next = empty_nhwc(*x.shape, like=h) if merge_feature_weight is not None else h.new_empty(0)
    return (empty_nhwc(n, out_weight.shape[0], height, width, h), x_next,
            empty_nhwc(n, conv_weight.shape[0], height, width, h),
            h.new_empty(2 * conv_weight.shape[0] if training else 0, dtype=accumulation_dtype(h.dtype)))


@torch.library.custom_op("fasthg::head_backward", mutates_args=())
def head_backward(
    grad_preds: torch.Tensor, grad_x_next: Optional[torch.Tensor], h: torch.Tensor, z: torch.Tensor,
    preds: torch.Tensor, stats: torch.Tensor, conv_weight: torch.Tensor, bn_weight: torch.Tensor,
    bn_bias: torch.Tensor, out_weight: torch.Tensor, merge_feature_weight: Optional[torch.Tensor],
    merge_pred_weight: Optional[torch.Tensor], training: bool, eps: float,
) -> List[torch.Tensor]:
    """[dh, d conv_weight, d conv_bias, d bn_weight, d bn_bias, d out_weight, d out_bias,
    (d merge_feature_weight, d merge_feature_bias, d merge_pred_weight, d merge_pred_bias)]."""
    acc = stats.dtype
    mean, var = stats.chunk(2)
    bn = BatchNormState(mean, var, bn_weight, bn_bias)  # the kernels widen BN parameters as they load them
    grad_preds, h = channels_last(grad_preds), channels_last(h)
    merged = merge_feature_weight is not None
    # Bias gradients are written in the weights' dtype by the kernels (one rounding of an fp32 sum).
    bias_grad = lambda weight: weight.new_empty(weight.shape[0])  # noqa: E731
    d_out, d_out_bias = out_weight.new_empty(out_weight.shape), bias_grad(out_weight)
    g = torch.empty_like(z)
    # BN's backward sums in the accumulation dtype, and again in the parameters' (their gradients).
    bn_grads = BackwardSums(torch.empty_like(bn_bias), torch.empty_like(bn_weight))
    sums = bn_grads if bn_weight.dtype == bn_bias.dtype == acc else \
        BackwardSums(*(torch.empty_like(t, dtype=acc) for t in bn_grads))
    features = dict(y=z, bn=bn, dgrad_out=g, sums_out=sums, bn_grads_out=bn_grads)
    merge_grads = []
    if merged:
        grad_x_next = channels_last(grad_x_next)
        d_mf, d_mf_bias = merge_feature_weight.new_empty(merge_feature_weight.shape), bias_grad(merge_feature_weight)
        d_mp, d_mp_bias = merge_pred_weight.new_empty(merge_pred_weight.shape), bias_grad(merge_pred_weight)
        grad_preds_whole = torch.empty_like(grad_preds)
        # x_next = ... + conv_mf + conv_mp: the kernel writes sum(dL/dx_next) as both biases' gradient.
        conv_backward(grad_x_next, eps, **features, weight=merge_feature_weight, second=(grad_preds, out_weight),
                      complete_second=(merge_pred_weight, grad_preds_whole), dweight=d_mf, dbias=d_mf_bias,
                      skip_x=preds, skip_dweight=d_mp, skip_dbias=d_mp_bias)
        grad_preds = grad_preds_whole
        merge_grads = [d_mf, d_mf_bias, d_mp, d_mp_bias]
    else:
        conv_backward(grad_preds, eps, **features, weight=out_weight)
    centring = sums if training else BackwardSums(torch.zeros_like(sums.grad), torch.zeros_like(sums.grad))

    d_conv, d_conv_bias, d_h = conv_weight.new_empty(conv_weight.shape), bias_grad(conv_weight), torch.empty_like(h)
    conv_backward(g, eps, grad_bn=(z, bn, centring), y=h, weight=conv_weight, dgrad_out=d_h,
                  dweight=d_conv, dbias=d_conv_bias, second_wgrad=(grad_preds, d_out, d_out_bias))
    return [d_h, d_conv, d_conv_bias, bn_grads.grad_xhat, bn_grads.grad, d_out, d_out_bias, *merge_grads]


@head_backward.register_fake
def _(grad_preds, grad_x_next, h, z, preds, stats, conv_weight, bn_weight, bn_bias, out_weight,
      merge_feature_weight, merge_pred_weight, training, eps):
    grads = [torch.empty_like(h, memory_format=torch.channels_last)]
    grads += [conv_weight.new_empty(conv_weight.shape), conv_weight.new_empty(conv_weight.shape[0]),
              torch.empty_like(bn_weight), torch.empty_like(bn_bias),
              out_weight.new_empty(out_weight.shape), out_weight.new_empty(out_weight.shape[0])]
    if merge_feature_weight is not None:
        grads += [merge_feature_weight.new_empty(merge_feature_weight.shape), merge_feature_weight.new_empty(merge_feature_weight.shape[0]),
                  merge_pred_weight.new_empty(merge_pred_weight.shape), merge_pred_weight.new_empty(merge_pred_weight.shape[0])]
    return grads


class HeadFunction(torch.autograd.Function):
    """Autograd for the fused head (the forward op mutates running statistics)."""

    @staticmethod
    def forward(ctx, h, x, next_stats, next_bn, training, recording, momentum, eps, running_mean, running_var, *params):
        preds, x_next, z, stats = head_forward(h, x, *params[:4], running_mean, running_var, *params[4:], training,
                                               momentum, eps, next_stats, *(next_bn or (None, None, 0.0)))
        conv_weight, _, bn_weight, bn_bias, out_weight, _, mf_weight, _, mp_weight, _ = params
        if not training and recording:
            stats = eval_statistics([running_mean, running_var], stats.dtype)
        ctx.save_for_backward(h, z, preds, stats, conv_weight, bn_weight, bn_bias, out_weight, mf_weight, mp_weight)
        ctx.training, ctx.eps, ctx.merged = training, eps, mf_weight is not None
        return preds, x_next

    @staticmethod
    def backward(ctx, grad_preds, grad_x_next):
        h, z, preds, stats, conv_weight, bn_weight, bn_bias, out_weight, mf_weight, mp_weight = ctx.saved_tensors
        grads = head_backward(grad_preds, grad_x_next if ctx.merged else None, h, z, preds, stats, conv_weight,
                              bn_weight, bn_bias, out_weight, mf_weight, mp_weight, ctx.training, ctx.eps)
        d_h, d_conv, d_conv_bias, d_bn_weight, d_bn_bias, d_out, d_out_bias = grads[:7]
        merge = grads[7:] if ctx.merged else [None] * 4
        d_x = grad_x_next if ctx.merged else None  # x_next = x + ...
        return (d_h, d_x, None, None, None, None, None, None, None, None,
                d_conv, d_conv_bias, d_bn_weight, d_bn_bias, d_out, d_out_bias, *merge)


def head(h, x, conv, bn, out, merge_feature, merge_pred, training, momentum, dtype,
         next_bn: Optional[NextBatchNorm] = None):
    """(preds, x_next, next_stats) of a stack in ``dtype``; ``merge_feature``/``merge_pred`` (nn.Conv2d)
    None on the last stack. ``next_stats``: x_next's statistics for ``next_bn`` (the next hourglass's
    first BN), reduced in the merge's epilogue, which also updates its running statistics; None
    without ``next_bn``.

    Conv weights are cast to ``dtype`` (as autocast does for a conv); BN parameters stay as they are.
    """
    merged = merge_feature is not None
    merge = [merge_feature.weight.to(dtype), merge_feature.bias, merge_pred.weight.to(dtype), merge_pred.bias] if merged else [None] * 4
    h = h.to(dtype)
    next_stats = new_statistics(conv.weight.shape[0], h, next_bn)
    preds, x_next = HeadFunction.apply(h, x.to(dtype) if merged else None, next_stats, next_bn, training,
                                       torch.is_grad_enabled(), momentum, bn.eps, bn.running_mean, bn.running_var,
                                       conv.weight.to(dtype), conv.bias, bn.weight, bn.bias, out.weight.to(dtype),
                                       out.bias, *merge)
    return preds, x_next, next_stats
