"""``@triton.jit`` helpers shared by the kernel families: one definition for every caller.

* :func:`widen`, :func:`dot_accumulate`: accumulation types and the tensor-core product.
* :func:`bn_scale_shift`, :func:`bn_relu`: the BN-ReLU prologue, ``relu(x * scale + shift)``.
* :func:`bn_backward`: the BN backward prologue, from the saved input and two channel sums.
* :func:`reduce_moments`, :func:`reduce_sums`: per-channel reductions over row tiles in a
  kernel's epilogue, combined up a reduction tree (:func:`tree_parent`, below); the weight
  gradients' split-K combine in conv.py climbs the same tree.

Reduction trees. A reduction over T leaves (row tiles, row slices) that many programs share is
finished without float atomics and without a serial tail: the leaves are grouped GROUP at a time,
and the last program to arrive at a group (one integer ``atomic_add`` on the group's counter)
combines the group's partials in index order into the group's node, then arrives at the group of
nodes above; the program that completes the root writes the result. The order of every addition
is fixed by the tree, so results are bitwise identical whichever program arrives last, and no
program combines more than GROUP partials per level: ceil(log_GROUP T) levels in all.

Partials live level after level in one buffer, ``tree_nodes(T, GROUP)`` rows (leaves first, then
each level's nodes); a tree's counters are ``tree_counters(T, GROUP)`` integers, one per node
above the leaves, each reset to 0 by the program that completes it (launches on one stream reuse
them with no memset).
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
    """True in the one program that arrives last at ``counter_ptr`` (of ``arrivals``), which also resets it.

    The barrier completes every thread's stores of this program before the release; the
    acquire side makes the other programs' partials visible to the last one.
    """
    tl.debug_barrier()
    last = tl.atomic_add(counter_ptr, 1, sem="acq_rel", scope="gpu") == arrivals - 1
    if last:
        tl.store(counter_ptr, 0)
    return last


@triton.jit
def tree_counters(leaves, GROUP: tl.constexpr):
    """Nodes above the leaves of the GROUP-ary tree over ``leaves``: the counters one tree needs."""
    nodes = leaves * 0
    while leaves > 1:
        leaves = tl.cdiv(leaves, GROUP)
        nodes += leaves
    return nodes


@triton.jit
def tree_parent(counter_ptr, node, count, counters_below, GROUP: tl.constexpr):
    """Arrives at ``node``'s parent in a level of ``count`` nodes; ``counters_below`` counters
    belong to the levels underneath. Returns (whether this program completed the parent, the
    parent's index, the first of its children, how many children it has)."""
    parent = node // GROUP
    first = parent * GROUP
    children = tl.minimum(count - first, GROUP)
    return _last_to_arrive(counter_ptr + counters_below + parent, children), parent, first, children


@triton.jit
def tree_up(parent, count, level_start, counters_below, GROUP: tl.constexpr):
    """The state (node, count, level_start, counters_below) of the level above a level of ``count`` nodes."""
    return parent, tl.cdiv(count, GROUP), level_start + count, counters_below + tl.cdiv(count, GROUP)


@triton.jit
def tree_sum(first, second, leaf, leaves, counter_ptr, first_ptr, first_offsets, first_mask, first_stride,
             second_ptr, second_offsets, second_mask, second_stride, GROUP: tl.constexpr):
    """Sums two partial tensors (any shapes) of each of ``leaves`` programs up the reduction tree,
    children added one per step in index order. Node p's partials live at
    ``*_ptr + p * *_stride + *_offsets`` (masked by ``*_mask``); ``counter_ptr`` is this tree's
    counters. Returns (whether this program completed the root, and the sums there)."""
    if leaves > 1:
        tl.store(first_ptr + leaf * first_stride + first_offsets, first, mask=first_mask)
        tl.store(second_ptr + leaf * second_stride + second_offsets, second, mask=second_mask)
    node, count, level_start, counters_below = leaf, leaves, leaf * 0, leaf * 0
    last = leaves > 0
    while last & (count > 1):
        last, parent, start, children = tree_parent(counter_ptr, node, count, counters_below, GROUP)
        if last:
            first = tl.zeros_like(first)
            second = tl.zeros_like(second)
            for child in range(level_start + start, level_start + start + children):
                first += tl.load(first_ptr + child * first_stride + first_offsets, mask=first_mask, other=0.0,
                                 volatile=True)
                second += tl.load(second_ptr + child * second_stride + second_offsets, mask=second_mask, other=0.0,
                                  volatile=True)
            node_index = level_start + count + parent
            tl.store(first_ptr + node_index * first_stride + first_offsets, first, mask=first_mask)
            tl.store(second_ptr + node_index * second_stride + second_offsets, second, mask=second_mask)
        node, count, level_start, counters_below = tree_up(parent, count, level_start, counters_below, GROUP)
    return last, first, second


@triton.jit
def _tile_moments(values, row_mask):
    """(mean, M2 = sum (v - mean)^2) per channel of a [rows, channels] tile, in the accumulation
    type of ``values`` (fp32, or fp64 for fp64 tensors).

    The tile mean centres the values first, so the correction s1 / n and M2 = s2 - s1^2 / n lose
    nothing to cancellation even when the mean is 10^4 standard deviations from zero: s1 is the
    rounding error of the rough mean, and s1^2 / n is tiny next to s2. (A plain fp32 sum of
    squares would cancel to nothing there.)
    """
    count = tl.sum(row_mask.to(tl.float32), axis=0)
    values = tl.where(row_mask[:, None], values, 0.0)
    rough_mean = tl.sum(values, axis=0) / count
    centred = tl.where(row_mask[:, None], values - rough_mean[None, :], 0.0)
    s1 = tl.sum(centred, axis=0)
    s2 = tl.sum(centred * centred, axis=0)
    # An infinite tile mean stays infinite (its centred values are NaN), so the batch mean is +-inf
    # as PyTorch's is; NaN - NaN != 0 keeps a NaN mean NaN.
    finite = rough_mean - rough_mean == 0.0
    mean = tl.where(finite, rough_mean + s1 / count, rough_mean)
    return mean, s2 - s1 * s1 / count


@triton.jit
def _narrow(x, ptr):
    """``x`` (fp32 or fp64) in the element type of ``ptr``, through fp32 unless that type is fp64."""
    if ptr.dtype.element_ty == tl.float64:
        result = x.to(tl.float64)
    else:
        result = x.to(tl.float32).to(ptr.dtype.element_ty)
    return result


@triton.jit
def _combine_moments(part_mean_ptr, part_m2_ptr, level_start, first, children, rows, span,
                     channels, channel_mask, num_channels, GROUP: tl.constexpr):
    """(mean, M2) of the node whose children are partials first .. first + children - 1 (at most
    GROUP, loaded as one tile) of the level starting at ``level_start``, each child spanning ``span``
    rows (the last one fewer), in the partials' type:

    mean = p + sum_i n_i (mean_i - p) / n, with p the first child's mean: the differences are
    exact where the means agree to a factor of 2, so the mean is off by about half a unit in the
    last place per level (the plain sum_i n_i mean_i / n, kept for a non-finite p, loses a few).
    M2 = sum_i M2_i + n_i (mean_i - mean)^2: every term is non-negative, so nothing cancels, unlike
    sum v^2 - n mean^2. What fp32 partials cost is each stored mean's rounding, ulp(mean) / 2,
    which perturbs the between-children term: a relative error of about eps |mean| / (std sqrt(n))
    in the variance (2e-5 for a mean of 10^4 standard deviations over 4096 rows).
    """
    child = first + tl.arange(0, GROUP)
    mask = (child < first + children)[:, None] & channel_mask[None, :]
    offsets = (level_start + child)[:, None] * num_channels + channels[None, :]
    part_mean = tl.load(part_mean_ptr + offsets, mask=mask, other=0.0, volatile=True)
    part_m2 = tl.load(part_m2_ptr + offsets, mask=mask, other=0.0, volatile=True)
    child_rows = tl.maximum(tl.minimum(rows - child.to(tl.int64) * span, span), 0).to(part_mean.dtype)[:, None]
    rows_below = tl.sum(child_rows, axis=0)
    pivot = tl.sum(tl.where(child[:, None] == first, part_mean, 0.0), axis=0)
    shift = tl.sum(child_rows * tl.where(mask, part_mean - pivot[None, :], 0.0), axis=0) / rows_below
    # inf - inf would make an infinite mean NaN: a non-finite pivot takes the plain weighted sum
    mean = tl.where(pivot - pivot == 0.0, pivot + shift, tl.sum(child_rows * part_mean, axis=0) / rows_below)
    delta = tl.where(mask, part_mean - mean[None, :], 0.0)
    return mean, tl.sum(part_m2 + child_rows * delta * delta, axis=0)


@triton.jit
def reduce_moments(values, row_mask, tile, num_tiles, rows, TILE_ROWS: tl.constexpr,
                   channels, channel_mask, num_channels, part_mean_ptr, part_m2_ptr, counter_ptr,
                   mean_out_ptr, var_out_ptr, running_mean_ptr, running_var_ptr, momentum,
                   UPDATE_RUNNING: tl.constexpr, GROUP: tl.constexpr):
    """Batch mean and biased variance per channel of ``rows`` rows, from the row tile ``values`` of
    each of ``num_tiles`` programs, combined up the reduction tree (module docstring) in the
    accumulation type of ``values`` (fp32, fp64 for fp64 tensors), the type of the partials.

    Each node holds (mean, M2) of its rows; a group combines as (Chan et al.)
    mean = sum_i n_i mean_i / n,  M2 = sum_i M2_i + n_i (mean_i - mean)^2,
    with n_i the rows under child i (a node at level l spans TILE_ROWS * GROUP^l rows, the last one
    fewer). The root gives var = M2 / rows, what BN normalises with, and the running statistics
    update as nn.BatchNorm2d's: r_mean += momentum (mean - r_mean), r_var += momentum (M2 / (rows - 1) - r_var).
    ``counter_ptr`` is this column block's tree_counters(num_tiles, GROUP) counters.
    """
    mean, m2 = _tile_moments(values, row_mask)
    if num_tiles > 1:
        tl.store(part_mean_ptr + tile * num_channels + channels, mean, mask=channel_mask)
        tl.store(part_m2_ptr + tile * num_channels + channels, m2, mask=channel_mask)
    node, count, level_start, counters_below = tile, num_tiles, tile * 0, tile * 0
    span = (rows * 0 + TILE_ROWS).to(tl.int64)
    last = num_tiles > 0
    while last & (count > 1):
        last, parent, first, children = tree_parent(counter_ptr, node, count, counters_below, GROUP)
        if last:
            mean, m2 = _combine_moments(part_mean_ptr, part_m2_ptr, level_start, first, children, rows, span,
                                        channels, channel_mask, num_channels, GROUP)
            parent_offsets = (level_start + count + parent) * num_channels + channels
            tl.store(part_mean_ptr + parent_offsets, mean, mask=channel_mask)
            tl.store(part_m2_ptr + parent_offsets, m2, mask=channel_mask)
        node, count, level_start, counters_below = tree_up(parent, count, level_start, counters_below, GROUP)
        span *= GROUP
    if last:
        tl.store(mean_out_ptr + channels, mean.to(mean_out_ptr.dtype.element_ty), mask=channel_mask)
        tl.store(var_out_ptr + channels, (m2 / rows).to(var_out_ptr.dtype.element_ty), mask=channel_mask)
        if UPDATE_RUNNING:
            # Through fp32 both ways: the interpreter converts bf16 <-> fp64 as integers (a bf16
            # module's running statistics came back 0), and fp32 holds every bf16/fp16 value.
            running_mean = widen(tl.load(running_mean_ptr + channels, mask=channel_mask)).to(mean.dtype)
            running_var = widen(tl.load(running_var_ptr + channels, mask=channel_mask)).to(mean.dtype)
            running_mean += momentum * (mean - running_mean)
            running_var += momentum * (m2 / (rows - 1) - running_var)
            tl.store(running_mean_ptr + channels, _narrow(running_mean, running_mean_ptr), mask=channel_mask)
            tl.store(running_var_ptr + channels, _narrow(running_var, running_var_ptr), mask=channel_mask)


@triton.jit
def grid_moments(values, row_mask, channels, channel_mask, rows, num_channels, part_mean_ptr, part_m2_ptr, counter_ptr,
                 mean_out_ptr, var_out_ptr, running_mean_ptr, running_var_ptr, momentum,
                 UPDATE_RUNNING: tl.constexpr, TILE_ROWS: tl.constexpr, GROUP: tl.constexpr):
    """:func:`reduce_moments` of a program of a (row tiles, channel blocks) grid over an [rows,
    num_channels] NHWC matrix, ``values`` its [TILE_ROWS, channels] tile: one tree per channel block,
    whose counters follow the blocks before it in ``counter_ptr``."""
    row_tiles = tl.num_programs(0)
    reduce_moments(widen(values), row_mask, tl.program_id(0), row_tiles, rows, TILE_ROWS, channels, channel_mask,
                   num_channels, part_mean_ptr, part_m2_ptr, counter_ptr + tl.program_id(1) * tree_counters(row_tiles, GROUP),
                   mean_out_ptr, var_out_ptr, running_mean_ptr, running_var_ptr, momentum, UPDATE_RUNNING, GROUP)


@triton.jit
def reduce_sums(first, second, row_mask, tile, num_tiles, channels, channel_mask, num_channels,
                part_first_ptr, part_second_ptr, counter_ptr,
                first_out_ptr, second_out_ptr, first_copy_ptr, second_copy_ptr, GROUP: tl.constexpr):
    """Per-channel sums over all row tiles of two [rows, channels] tiles, added up the reduction
    tree (module docstring) in the partials' type (fp32, fp64 for fp64 tensors). The sums go to
    ``*_out_ptr`` and again to ``*_copy_ptr``, each rounded to its own element type (a copy in the
    parameters' dtype, when they are the BN's parameter gradients, saves the caller a conversion
    launch; the same pointers twice store the same values twice). ``counter_ptr`` is this column
    block's tree_counters."""
    first = tl.sum(tl.where(row_mask[:, None], first, 0.0), axis=0).to(part_first_ptr.dtype.element_ty)
    second = tl.sum(tl.where(row_mask[:, None], second, 0.0), axis=0).to(part_second_ptr.dtype.element_ty)
    last, first, second = tree_sum(first, second, tile, num_tiles, counter_ptr, part_first_ptr, channels, channel_mask,
                                   num_channels, part_second_ptr, channels, channel_mask, num_channels, GROUP)
    if last:
        tl.store(first_out_ptr + channels, _narrow(first, first_out_ptr), mask=channel_mask)
        tl.store(second_out_ptr + channels, _narrow(second, second_out_ptr), mask=channel_mask)
        tl.store(first_copy_ptr + channels, _narrow(first, first_copy_ptr), mask=channel_mask)
        tl.store(second_copy_ptr + channels, _narrow(second, second_copy_ptr), mask=channel_mask)
