"""``@triton.jit`` helpers shared by the kernel families: one definition for every caller.

* :func:`widen`, :func:`dot_accumulate`: accumulation types and the tensor-core product.
* :func:`bn_scale_shift`, :func:`bn_relu`: the BN-ReLU prologue, ``relu(x * scale + shift)``.
* :func:`bn_backward`: the BN backward prologue, from the saved input and two channel sums.
* :func:`store_tile_moments` / :func:`finish_moments` and :func:`store_tile_sums` /
  :func:`finish_sums`: per-channel reductions in a kernel's epilogue. Each program writes fp64
  partials for its row tile; the last program to arrive at a per-column-block counter combines
  them in a fixed order (so the result is deterministic) and resets the counter.
"""
import triton
import triton.language as tl


@triton.jit
def widen(x):
    """Promotes a loaded tile to the accumulation type: fp64 stays fp64, everything else becomes fp32."""
    if x.dtype == tl.float64:
        result = x
    else:
        result = x.to(tl.float32)
    return result


@triton.jit
def accumulator(ptr, SHAPE: tl.constexpr):
    """A zero tile of SHAPE in the accumulation type of ``ptr``'s elements, as :func:`widen` gives it."""
    return tl.zeros(SHAPE, dtype=tl.float64 if ptr.dtype.element_ty == tl.float64 else tl.float32)


@triton.jit
def dot_accumulate(a, b, acc, INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b with ``a`` rounded to ``b``'s (the weights') type, as a conv on that dtype does.

    UPCAST runs the product in fp32 on operands that are exact in fp32; the interpreter needs it
    for bf16, whose tl.dot it gets wrong.
    """
    a = a.to(b.dtype)
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc, input_precision=INPUT_PRECISION)


@triton.jit
def bn_scale_shift(mean_ptr, var_ptr, weight_ptr, bias_ptr, channels, mask, eps):
    """Per-channel (scale, shift) with bn(x) = (x - mean) / sqrt(var + eps) * weight + bias = x * scale + shift."""
    mean = widen(tl.load(mean_ptr + channels, mask=mask, other=0.0))
    var = widen(tl.load(var_ptr + channels, mask=mask, other=1.0))
    weight = widen(tl.load(weight_ptr + channels, mask=mask, other=0.0))
    bias = widen(tl.load(bias_ptr + channels, mask=mask, other=0.0))
    scale = weight / tl.sqrt(var + eps)
    return scale, bias - mean * scale


@triton.jit
def bn_relu(x, scale, shift, mask):
    """relu(x * scale + shift) on a [rows, channels] tile; 0 where ``mask`` is off (the conv's zero padding).

    NaN stays NaN, as in torch.relu (a GPU's max instruction would return the 0 operand).
    """
    return tl.where(mask, tl.maximum(widen(x) * scale[None, :] + shift[None, :], 0.0,
                                     propagate_nan=tl.PropagateNan.ALL), 0.0)


@triton.jit
def bn_backward(grad, x, mean_ptr, var_ptr, weight_ptr, sum_grad_ptr, sum_grad_xhat_ptr,
                channels, channel_mask, mask, count, eps):
    """Gradient of training-mode BN w.r.t. its input, given g = dL/d bn(x) on a [rows, channels] tile.

    dx = weight * rstd * (g - sum(g) / count - xhat * sum(g * xhat) / count), xhat = (x - mean) * rstd,
    with the channel sums over all ``count`` rows (from a dgrad epilogue). 0 where ``mask`` is off.
    """
    mean = widen(tl.load(mean_ptr + channels, mask=channel_mask, other=0.0))
    rstd = 1.0 / tl.sqrt(widen(tl.load(var_ptr + channels, mask=channel_mask, other=1.0)) + eps)
    weight = widen(tl.load(weight_ptr + channels, mask=channel_mask, other=0.0))
    mean_grad = widen(tl.load(sum_grad_ptr + channels, mask=channel_mask, other=0.0)) / count
    mean_grad_xhat = widen(tl.load(sum_grad_xhat_ptr + channels, mask=channel_mask, other=0.0)) / count
    xhat = (widen(x) - mean[None, :]) * rstd[None, :]
    # A zero sum (eval: the statistics are constants) drops the xhat term, so a non-finite x gives
    # a finite dx as in PyTorch's eval BN, instead of inf * 0 = NaN.
    centring = tl.where(mean_grad_xhat[None, :] == 0.0, 0.0, xhat * mean_grad_xhat[None, :])
    dx = (weight * rstd)[None, :] * (widen(grad) - mean_grad[None, :] - centring)
    return tl.where(mask, dx, 0.0)


@triton.jit
def _last_to_arrive(counter_ptr, arrivals):
    """True in the one program that arrives last at ``counter_ptr``; it also resets the counter.

    The barrier completes every thread's stores of this program before the release; the
    acquire side makes the other programs' partials visible to the last one.
    """
    tl.debug_barrier()
    arrived = tl.atomic_add(counter_ptr, 1, sem="acq_rel", scope="gpu")
    return arrived == arrivals - 1


@triton.jit
def store_tile_moments(values, row_mask, tile, channels, channel_mask, num_channels, part_mean_ptr, part_m2_ptr):
    """Writes this row tile's per-channel (mean, M2 = sum (v - mean)^2) in fp64.

    The tile mean in the working precision centres the values first; the fp64 correction
    s1 / n and M2 = s2 - s1^2 / n then lose nothing to cancellation even when the mean is
    10^4 standard deviations from zero.
    """
    count = tl.sum(row_mask.to(tl.float32), axis=0)
    values = tl.where(row_mask[:, None], values, 0.0)
    rough_mean = tl.sum(values, axis=0) / count
    centred = tl.where(row_mask[:, None], values - rough_mean[None, :], 0.0)
    s1 = tl.sum(centred, axis=0).to(tl.float64)
    s2 = tl.sum(centred * centred, axis=0).to(tl.float64)
    offsets = tile * num_channels + channels
    # An infinite tile mean stays infinite (its centred values are NaN), so the batch mean is +-inf
    # as PyTorch's is; NaN - NaN != 0 keeps a NaN mean NaN.
    finite = rough_mean - rough_mean == 0.0
    tile_mean = tl.where(finite, rough_mean.to(tl.float64) + s1 / count, rough_mean.to(tl.float64))
    tl.store(part_mean_ptr + offsets, tile_mean, mask=channel_mask)
    tl.store(part_m2_ptr + offsets, s2 - s1 * s1 / count, mask=channel_mask)


@triton.jit
def _narrow(x, ptr):
    """fp64 ``x`` in the element type of ``ptr``, through fp32 unless that type is fp64."""
    if ptr.dtype.element_ty == tl.float64:
        result = x
    else:
        result = x.to(tl.float32).to(ptr.dtype.element_ty)
    return result


@triton.jit
def _tile_counts(tiles, rows, TILE_ROWS: tl.constexpr):
    """Rows in each of the given row tiles (the last one may be partial), in fp64."""
    return tl.minimum(rows - tiles * TILE_ROWS, TILE_ROWS).to(tl.float64)


@triton.jit
def finish_moments(part_mean_ptr, part_m2_ptr, counter_ptr, num_tiles, rows, TILE_ROWS: tl.constexpr,
                   channels, channel_mask, num_channels,
                   mean_out_ptr, var_out_ptr, running_mean_ptr, running_var_ptr, momentum,
                   UPDATE_RUNNING: tl.constexpr, FINISH_TILES: tl.constexpr = 8):
    """In the last program of a column block: combines the tiles' moments (Chan et al.) in fp64.

    mean = sum_t n_t mean_t / n;  M2 = sum_t M2_t + n_t (mean_t - mean)^2;  var = M2 / n (biased,
    what BN normalises with). FINISH_TILES partials are combined per step, so the serial tail
    is num_tiles / FINISH_TILES steps. Running statistics update as nn.BatchNorm2d does:
    r_mean += momentum (mean - r_mean), r_var += momentum (M2 / (n - 1) - r_var).
    """
    if _last_to_arrive(counter_ptr, num_tiles):
        steps = tl.arange(0, FINISH_TILES)
        mean = tl.zeros_like(channels).to(tl.float64)
        for t in range(0, num_tiles, FINISH_TILES):
            tiles = t + steps
            mask = (tiles < num_tiles)[:, None] & channel_mask[None, :]
            part = tl.load(part_mean_ptr + tiles[:, None] * num_channels + channels[None, :], mask=mask, other=0.0,
                           volatile=True)
            mean += tl.sum(_tile_counts(tiles, rows, TILE_ROWS)[:, None] * part, axis=0)
        mean = mean / rows
        m2 = tl.zeros_like(mean)
        for t in range(0, num_tiles, FINISH_TILES):
            tiles = t + steps
            mask = (tiles < num_tiles)[:, None] & channel_mask[None, :]
            offsets = tiles[:, None] * num_channels + channels[None, :]
            delta = tl.where(mask, tl.load(part_mean_ptr + offsets, mask=mask, other=0.0, volatile=True) - mean[None, :], 0.0)
            part_m2 = tl.load(part_m2_ptr + offsets, mask=mask, other=0.0, volatile=True)
            m2 += tl.sum(part_m2 + _tile_counts(tiles, rows, TILE_ROWS)[:, None] * delta * delta, axis=0)
        tl.store(mean_out_ptr + channels, mean.to(mean_out_ptr.dtype.element_ty), mask=channel_mask)
        tl.store(var_out_ptr + channels, (m2 / rows).to(var_out_ptr.dtype.element_ty), mask=channel_mask)
        if UPDATE_RUNNING:
            # Through fp32 both ways: the interpreter converts bf16 <-> fp64 as integers (a bf16
            # module's running statistics came back 0), and fp32 holds every bf16/fp16 value.
            running_mean = widen(tl.load(running_mean_ptr + channels, mask=channel_mask)).to(tl.float64)
            running_var = widen(tl.load(running_var_ptr + channels, mask=channel_mask)).to(tl.float64)
            running_mean += momentum * (mean - running_mean)
            running_var += momentum * (m2 / (rows - 1) - running_var)
            tl.store(running_mean_ptr + channels, _narrow(running_mean, running_mean_ptr), mask=channel_mask)
            tl.store(running_var_ptr + channels, _narrow(running_var, running_var_ptr), mask=channel_mask)
        tl.store(counter_ptr, 0)


@triton.jit
def store_tile_sums(first, second, row_mask, tile, channels, channel_mask, num_channels, part_first_ptr, part_second_ptr):
    """Writes this row tile's per-channel sums of two [rows, channels] tiles, in fp64."""
    offsets = tile * num_channels + channels
    tl.store(part_first_ptr + offsets, tl.sum(tl.where(row_mask[:, None], first, 0.0), axis=0).to(tl.float64), mask=channel_mask)
    tl.store(part_second_ptr + offsets, tl.sum(tl.where(row_mask[:, None], second, 0.0), axis=0).to(tl.float64), mask=channel_mask)


@triton.jit
def finish_sums(part_first_ptr, part_second_ptr, counter_ptr, num_tiles, channels, channel_mask, num_channels,
                first_out_ptr, second_out_ptr, first_copy_ptr, second_copy_ptr, FINISH_TILES: tl.constexpr = 8):
    """In the last program of a column block: adds the tiles' partial sums in fp64, FINISH_TILES
    tiles per step, in a fixed order. The sums go to ``*_out_ptr`` and again to ``*_copy_ptr``,
    each rounded to its own element type (a copy in the parameters' dtype, when they are the
    BN's parameter gradients, saves the caller a conversion launch; the same pointers twice
    store the same values twice)."""
    if _last_to_arrive(counter_ptr, num_tiles):
        steps = tl.arange(0, FINISH_TILES)
        first = tl.zeros_like(channels).to(tl.float64)
        second = tl.zeros_like(first)
        for t in range(0, num_tiles, FINISH_TILES):
            tiles = t + steps
            mask = (tiles < num_tiles)[:, None] & channel_mask[None, :]
            offsets = tiles[:, None] * num_channels + channels[None, :]
            first += tl.sum(tl.load(part_first_ptr + offsets, mask=mask, other=0.0, volatile=True), axis=0)
            second += tl.sum(tl.load(part_second_ptr + offsets, mask=mask, other=0.0, volatile=True), axis=0)
        tl.store(first_out_ptr + channels, _narrow(first, first_out_ptr), mask=channel_mask)
        tl.store(second_out_ptr + channels, _narrow(second, second_out_ptr), mask=channel_mask)
        tl.store(first_copy_ptr + channels, _narrow(first, first_copy_ptr), mask=channel_mask)
        tl.store(second_copy_ptr + channels, _narrow(second, second_copy_ptr), mask=channel_mask)
        tl.store(counter_ptr, 0)
