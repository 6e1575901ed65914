"""The fused pre-activation bottleneck ``fasthg::residual_forward`` / ``fasthg::residual_backward``.

out = conv3(relu(bn3(y2))) + skip(x),  y2 = conv2(relu(bn2(y1))),  y1 = conv1(relu(bn1(x)))
      (+ nearest_x2(upsampled))

``upsampled`` (half x's height and width, an identity skip only) is how :class:`fasthg.Hourglass`
adds its inner branch to up1 in conv3's epilogue: neither up1's output nor the sum takes a pass of
its own. Its gradient is the 2x2 sum-pool of dL/dout (one more launch in the backward).

Forward in training: x's statistics (1 launch, unless the op that wrote x reduced them in its
epilogue and passes them as ``x_stats``: :mod:`fasthg.ops.statistics`), conv1 with bn1-ReLU
prologue and y1's statistics in its epilogue, conv2 likewise, conv3 joined with the skip conv (or
adding x): 3 or 4 launches, and no BN or ReLU output is ever stored. Given the running statistics
of the BN that normalises out next, conv3's epilogue reduces out's statistics for it too
(into ``out_stats``). In eval, the prologues read the running statistics: 3 launches and nothing else
(the op's ``x_stats`` and ``stats`` are then empty).
Saved for backward: x, y1, y2 and the statistics (x's: mean and biased var; ``stats``: those of
y1 and y2; in eval a copy of the running statistics, made only while autograd records).

Backward (BatchNorm's gradient needs two channel sums of g = dL/d bn(.) after the ReLU mask;
each dgrad produces them in its epilogue and the next kernels apply them in their prologues):

    wgrad3 (+ skip wgrad) | dgrad3 -> g3, sums3       one launch each line
    [skip dgrad]
    wgrad2 | dgrad2 -> g2, sums2      (dz2 rebuilt from g3, y2, sums3 in the prologue)
    wgrad1 | dgrad1 -> sums1          (dz1 rebuilt from g2, y1, sums2; g1 not stored)
    dgrad1 again -> dx = bn1 backward of g1 + (dL/dout or the skip's dgrad) (+ dL/d of x's pass-through)

conv1's dgrad runs twice rather than storing g1 (C_in channels) for a separate BN-backward pass
to read back: the second launch reads g2 and y1 (C_mid channels each, half of C_in in the
hourglass) again instead, one pass of x's size less in all, for one more 1x1 dgrad GEMM.

In a container (:class:`fasthg.Hourglass`), x also feeds another fused op: the Function then returns
x itself as a second output (``pass_input``), an alias through which autograd hands the other
consumers' gradient of x to this backward, which adds it in the dx kernel instead of autograd
adding two gradients in a separate pass. The alias is made by the autograd.Function, not the
custom ops (under torch.compile an op may not return an alias of its input).
"""
from typing import List, Optional, Tuple

import torch

from .launch import accumulation_dtype, channels_last, empty_nhwc, eval_statistics
from .conv_launchers import (BackwardSums, BatchNormBackward, BatchNormState, channel_stats, conv_backward,
                             conv_forward)
from .statistics import BatchStatistics, NextBatchNorm, chain_result, new_statistics, statistics_for
from .upsample_add import upsampled_grad

KERNEL_LAUNCHES = {"forward_train": 4, "forward_train_given_stats": 3, "forward_eval": 3, "backward": 4,
                   "backward_skip": 5}


def _split_stats(x_stats, stats):
    """Views (mean, var) of x, y1 and y2 into x's statistics and the buffer of y1's and y2's."""
    mean2, var2, mean3, var3 = stats.chunk(4)
    return [tuple(x_stats.chunk(2)), (mean2, var2), (mean3, var3)]


def _backward_sums(buffer, channels):
    """Per BN, views (sum(g), sum(g * xhat)) into ``buffer``: all sum(g * xhat) first, then all sum(g)."""
    weight_grads, bias_grads = buffer.split(sum(channels))
    return [BackwardSums(*pair) for pair in zip(bias_grads.split(channels), weight_grads.split(channels))]


# Running statistics are separate arguments, not lists: functionalization (torch.compile)
# handles mutated tensor arguments but not mutated tensor lists.
_RUNNING = ("running_mean1", "running_var1", "running_mean2", "running_var2", "running_mean3", "running_var3",
            "out_stats", "next_running_mean", "next_running_var")


@torch.library.custom_op("fasthg::residual_forward", mutates_args=_RUNNING)
def residual_forward(
    x: torch.Tensor, bn_weights: List[torch.Tensor], bn_biases: List[torch.Tensor],
    running_mean1: torch.Tensor, running_var1: torch.Tensor, running_mean2: torch.Tensor,
    running_var2: torch.Tensor, running_mean3: torch.Tensor, running_var3: torch.Tensor,
    conv_weights: List[torch.Tensor], conv_biases: List[torch.Tensor],
    skip_weight: Optional[torch.Tensor], skip_bias: Optional[torch.Tensor],
    training: bool, momentum: float, eps: float, x_stats: Optional[torch.Tensor] = None,
    out_stats: Optional[torch.Tensor] = None, next_running_mean: Optional[torch.Tensor] = None,
    next_running_var: Optional[torch.Tensor] = None, next_momentum: float = 0.0,
    upsampled: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (out, y1, y2, own_x_stats, stats); all activations NHWC (channels_last).

    ``x_stats`` (training only): x's batch mean and biased var, end to end, reduced by the op that
    wrote x, which also updated bn1's running statistics; ``own_x_stats`` is then empty, else
    the statistics this op reduced. ``out_stats`` (given or None) receives out's, for the BN whose
    running statistics ``next_running_*`` are (updated with ``next_momentum``).
    """
    running_means = (running_mean1, running_mean2, running_mean3)
    running_vars = (running_var1, running_var2, running_var3)
    x = channels_last(x)
    n, c_in, h, w = x.shape
    mid, c_out = conv_weights[0].shape[0], conv_weights[2].shape[0]
    y1, y2, out = empty_nhwc(n, mid, h, w, x), empty_nhwc(n, mid, h, w, x), empty_nhwc(n, c_out, h, w, x)
    stats_dtype = accumulation_dtype(x.dtype)
    own_x_stats = x.new_empty(0 if x_stats is not None or not training else 2 * c_in, dtype=stats_dtype)
    if training:
        stats = torch.empty(4 * mid, dtype=stats_dtype, device=x.device)
        per_bn = _split_stats(x_stats if x_stats is not None else own_x_stats, stats)
        batch = [BatchStatistics(*per_bn[i], running_means[i], running_vars[i]) for i in range(3)]
        if x_stats is None:
            channel_stats(x, batch[0], momentum)
    else:
        stats = x.new_empty(0, dtype=stats_dtype)
        per_bn = list(zip(running_means, running_vars))  # the kernels widen them as they load them
        batch = [None, None, None]
    bns = [BatchNormState(*per_bn[i], bn_weights[i], bn_biases[i]) for i in range(3)]
    conv_forward(x, bns[0], conv_weights[0], conv_biases[0], y1, eps, out_stats=batch[1], momentum=momentum)
    conv_forward(y1, bns[1], conv_weights[1], conv_biases[1], y2, eps, out_stats=batch[2], momentum=momentum)
    joined = dict(skip=(x, skip_weight, skip_bias)) if skip_weight is not None else dict(residual=x)
    if upsampled is not None:
        joined.update(upsampled=channels_last(upsampled))
    conv_forward(y2, bns[2], conv_weights[2], conv_biases[2], out, eps, **joined,
                 out_stats=statistics_for(out_stats, next_running_mean, next_running_var), momentum=next_momentum)
    return out, y1, y2, own_x_stats, stats


@residual_forward.register_fake
def _(x, bn_weights, bn_biases, rm1, rv1, rm2, rv2, rm3, rv3, conv_weights, conv_biases, skip_weight, skip_bias,
      training, momentum, eps, x_stats=None, out_stats=None, next_running_mean=None, next_running_var=None,
      next_momentum=0.0, upsampled=None):
    n, c_in, h, w = x.shape
    mid, c_out = conv_weights[0].shape[0], conv_weights[2].shape[0]
    dtype = accumulation_dtype(x.dtype)
    own_x_stats = x.new_empty(2 * c_in if training and x_stats is None else 0, dtype=dtype)
    stats = x.new_empty(4 * mid if training else 0, dtype=dtype)
    return empty_nhwc(n, c_out, h, w, x), empty_nhwc(n, mid, h, w, x), empty_nhwc(n, mid, h, w, x), own_x_stats, stats


@torch.library.custom_op("fasthg::residual_backward", mutates_args=())
def residual_backward(
    grad: torch.Tensor, x: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor, x_stats: torch.Tensor,
    stats: torch.Tensor, bn_weights: List[torch.Tensor], bn_biases: List[torch.Tensor], conv_weights: List[torch.Tensor],
    skip_weight: Optional[torch.Tensor], training: bool, eps: float, through: Optional[torch.Tensor] = None,
) -> List[torch.Tensor]:
    """Returns [dx, bn_grads, d conv_weight x3, d conv_bias x3, (d skip_weight, d skip_bias)].

    ``through`` (given or None): the gradient of x from its other consumers, added to dx.

    bn_grads: the six BN parameter gradients (d weight of bn1..3, then d bias of bn1..3) end to end
    in one tensor of the BN parameters' dtype (:class:`ResidualFunction` splits it into views; custom
    op outputs may not alias each other). The dgrad epilogues write them there as they write the
    accumulation-dtype sums the next kernels centre with: no conversion launch.
    """
    grad, x = channels_last(grad), channels_last(x)
    n, c_in, h, w = x.shape
    mid = y1.shape[1]
    acc = stats.dtype
    per_bn = _split_stats(x_stats, stats)
    bns = [BatchNormState(*per_bn[i], bn_weights[i], bn_biases[i]) for i in range(3)]  # widened as loaded
    channels = (c_in, mid, mid)
    bn_grads = torch.empty(2 * sum(channels), dtype=bn_weights[0].dtype, device=x.device)
    sums = _backward_sums(bn_grads if bn_grads.dtype == acc else torch.empty_like(bn_grads, dtype=acc), channels)
    bn_param_grads = _backward_sums(bn_grads, channels)
    # In eval, BN's statistics are constants: g passes through scaled, without the centring sums.
    centring = sums if training else [BackwardSums(torch.zeros_like(s.grad), torch.zeros_like(s.grad)) for s in sums]
    dweights = [torch.empty_like(wt) for wt in conv_weights]  # the weights' layout: autograd keeps them as they are
    dbiases = [wt.new_empty(wt.shape[0]) for wt in conv_weights]  # stored in the weights' dtype by the kernels
    skip_dweight, skip_dbias = (torch.empty_like(skip_weight), skip_weight.new_empty(skip_weight.shape[0])) \
        if skip_weight is not None else (None, None)

    g3 = empty_nhwc(n, mid, h, w, x)
    conv_backward(grad, eps, y=y2, bn=bns[2], weight=conv_weights[2], dgrad_out=g3, sums_out=sums[2],
                  bn_grads_out=bn_param_grads[2], dweight=dweights[2], dbias=dbiases[2],
                  skip_x=x if skip_weight is not None else None, skip_dweight=skip_dweight,
                  skip_dbias=skip_dbias)
    skip_grad = grad
    if skip_weight is not None:
        skip_grad = empty_nhwc(n, c_in, h, w, x)
        conv_backward(grad, eps, weight=skip_weight, dgrad_out=skip_grad)

    g2 = empty_nhwc(n, mid, h, w, x)
    conv_backward(g3, eps, grad_bn=(y2, bns[2], centring[2]), y=y1, bn=bns[1], weight=conv_weights[1],
                  dgrad_out=g2, sums_out=sums[1], bn_grads_out=bn_param_grads[1], dweight=dweights[1],
                  dbias=dbiases[1])
    dgrad1 = dict(grad_bn=(y1, bns[1], centring[1]), y=x, bn=bns[0], weight=conv_weights[0])
    conv_backward(g2, eps, **dgrad1, sums_out=sums[0], bn_grads_out=bn_param_grads[0], dweight=dweights[0],
                  dbias=dbiases[0])
    dx = empty_nhwc(n, c_in, h, w, x)
    through = channels_last(through) if through is not None else None
    conv_backward(g2, eps, **dgrad1, dgrad_out=dx, finish_bn=BatchNormBackward(centring[0], skip_grad, through))
    grads = [dx, bn_grads]
    grads += dweights
    grads += dbiases
    if skip_weight is not None:
        grads += [skip_dweight, skip_dbias]
    return grads


@residual_backward.register_fake
def _(grad, x, y1, y2, x_stats, stats, bn_weights, bn_biases, conv_weights, skip_weight, training, eps, through=None):
    bn_numel = 2 * sum(t.shape[0] for t in bn_weights)
    grads = [torch.empty_like(x, memory_format=torch.channels_last), bn_weights[0].new_empty(bn_numel)]
    grads += [torch.empty_like(t) for t in conv_weights] + [t.new_empty(t.shape[0]) for t in conv_weights]
    if skip_weight is not None:
        grads += [torch.empty_like(skip_weight), skip_weight.new_empty(skip_weight.shape[0])]
    return grads


class ResidualFunction(torch.autograd.Function):
    """Autograd for the fused bottleneck: the forward op mutates the running statistics, which
    torch.library's register_autograd does not allow, so the pairing of the two ops lives here.
    With ``pass_input`` it returns (out, x): see the module docstring."""

    @staticmethod
    def forward(ctx, x, upsampled, x_stats, out_stats, next_bn, training, recording, momentum, eps, pass_input,
                skip_weight, skip_bias, running_means, running_vars, *params):
        bn_weights, bn_biases, conv_weights, conv_biases = params[0:3], params[3:6], params[6:9], params[9:12]
        running = [t for pair in zip(running_means, running_vars) for t in pair]
        next_running_mean, next_running_var, next_momentum = next_bn or (None, None, 0.0)
        out, y1, y2, own_x_stats, stats = residual_forward(
            x, bn_weights, bn_biases, *running, conv_weights, conv_biases, skip_weight, skip_bias, training, momentum,
            eps, x_stats, out_stats, next_running_mean, next_running_var, next_momentum, upsampled)
        x_stats = x_stats if x_stats is not None else own_x_stats
        if not training and recording:
            x_stats, stats = eval_statistics(running, stats.dtype).split([2 * x.shape[1], 4 * y1.shape[1]])
        ctx.save_for_backward(x, y1, y2, x_stats, stats, *bn_weights, *bn_biases, *conv_weights,
                              *([skip_weight] if skip_weight is not None else []))
        ctx.has_skip, ctx.has_upsampled, ctx.training, ctx.eps = skip_weight is not None, upsampled is not None, \
            training, eps
        if not pass_input:
            return out
        ctx.set_materialize_grads(False)  # an unused pass-through adds nothing
        return out, x

    @staticmethod
    def backward(ctx, grad_out, grad_through=None):
        x, y1, y2, x_stats, stats, *params = ctx.saved_tensors
        bn_weights, bn_biases, conv_weights = params[0:3], params[3:6], params[6:9]
        skip_weight = params[9] if ctx.has_skip else None
        grad_upsampled = upsampled_grad(grad_out) if ctx.has_upsampled and grad_out is not None else None
        if grad_out is None:  # only the pass-through reached the loss: out's gradient is zero
            grad_out = x.new_zeros(x.shape[0], conv_weights[2].shape[0], *x.shape[2:])
        grads = residual_backward(grad_out, x, y1, y2, x_stats, stats, bn_weights, bn_biases, conv_weights,
                                  skip_weight, ctx.training, ctx.eps, grad_through)
        dx, bn_grads, conv_grads = grads[0], grads[1], grads[2:8]
        channels = [t.shape[0] for t in bn_weights]
        bn_param_grads = bn_grads.split(channels + channels)
        d_skip_w, d_skip_b = (grads[8], grads[9]) if ctx.has_skip else (None, None)
        # bn1's backward (in dx) covers x's statistics, wherever they were reduced: x_stats gets none.
        return (dx, grad_upsampled, None, None, None, None, None, None, None, None, d_skip_w, d_skip_b, None, None,
                *bn_param_grads, *conv_grads)


def residual(x, bn_weights, bn_biases, running_means, running_vars, conv_weights, conv_biases,
             skip_weight, skip_bias, training, momentum, eps, x_stats=None, next_bn: Optional[NextBatchNorm] = None,
             pass_input=False, upsampled=None):
    """The fused bottleneck with autograd; see the module docstring. Returns out (NHWC), or with
    ``next_bn`` (out, stats of out for it), reduced in conv3's epilogue (:mod:`fasthg.ops.statistics`).
    ``x_stats``: x's batch statistics from the op that wrote x (training only), or None.
    With ``pass_input``: (out, stats or None, x's pass-through), whose gradient backward adds to dx.
    ``upsampled``: a tensor of half x's size, nearest-upsampled and added to out (identity skip only)."""
    out_stats = new_statistics(conv_weights[2].shape[0], x, next_bn)
    outputs = ResidualFunction.apply(x, upsampled, x_stats, out_stats, next_bn, training, torch.is_grad_enabled(),
                                     momentum, eps, pass_input, skip_weight, skip_bias, list(running_means),
                                     list(running_vars), *bn_weights, *bn_biases, *conv_weights, *conv_biases)
    out, through = outputs if pass_input else (outputs, None)
    return chain_result(out, out_stats, through, next_bn, pass_input)
