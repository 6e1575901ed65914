"""Implicit-GEMM convolutions of the pre-activation bottleneck, with BN-ReLU fused in.

Layouts: activations are NHWC, addressed as matrices [M, C] with M = N * H * W rows (row
stride C); a weight w[o, c, kh, kw] (and its gradient) is addressed through its four strides, so
any PyTorch layout works. fasthg's modules keep 3x3 weights channels_last ([C_out, K, K, C_in] in
memory): then stride_c = 1, which the JIT specialises, and the weight tiles of the forward
(contiguous along K = C_in) and of dgrad (contiguous along N = C_in) load as vectors. Offsets
are int32 (the launchers reject tensors of 2^31 elements or more): 64-bit address tiles would
double the registers the operand loads take. K is 1 or 3 (stride 1, padding K // 2). A unit of the
bottleneck is ``z = conv(relu(bn(y))) + bias``; its input ``y`` is the previous conv's output, and
``a = relu(bn(y))`` is never written to memory.

Forward (:func:`conv_forward_kernel`), one program per [BLOCK_M, BLOCK_N] tile of z::

    z[m, o] = bias[o] + sum_{tap, c} a[m + shift(tap), c] * w[o, c, tap]
              (+ skip_bias[o] + sum_c x[m, c] * skip_w[o, c])      HAS_SKIP: concatenated K
              (+ residual[m, o])                                    HAS_RESIDUAL: identity skip
              (+ upsampled[n, h // 2, w // 2, o])                   ADD_UPSAMPLED: nearest x2 upsampling
                                                                    of a half-size tensor (the hourglass's
                                                                    up1 + up2, m = (n, h, w))
    a = relu(y * scale + shift), scale = gamma / sqrt(var + eps), shift = beta - mean * scale,
    and a = 0 where the tap falls outside the image (the conv pads *after* BN-ReLU).

with batch (training) or running (eval) statistics in (mean, var); STATS reduces the
per-channel mean and biased variance of z in the epilogue (centred partials per row tile, combined
up a reduction tree, see helpers.py), for the next unit's prologue, and updates the running
statistics.

Backward of a unit, given dz (or, GRAD_BN, the gradient g of the *next* unit's BN-ReLU output,
turned into dz in the prologue by :func:`helpers.bn_backward` from z and two channel sums):

* dgrad: da[m, c] = sum_{tap, o} dz[m - shift(tap), o] * w[o, c, tap]; SECOND_GRAD extends the
  sum over concatenated K with a second gradient of C_out2 channels and its own weight:
  + sum_{tap, o'} dz2[m - shift(tap), o'] * w2[o', c, tap] (the stack head's dL/dfeature from
  dL/dx_next and dL/dpreds, never concatenated in memory). dz2 is read as it is, or with
  COMPLETE_GRAD2 (1x1 convs) completed per tile, dz2[m, o'] + sum_o dz[m, o] * w3[o, o']: the
  second conv's output also feeds a 1x1 conv w3 whose output's gradient is dz (the head's preds
  feed the merge into x_next); the first channel tile's programs store the completed dz2
  (``grad2_out``) for the launch that takes its weight gradient. EPILOGUE_BN turns it
  into g[m, c] = da * !(bn(y) <= 0) and reduces sum(g) and sum(g * yhat) per channel: BN's
  backward sums (in the accumulation type), which are also dL/dbeta and dL/dgamma (written a
  second time in the BN parameters' dtype). SUMS_ONLY reduces those sums and stores nothing.
  APPLY_BN, given the sums (from a SUMS_ONLY launch of the same dgrad), finishes the BN backward
  instead: dL/dy = :func:`helpers.bn_backward` of g, plus ``extra`` (the gradient of a
  Residual's skip branch) and, HAS_THROUGH, ``through`` (the gradient of y from its other
  consumers). The two launches compute da twice and never store g: a pass of y's size saved
  each way for one more dgrad GEMM (fasthg/ops/residual.py).
* wgrad: one GEMM dw[o, j] = sum_m dz[m, o] * a[m + shift(tap), c] over the columns
  j = c * K^2 + tap (so a program's dz tile serves every tap of its channels; dw is stored
  through its strides, in the layout of the weight it is the gradient of), with ``a`` recomputed from y in the
  prologue, and dbias[o] = sum_m dz[m, o]; HAS_SKIP adds the skip conv's dw over the raw x and
  writes dbias again as the skip conv's bias gradient. WGRAD2 (with GRAD_BN) adds the weight
  gradient of a 1x1 conv that reads this conv's output after the next BN, dw2[o', o] =
  sum_m dz2[m, o'] * relu(bn(z))[m, o], and dbias2 (the head's heatmap conv, whose input is
  the features conv's output after its BN-ReLU: one launch reads z for both). Split-K: the M rows are cut into slices
  of ``slice_rows`` (whole row tiles); each program reduces one slice of one [BLOCK_N, BLOCK_J]
  tile, and the slices' partial tiles (in the accumulation type) are added up a reduction tree
  (helpers.py) in a fixed order, so dw is bitwise reproducible and no program loops over all M
  rows. Only the programs of the first column tile sum dbias.

:func:`conv_backward_kernel` runs either or both (DGRAD, WGRAD) in one launch.

Products run on tensor cores with fp32 accumulation (fp64 for fp64 tensors); the BN-ReLU
output is rounded to the weights' dtype before the product, as in an unfused network.
"""
import triton
import triton.language as tl

from .helpers import (accumulator, bn_backward, bn_relu, bn_scale_shift, dot_accumulate, reduce_moments, reduce_sums,
                      tree_counters, tree_sum, widen)


@triton.jit
def _pixel_coordinates(rows, H, W):
    """(n, h, w) of NHWC rows."""
    return rows // (H * W), (rows // W) % H, rows % W


@triton.jit
def _output_tile(pid_m, pid_n, M, C, H, W, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Rows and channels of a [BLOCK_M, BLOCK_N] tile of an [M, C] NHWC matrix, their masks, and the rows' (n, h, w)."""
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n, h, w = _pixel_coordinates(rows, H, W)
    return rows, rows < M, cols, cols < C, n, h, w


@triton.jit
def _shifted_rows(n, h, w, row_mask, tap, KSIZE: tl.constexpr, SIGN: tl.constexpr, H, W):
    """Rows at (h + SIGN * dh, w + SIGN * dw) for the tap's offset (dh, dw), and which lie inside the image."""
    dh = SIGN * (tap // KSIZE - KSIZE // 2)
    dw = SIGN * (tap % KSIZE - KSIZE // 2)
    hh = h + dh
    ww = w + dw
    inside = row_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
    return (n * H + hh) * W + ww, inside


@triton.jit
def _weight_offsets(outputs, inputs, tap, stride_o, stride_c, stride_h, stride_w, KSIZE: tl.constexpr):
    """Offsets of w[o, c, tap // KSIZE, tap % KSIZE] for broadcastable tiles of o, c and tap."""
    return outputs * stride_o + inputs * stride_c + (tap // KSIZE) * stride_h + (tap % KSIZE) * stride_w


@triton.jit
def conv_forward_kernel(
    y_ptr, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr,
    w_ptr, w_stride_o, w_stride_c, w_stride_h, w_stride_w, bias_ptr,
    skip_x_ptr, skip_w_ptr, skip_bias_ptr,
    residual_ptr, upsampled_ptr, out_ptr,
    part_mean_ptr, part_m2_ptr, counter_ptr,
    out_mean_ptr, out_var_ptr, running_mean_ptr, running_var_ptr,
    N, H, W, C_in, C_out, C_skip,
    eps, momentum,
    KSIZE: tl.constexpr, PROLOGUE: tl.constexpr, HAS_SKIP: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    ADD_UPSAMPLED: tl.constexpr, STATS: tl.constexpr, UPDATE_RUNNING: tl.constexpr,
    INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, REDUCE_GROUP: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    M = N * H * W
    rows, row_mask, cols, col_mask, n, h, w = _output_tile(pid_m, pid_n, M, C_out, H, W, BLOCK_M, BLOCK_N)
    acc = accumulator(y_ptr, (BLOCK_M, BLOCK_N))

    for tap in range(KSIZE * KSIZE):
        source, inside = _shifted_rows(n, h, w, row_mask, tap, KSIZE, 1, H, W)
        for k in range(0, C_in, BLOCK_K):
            ks = k + tl.arange(0, BLOCK_K)
            k_mask = ks < C_in
            a_mask = inside[:, None] & k_mask[None, :]
            a = tl.load(y_ptr + source[:, None] * C_in + ks[None, :], mask=a_mask, other=0.0)
            if PROLOGUE:
                scale, shift = bn_scale_shift(mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr, ks, k_mask, eps)
                a = bn_relu(a, scale, shift, a_mask)
            b = tl.load(w_ptr + _weight_offsets(cols[None, :], ks[:, None], tap, w_stride_o, w_stride_c, w_stride_h,
                                                w_stride_w, KSIZE),
                        mask=k_mask[:, None] & col_mask[None, :], other=0.0)
            acc = dot_accumulate(a, b, acc, INPUT_PRECISION, UPCAST)

    acc += widen(tl.load(bias_ptr + cols, mask=col_mask, other=0.0))[None, :]
    if HAS_SKIP:
        for k in range(0, C_skip, BLOCK_K):
            ks = k + tl.arange(0, BLOCK_K)
            k_mask = ks < C_skip
            a = tl.load(skip_x_ptr + rows[:, None] * C_skip + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
            b = tl.load(skip_w_ptr + cols[None, :] * C_skip + ks[:, None], mask=k_mask[:, None] & col_mask[None, :], other=0.0)
            acc = dot_accumulate(a, b, acc, INPUT_PRECISION, UPCAST)
        acc += widen(tl.load(skip_bias_ptr + cols, mask=col_mask, other=0.0))[None, :]
    out_offsets = rows[:, None] * C_out + cols[None, :]
    out_mask = row_mask[:, None] & col_mask[None, :]
    if HAS_RESIDUAL:
        acc += widen(tl.load(residual_ptr + out_offsets, mask=out_mask, other=0.0))
    if ADD_UPSAMPLED:  # each half-size pixel serves a 2x2 block of output rows; H even, so
        # (n * H + h) // 2 = n * (H // 2) + h // 2, from rows alone (n, h, w need not live this long)
        source = (rows // W // 2) * (W // 2) + (rows % W) // 2
        acc += widen(tl.load(upsampled_ptr + source[:, None] * C_out + cols[None, :], mask=out_mask, other=0.0))
    out = acc.to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + out_offsets, out, mask=out_mask)

    if STATS:
        # Statistics of z as stored, i.e. of what the next unit's prologue will normalise.
        row_tiles = tl.num_programs(0)
        reduce_moments(widen(out), row_mask, pid_m, row_tiles, M, BLOCK_M, cols, col_mask, C_out,
                       part_mean_ptr, part_m2_ptr, counter_ptr + pid_n * tree_counters(row_tiles, REDUCE_GROUP),
                       out_mean_ptr, out_var_ptr, running_mean_ptr, running_var_ptr, momentum, UPDATE_RUNNING,
                       REDUCE_GROUP)


@triton.jit
def _load_output_grad(grad_ptr, rows, inside, channels, channel_mask, C,
                      z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                      M, eps, GRAD_BN: tl.constexpr):
    """A [rows, channels] tile of dz: loaded, or (GRAD_BN) rebuilt from the next BN's g and z."""
    mask = inside[:, None] & channel_mask[None, :]
    offsets = rows[:, None] * C + channels[None, :]
    grad = tl.load(grad_ptr + offsets, mask=mask, other=0.0)
    if GRAD_BN:
        z = tl.load(z_ptr + offsets, mask=mask, other=0.0)
        return bn_backward(grad, z, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                           channels, channel_mask, mask, M, eps)
    return widen(grad)


@triton.jit
def _complete_grad2(dz2, grad_ptr, rows, inside, C_out, ks, k_mask, w3_ptr, w3_stride_o, w3_stride_c,
                    INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_K: tl.constexpr):
    """dz2 + dz w3 on a [rows, ks] tile of the second gradient (COMPLETE_GRAD2): its conv's output
    also feeds a 1x1 conv with weights w3[o, o'] (o: the first gradient's C_out channels, o': the
    second's), so its whole gradient is dz2[m, o'] + sum_o dz[m, o] w3[o, o'], the sum in K-steps of
    BLOCK_K. Both terms and their sum are rounded to the gradients' type, as autograd's stored
    gradients and their sum would be."""
    through = tl.zeros_like(dz2)
    for k in range(0, C_out, BLOCK_K):
        outs = k + tl.arange(0, BLOCK_K)
        o_mask = outs < C_out
        dz = tl.load(grad_ptr + rows[:, None] * C_out + outs[None, :], mask=inside[:, None] & o_mask[None, :], other=0.0)
        w3 = tl.load(w3_ptr + outs[:, None] * w3_stride_o + ks[None, :] * w3_stride_c,
                     mask=o_mask[:, None] & k_mask[None, :], other=0.0)
        through = dot_accumulate(dz, w3, through, INPUT_PRECISION, UPCAST)
    dtype = grad_ptr.dtype.element_ty
    return widen((dz2 + widen(through.to(dtype))).to(dtype))


@triton.jit
def _dgrad_steps(acc, grad_ptr, source, inside, C, w_ptr, w_stride_o, w_stride_c, w_stride_h, w_stride_w,
                 cols, col_mask, tap, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                 M, eps, first_grad_ptr, C_first, w3_ptr, w3_stride_o, w3_stride_c, completed_ptr, stored_channels,
                 KSIZE: tl.constexpr, GRAD_BN: tl.constexpr, COMPLETE: tl.constexpr, INPUT_PRECISION: tl.constexpr,
                 UPCAST: tl.constexpr, BLOCK_K: tl.constexpr):
    """acc + sum_o dz[source, o] * w[o, cols, tap] over the C output channels of one gradient
    (dz read from ``grad`` at rows ``source``, or rebuilt with GRAD_BN), in K-steps of BLOCK_K.
    COMPLETE (a 1x1 conv's second gradient): dz completed by :func:`_complete_grad2` with the first
    gradient's dgrad through w3, and its first ``stored_channels`` channels stored to ``completed``."""
    for k in range(0, C, BLOCK_K):
        ks = k + tl.arange(0, BLOCK_K)
        k_mask = ks < C
        dz = _load_output_grad(grad_ptr, source, inside, ks, k_mask, C,
                               z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                               M, eps, GRAD_BN)
        if COMPLETE:
            dz = _complete_grad2(dz, first_grad_ptr, source, inside, C_first, ks, k_mask, w3_ptr, w3_stride_o,
                                 w3_stride_c, INPUT_PRECISION, UPCAST, BLOCK_K)
            tl.store(completed_ptr + source[:, None] * C + ks[None, :], dz.to(completed_ptr.dtype.element_ty),
                     mask=inside[:, None] & (ks < stored_channels)[None, :])
        b = tl.load(w_ptr + _weight_offsets(ks[:, None], cols[None, :], tap, w_stride_o, w_stride_c, w_stride_h,
                                            w_stride_w, KSIZE),
                    mask=k_mask[:, None] & col_mask[None, :], other=0.0)
        acc = dot_accumulate(dz, b, acc, INPUT_PRECISION, UPCAST)
    return acc


@triton.jit
def _relu_grad(acc, y, mean_ptr, var_ptr, weight_ptr, bias_ptr, cols, col_mask, mask, eps):
    """dL/da masked by ReLU's gradient: it passes unless bn(y) <= 0, as in torch's threshold_backward
    (NaN passes it)."""
    scale, shift = bn_scale_shift(mean_ptr, var_ptr, weight_ptr, bias_ptr, cols, col_mask, eps)
    return tl.where(mask & ~(y * scale[None, :] + shift[None, :] <= 0), acc, 0.0)


@triton.jit
def _dgrad_program(
    pid, grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
    w_ptr, w_stride_o, w_stride_c, w_stride_h, w_stride_w,
    grad2_ptr, w2_ptr, w2_stride_o, w2_stride_c, w2_stride_h, w2_stride_w,
    w3_ptr, w3_stride_o, w3_stride_c, grad2_out_ptr,
    y_ptr, y_mean_ptr, y_var_ptr, y_weight_ptr, y_bias_ptr,
    out_ptr, part_first_ptr, part_second_ptr, counter_ptr, sum_grad_ptr, sum_grad_xhat_ptr,
    bn_dbias_ptr, bn_dweight_ptr, extra_ptr, through_ptr, N, H, W, C_out, C_out2, C_in, eps,
    KSIZE: tl.constexpr, GRAD_BN: tl.constexpr, SECOND_GRAD: tl.constexpr, COMPLETE_GRAD2: tl.constexpr,
    EPILOGUE_BN: tl.constexpr, SUMS_ONLY: tl.constexpr, APPLY_BN: tl.constexpr, HAS_THROUGH: tl.constexpr,
    INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, REDUCE_GROUP: tl.constexpr,
):
    """One [BLOCK_M, BLOCK_N] tile of da (and its epilogue); ``pid`` numbers (row tile, channel tile).
    SECOND_GRAD: K is [grad | grad2] (C_out + C_out2 channels) against [w ; w2]; COMPLETE_GRAD2
    completes grad2 with grad w3 in every program, and the first channel tile's store it to grad2_out."""
    M = N * H * W
    row_tiles = tl.cdiv(M, BLOCK_M)
    pid_m = pid % row_tiles
    pid_n = pid // row_tiles
    rows, row_mask, cols, col_mask, n, h, w = _output_tile(pid_m, pid_n, M, C_in, H, W, BLOCK_M, BLOCK_N)
    acc = accumulator(grad_ptr, (BLOCK_M, BLOCK_N))

    for tap in range(KSIZE * KSIZE):
        # Input pixel p fed output pixel p - shift(tap) through this tap.
        source, inside = _shifted_rows(n, h, w, row_mask, tap, KSIZE, -1, H, W)
        acc = _dgrad_steps(acc, grad_ptr, source, inside, C_out, w_ptr, w_stride_o, w_stride_c, w_stride_h, w_stride_w,
                           cols, col_mask, tap, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr,
                           z_sum_grad_xhat_ptr, M, eps, None, 0, None, 0, 0, None, 0, KSIZE, GRAD_BN, False,
                           INPUT_PRECISION, UPCAST, BLOCK_K)
        if SECOND_GRAD:  # the rest of the concatenated K, read as it is or completed
            acc = _dgrad_steps(acc, grad2_ptr, source, inside, C_out2, w2_ptr, w2_stride_o, w2_stride_c, w2_stride_h,
                               w2_stride_w, cols, col_mask, tap, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr,
                               z_sum_grad_ptr, z_sum_grad_xhat_ptr, M, eps, grad_ptr, C_out, w3_ptr, w3_stride_o,
                               w3_stride_c, grad2_out_ptr, tl.where(pid_n == 0, C_out2, 0), KSIZE, False,
                               COMPLETE_GRAD2, INPUT_PRECISION, UPCAST, BLOCK_K)

    offsets = rows[:, None] * C_in + cols[None, :]
    mask = row_mask[:, None] & col_mask[None, :]
    if EPILOGUE_BN:
        y = widen(tl.load(y_ptr + offsets, mask=mask, other=0.0))
        mean = widen(tl.load(y_mean_ptr + cols, mask=col_mask, other=0.0))
        rstd = 1.0 / tl.sqrt(widen(tl.load(y_var_ptr + cols, mask=col_mask, other=1.0)) + eps)
        yhat = (y - mean[None, :]) * rstd[None, :]
        grad = _relu_grad(acc, y, y_mean_ptr, y_var_ptr, y_weight_ptr, y_bias_ptr, cols, col_mask, mask, eps)
        if not SUMS_ONLY:
            tl.store(out_ptr + offsets, grad.to(out_ptr.dtype.element_ty), mask=mask)
        reduce_sums(grad, grad * yhat, row_mask, pid_m, row_tiles, cols, col_mask, C_in, part_first_ptr,
                    part_second_ptr, counter_ptr + pid_n * tree_counters(row_tiles, REDUCE_GROUP),
                    sum_grad_ptr, sum_grad_xhat_ptr, bn_dbias_ptr, bn_dweight_ptr, REDUCE_GROUP)
    elif APPLY_BN:
        y = widen(tl.load(y_ptr + offsets, mask=mask, other=0.0))
        grad = _relu_grad(acc, y, y_mean_ptr, y_var_ptr, y_weight_ptr, y_bias_ptr, cols, col_mask, mask, eps)
        dy = bn_backward(grad, y, y_mean_ptr, y_var_ptr, y_weight_ptr, sum_grad_ptr, sum_grad_xhat_ptr,
                         cols, col_mask, mask, M, eps)
        dy += widen(tl.load(extra_ptr + offsets, mask=mask, other=0.0))
        if HAS_THROUGH:
            dy += widen(tl.load(through_ptr + offsets, mask=mask, other=0.0))
        tl.store(out_ptr + offsets, dy.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(out_ptr + offsets, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _wgrad_slice(grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                 a_ptr, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr,
                 co, co_mask, js, j_mask, row_start, row_end, sum_bias, M, H, W, C_out, C_a, eps,
                 acc, bias_acc, KSIZE: tl.constexpr, GRAD_BN: tl.constexpr, PROLOGUE: tl.constexpr,
                 INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr):
    """acc[o, j] + sum_m dz[m, o] a[m + shift(tap_j), c_j] over rows [row_start, row_end), with
    j = c * KSIZE^2 + tap (im2col columns in the weights' order); with ``sum_bias`` also
    bias_acc[o] + sum_m dz[m, o]."""
    channel = js // (KSIZE * KSIZE)
    tap = js % (KSIZE * KSIZE)
    dh = tap // KSIZE - KSIZE // 2
    dw = tap % KSIZE - KSIZE // 2
    column_offsets = (dh * W + dw) * C_a + channel
    if PROLOGUE:
        scale, shift = bn_scale_shift(mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr, channel, j_mask, eps)
    for m in range(row_start, row_end, BLOCK_M):
        rows = m + tl.arange(0, BLOCK_M)
        row_mask = rows < row_end
        dz = _load_output_grad(grad_ptr, rows, row_mask, co, co_mask, C_out,
                               z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                               M, eps, GRAD_BN)
        if sum_bias:
            bias_acc += tl.sum(dz, axis=0)
        inside = row_mask[:, None] & j_mask[None, :]
        if KSIZE > 1:
            n, h, w = _pixel_coordinates(rows, H, W)
            hh = h[:, None] + dh[None, :]
            ww = w[:, None] + dw[None, :]
            inside = inside & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        a = tl.load(a_ptr + rows[:, None] * C_a + column_offsets[None, :], mask=inside, other=0.0)
        if PROLOGUE:
            a = bn_relu(a, scale, shift, inside)
        # Round dz like a stored gradient would be, then accumulate dz^T a.
        acc = dot_accumulate(tl.trans(dz), a.to(a_ptr.dtype.element_ty), acc, INPUT_PRECISION, UPCAST)
    return acc, bias_acc


@triton.jit
def _reduce_slices(acc, bias_acc, has_bias, slice_index, slices, tile, tiles, co_tile, co_tiles,
                   part_dw_ptr, part_dbias_ptr, counter_ptr,
                   BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr, REDUCE_GROUP: tl.constexpr):
    """Adds the ``slices`` partial [BLOCK_N, BLOCK_J] tiles of wgrad tile ``tile`` (and, ``has_bias``,
    of its dbias) up the reduction tree (helpers.tree_sum). Returns whether this program completed
    the root, and the totals there. Node p of tile t lives at part_dw[(p * tiles + t) * BLOCK_N *
    BLOCK_J], its dbias at part_dbias[(p * co_tiles + co_tile) * BLOCK_N]."""
    local = tl.arange(0, BLOCK_N)[:, None] * BLOCK_J + tl.arange(0, BLOCK_J)[None, :]
    channels = tl.arange(0, BLOCK_N)
    return tree_sum(acc, bias_acc, slice_index, slices, counter_ptr + tile * tree_counters(slices, REDUCE_GROUP),
                    part_dw_ptr, tile * (BLOCK_N * BLOCK_J) + local, local >= 0, tiles * (BLOCK_N * BLOCK_J),
                    part_dbias_ptr, co_tile * BLOCK_N + channels, channels < tl.where(has_bias, BLOCK_N, 0), co_tiles * BLOCK_N,
                    REDUCE_GROUP)


@triton.jit
def _store_wgrad(acc, bias_acc, has_bias, co, co_mask, js, j_mask, dw_ptr, dw_stride_o, dw_stride_c, dw_stride_h,
                 dw_stride_w, dbias_ptr, KSIZE: tl.constexpr):
    """Stores a finished [BLOCK_N, BLOCK_J] tile of dw through its strides (columns j = c * KSIZE^2 + tap),
    and with ``has_bias`` its dbias."""
    dw_offsets = _weight_offsets(co[:, None], (js // (KSIZE * KSIZE))[None, :], (js % (KSIZE * KSIZE))[None, :],
                                 dw_stride_o, dw_stride_c, dw_stride_h, dw_stride_w, KSIZE)
    tl.store(dw_ptr + dw_offsets, acc.to(dw_ptr.dtype.element_ty), mask=co_mask[:, None] & j_mask[None, :])
    if has_bias:
        tl.store(dbias_ptr + co, bias_acc.to(dbias_ptr.dtype.element_ty), mask=co_mask)


@triton.jit
def _wgrad_tile(grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                a_ptr, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr, co, co_mask, js, j_mask, has_bias,
                row_start, row_end, slice_index, slices, tile, tiles, co_tile, co_tiles,
                part_dw_ptr, part_dbias_ptr, counter_ptr, dw_ptr, dw_stride_o, dw_stride_c, dw_stride_h, dw_stride_w,
                dbias_ptr, M, H, W, C_grad, C_a, eps, KSIZE: tl.constexpr, GRAD_BN: tl.constexpr,
                PROLOGUE: tl.constexpr, INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_M: tl.constexpr,
                BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr, REDUCE_GROUP: tl.constexpr):
    """One row slice of the [BLOCK_N, BLOCK_J] tile ``tile`` of dw = dz^T a (:func:`_wgrad_slice`; dz
    has C_grad channels, a C_a), added up the tile's reduction tree; the program completing the root
    stores the tile and, ``has_bias``, dbias (the sum of dz over all rows). Returns whether this
    program did, and the dbias total there."""
    acc = accumulator(a_ptr, (BLOCK_N, BLOCK_J))
    bias_acc = tl.zeros((BLOCK_N,), dtype=acc.dtype)
    acc, bias_acc = _wgrad_slice(grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr,
                                 z_sum_grad_xhat_ptr, a_ptr, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr,
                                 co, co_mask, js, j_mask, row_start, row_end, has_bias, M, H, W, C_grad, C_a, eps,
                                 acc, bias_acc, KSIZE, GRAD_BN, PROLOGUE, INPUT_PRECISION, UPCAST, BLOCK_M)
    last, acc, bias_acc = _reduce_slices(acc, bias_acc, has_bias, slice_index, slices, tile, tiles, co_tile, co_tiles,
                                         part_dw_ptr, part_dbias_ptr, counter_ptr, BLOCK_N, BLOCK_J, REDUCE_GROUP)
    if last:
        _store_wgrad(acc, bias_acc, has_bias, co, co_mask, js, j_mask, dw_ptr, dw_stride_o, dw_stride_c, dw_stride_h,
                     dw_stride_w, dbias_ptr, KSIZE)
    return last, bias_acc


@triton.jit
def _wgrad_program(
    pid, grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_bias_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
    y_ptr, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr, skip_x_ptr,
    dw_ptr, dw_stride_o, dw_stride_c, dw_stride_h, dw_stride_w, dbias_ptr, skip_dw_ptr, skip_dbias_ptr,
    grad2_ptr, dw2_ptr, dw2_stride_o, dw2_stride_c, dw2_stride_h, dw2_stride_w, dbias2_ptr,
    part_dw_ptr, part_dbias_ptr, counter_ptr, slice_rows,
    N, H, W, C_out, C_out2, C_in, C_skip, eps,
    KSIZE: tl.constexpr, GRAD_BN: tl.constexpr, PROLOGUE: tl.constexpr, HAS_SKIP: tl.constexpr,
    WGRAD2: tl.constexpr, INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr, REDUCE_GROUP: tl.constexpr,
):
    """One row slice of one [BLOCK_N, BLOCK_J] tile of dw. ``pid`` numbers (slice, j tile, o tile),
    the o tile fastest and the slice slowest (programs that run together share a slice's rows);
    j tiles below ceil(C_in K^2 / BLOCK_J) cover the main conv, the rest (HAS_SKIP) the skip conv.
    WGRAD2 (with GRAD_BN): then the tiles of dw2 = grad2^T relu(bn(z)), the weight gradient of a 1x1
    conv that reads this conv's output z after the BN that GRAD_BN names (C_out2 rows, C_out
    columns, grad2 read as it is), and its dbias2."""
    M = N * H * W
    co_tiles = tl.cdiv(C_out, BLOCK_N)
    main_tiles = tl.cdiv(C_in * KSIZE * KSIZE, BLOCK_J)
    first_tiles = co_tiles * main_tiles
    if HAS_SKIP:
        first_tiles += co_tiles * tl.cdiv(C_skip, BLOCK_J)
    tiles = first_tiles
    all_co_tiles = co_tiles
    if WGRAD2:
        tiles += tl.cdiv(C_out2, BLOCK_N) * tl.cdiv(C_out, BLOCK_J)
        all_co_tiles += tl.cdiv(C_out2, BLOCK_N)
    slices = tl.cdiv(M, slice_rows)
    slice_index = pid // tiles
    tile = pid % tiles
    row_start = slice_index * slice_rows
    row_end = tl.minimum(row_start + slice_rows, M)
    if WGRAD2 and tile >= first_tiles:
        co2_tiles = tl.cdiv(C_out2, BLOCK_N)
        co_tile = (tile - first_tiles) % co2_tiles
        j_tile = (tile - first_tiles) // co2_tiles
        co = co_tile * BLOCK_N + tl.arange(0, BLOCK_N)
        js = j_tile * BLOCK_J + tl.arange(0, BLOCK_J)
        _wgrad_tile(grad2_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                    z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_bias_ptr, co, co < C_out2, js, js < C_out,
                    j_tile == 0, row_start, row_end, slice_index, slices, tile, tiles, co_tiles + co_tile,
                    all_co_tiles, part_dw_ptr, part_dbias_ptr, counter_ptr, dw2_ptr, dw2_stride_o, dw2_stride_c,
                    dw2_stride_h, dw2_stride_w, dbias2_ptr, M, H, W, C_out2, C_out, eps, 1, False, True,
                    INPUT_PRECISION, UPCAST, BLOCK_M, BLOCK_N, BLOCK_J, REDUCE_GROUP)
    else:
        co_tile = tile % co_tiles
        j_tile = tile // co_tiles
        co = co_tile * BLOCK_N + tl.arange(0, BLOCK_N)
        co_mask = co < C_out
        has_bias = j_tile == 0  # the first tile of each row of dw tiles sums dbias too
        if HAS_SKIP and j_tile >= main_tiles:  # a skip conv tile (contiguous 1x1 dw), never a first tile
            js = (j_tile - main_tiles) * BLOCK_J + tl.arange(0, BLOCK_J)
            _wgrad_tile(grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                        skip_x_ptr, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr, co, co_mask, js, js < C_skip,
                        has_bias, row_start, row_end, slice_index, slices, tile, tiles, co_tile, all_co_tiles,
                        part_dw_ptr, part_dbias_ptr, counter_ptr, skip_dw_ptr, C_skip, 1, 0, 0, skip_dbias_ptr,
                        M, H, W, C_out, C_skip, eps, 1, GRAD_BN, False, INPUT_PRECISION, UPCAST, BLOCK_M, BLOCK_N,
                        BLOCK_J, REDUCE_GROUP)
        else:
            js = j_tile * BLOCK_J + tl.arange(0, BLOCK_J)
            last, bias_total = _wgrad_tile(
                grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
                y_ptr, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr, co, co_mask, js, js < C_in * KSIZE * KSIZE,
                has_bias, row_start, row_end, slice_index, slices, tile, tiles, co_tile, all_co_tiles,
                part_dw_ptr, part_dbias_ptr, counter_ptr, dw_ptr, dw_stride_o, dw_stride_c, dw_stride_h, dw_stride_w,
                dbias_ptr, M, H, W, C_out, C_in, eps, KSIZE, GRAD_BN, PROLOGUE, INPUT_PRECISION, UPCAST, BLOCK_M,
                BLOCK_N, BLOCK_J, REDUCE_GROUP)
            if HAS_SKIP:  # z = conv + skip conv: both biases receive sum_m dz
                if last and has_bias:
                    tl.store(skip_dbias_ptr + co, bias_total.to(skip_dbias_ptr.dtype.element_ty), mask=co_mask)


@triton.jit
def conv_backward_kernel(
    grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_bias_ptr, z_sum_grad_ptr, z_sum_grad_xhat_ptr,
    y_ptr, y_mean_ptr, y_var_ptr, y_weight_ptr, y_bias_ptr,
    w_ptr, w_stride_o, w_stride_c, w_stride_h, w_stride_w,
    grad2_ptr, w2_ptr, w2_stride_o, w2_stride_c, w2_stride_h, w2_stride_w,
    w3_ptr, w3_stride_o, w3_stride_c, grad2_out_ptr,
    out_ptr, part_first_ptr, part_second_ptr, counter_ptr, sum_grad_ptr, sum_grad_xhat_ptr,
    bn_dbias_ptr, bn_dweight_ptr, extra_ptr, through_ptr,
    skip_x_ptr, dw_ptr, dw_stride_o, dw_stride_c, dw_stride_h, dw_stride_w, dbias_ptr, skip_dw_ptr, skip_dbias_ptr,
    dw2_ptr, dw2_stride_o, dw2_stride_c, dw2_stride_h, dw2_stride_w, dbias2_ptr,
    part_dw_ptr, part_dbias_ptr, wgrad_counter_ptr, wgrad_programs, slice_rows,
    N, H, W, C_out, C_out2, C_dgrad, C_wgrad, C_skip, eps,
    KSIZE: tl.constexpr, GRAD_BN: tl.constexpr,
    WGRAD: tl.constexpr, PROLOGUE: tl.constexpr, HAS_SKIP: tl.constexpr,
    DGRAD: tl.constexpr, SECOND_GRAD: tl.constexpr, COMPLETE_GRAD2: tl.constexpr, EPILOGUE_BN: tl.constexpr,
    SUMS_ONLY: tl.constexpr, APPLY_BN: tl.constexpr, HAS_THROUGH: tl.constexpr, WGRAD2: tl.constexpr,
    INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_J: tl.constexpr,
    REDUCE_GROUP: tl.constexpr,
):
    """dgrad and wgrad of one conv as a single launch over a 1-D grid: the ``wgrad_programs``
    wgrad programs (one row slice of one dw tile each; the launcher counts them) first, then the
    dgrad programs (one tile of da each). Both read the same dz (``grad``, or rebuilt from the next
    BN's g, GRAD_BN) and the same y with its BN (wgrad's prologue, dgrad's ReLU-mask epilogue);
    WGRAD2's tiles read grad2 and GRAD_BN's z with its BN."""
    pid = tl.program_id(0)
    dgrad_start = wgrad_programs if WGRAD else 0  # the launcher's count
    # Each part compiled only in the variants that take its arguments (the others are None).
    if WGRAD:
        if pid < dgrad_start:
            _wgrad_program(pid, grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_bias_ptr, z_sum_grad_ptr,
                           z_sum_grad_xhat_ptr, y_ptr, y_mean_ptr, y_var_ptr, y_weight_ptr, y_bias_ptr, skip_x_ptr,
                           dw_ptr, dw_stride_o, dw_stride_c, dw_stride_h, dw_stride_w, dbias_ptr, skip_dw_ptr,
                           skip_dbias_ptr, grad2_ptr, dw2_ptr, dw2_stride_o, dw2_stride_c, dw2_stride_h, dw2_stride_w,
                           dbias2_ptr, part_dw_ptr, part_dbias_ptr, wgrad_counter_ptr, slice_rows,
                           N, H, W, C_out, C_out2, C_wgrad, C_skip, eps, KSIZE, GRAD_BN, PROLOGUE, HAS_SKIP, WGRAD2,
                           INPUT_PRECISION, UPCAST, BLOCK_M, BLOCK_N, BLOCK_J, REDUCE_GROUP)
    if DGRAD:
        if pid >= dgrad_start:
            _dgrad_program(pid - dgrad_start, grad_ptr, z_ptr, z_mean_ptr, z_var_ptr, z_weight_ptr, z_sum_grad_ptr,
                           z_sum_grad_xhat_ptr, w_ptr, w_stride_o, w_stride_c, w_stride_h, w_stride_w,
                           grad2_ptr, w2_ptr, w2_stride_o, w2_stride_c, w2_stride_h, w2_stride_w,
                           w3_ptr, w3_stride_o, w3_stride_c, grad2_out_ptr,
                           y_ptr, y_mean_ptr, y_var_ptr, y_weight_ptr, y_bias_ptr,
                           out_ptr, part_first_ptr, part_second_ptr, counter_ptr, sum_grad_ptr, sum_grad_xhat_ptr,
                           bn_dbias_ptr, bn_dweight_ptr, extra_ptr, through_ptr, N, H, W, C_out, C_out2, C_dgrad,
                           eps, KSIZE, GRAD_BN, SECOND_GRAD, COMPLETE_GRAD2, EPILOGUE_BN, SUMS_ONLY, APPLY_BN,
                           HAS_THROUGH, INPUT_PRECISION, UPCAST, BLOCK_M, BLOCK_N, BLOCK_K, REDUCE_GROUP)
