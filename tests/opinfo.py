"""The test suite's op registry, in the spirit of PyTorch's OpInfo: one entry per public op or module.

An :class:`OpInfo` says how to call an op and its plain-PyTorch reference, how to draw its sizes
(a hypothesis strategy) and build inputs from them, which dtypes run on which backend, which
memory layouts its inputs may take, and how its results are judged. Every reliability test
iterates over :data:`OPS`:

* ``test_properties.py``   forward and backward parity with the reference over drawn shapes, dtypes,
                           layouts, values and kernel tiles (interpreter and torch path)
* ``test_gradcheck.py``    ``torch.autograd.gradcheck`` in fp64; ``torch.library.opcheck`` of every
                           ``fasthg::`` custom op (it fails while a registered op has no sample here)
* ``test_numerics.py``     NaN/inf propagation, large-mean batch statistics, values near the fp16 range
* ``test_determinism.py``  bit-identical results under any program schedule
* ``test_memory_safety.py`` NaN guard memory and a bounds-checking interpreter

Adding an op is one entry in ``OPS`` (the heatmap_loss entry below is a functional op with
constant inputs and options drawn with its sizes), with an opcheck sample in ``custom_ops`` for
each ``fasthg::`` op it registers: tests/test_gradcheck.py fails while a registered op has none.

``relu_masks`` marks ops with ReLUs (see tests/parity.py for how their fp16/bf16 gradients are
judged); ``constant`` names inputs that get no gradient and keep their values (keypoints, masks);
``differentiable=False`` marks an op with no backward (render, decode: no gradcheck);
``batch_first=False`` an op whose outputs are not per sample (the loss); ``batch_statistics``
adds the large-mean checks; ``sums`` and ``propagates_nan=False`` drop the numerics checks of
bit-equality with eager fp16 and of a NaN reaching an output. Integer inputs keep their dtype;
float inputs take the drawn one.
"""
import copy
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from hypothesis import strategies as st
from torch import nn

import fasthg
from fasthg import reference
from fasthg.accuracy import in_accumulation_dtype, round_stored_tensors
from harness import EAGER_FACTOR

ALL_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


# ----------------------------------------------------------------------------------------- inputs

@dataclass
class Sample:
    """One set of arguments: tensors (fp64 for float ones) by argument name, in call order, and options."""
    tensors: dict
    options: dict = field(default_factory=dict)
    constant: tuple = ()  # tensors that get no gradient and keep their values


def normal(shape, generator, mean=0.0, std=1.0):
    return torch.randn(shape, generator=generator, dtype=torch.float64) * std + mean


def uniform(shape, generator, low=0.0, high=1.0):
    return torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low


VALUE_KINDS = {
    "normal": lambda t: t,
    "ties": lambda t: (2 * t).round().clamp(-3, 3),  # small integers: exact in every dtype, many ties
    "large": lambda t: 100 * t + 10,
}


# ---------------------------------------------------------------------------------------- layouts

def guarded(t, strides, fill=float("nan"), margin=5):
    """A differentiable view with ``t``'s values and the given strides, inside a buffer filled with
    ``fill`` that leaves ``margin`` elements before and after it (and in every gap of the strides)."""
    span = 1 + sum((size - 1) * stride for size, stride in zip(t.shape, strides)) if t.numel() else 0
    buffer = torch.full((span + 2 * margin,), fill, dtype=t.dtype)
    view = buffer.as_strided(t.shape, strides, margin)
    view.copy_(t)
    return view


def _dense_strides(t, memory_format):
    return torch.empty(t.shape, dtype=t.dtype, device="meta").to(memory_format=memory_format).stride()


def _channels_last_format(t):
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(t.dim(), torch.contiguous_format)


def _gapped_strides(t):
    """Every other element of a contiguous layout, plus an empty slot per row: no two rows adjacent."""
    strides, step = [], 2
    for size in reversed(t.shape):
        strides.append(step)
        step *= size + 1
    return tuple(reversed(strides))


LAYOUTS = {  # name: tensor -> a differentiable view of its values in that layout, NaN all around
    "contiguous": lambda t: guarded(t, _dense_strides(t, torch.contiguous_format)),
    "channels_last": lambda t: guarded(t, _dense_strides(t, _channels_last_format(t))),
    "strided": lambda t: guarded(t, _gapped_strides(t)),
}


# --------------------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class OpInfo:
    name: str
    sizes: object                                   # hypothesis strategy of a dict of sizes and flags
    example: dict                                   # one small fixed draw, for the non-hypothesis tests
    inputs: Callable[[dict, torch.Generator], Sample]
    op: Optional[Callable] = None                   # a functional op: op(*tensors, **options)
    reference: Optional[Callable] = None
    modules: Optional[Callable[[dict], tuple]] = None  # sizes -> (fused, reference) fp64 modules, same state
    public: bool = True
    interpreter_dtypes: tuple = ALL_DTYPES
    torch_dtypes: tuple = (torch.float64,)          # dtypes run on the torch path
    layouts: tuple = tuple(LAYOUTS)
    value_kinds: tuple = tuple(VALUE_KINDS)
    differentiable: bool = True
    batch_statistics: bool = False                  # normalises with batch statistics in training
    sums: bool = False                              # a sum in its own order: no bit-equality with eager's (the loss)
    propagates_nan: bool = True                     # a NaN input reaches an output (render drops a NaN joint instead)
    batch_first: bool = True                        # dim 0 of every input and output is the batch
    relu_masks: bool = False                        # has ReLUs after convs: see tests/parity.py on mask flips
    fp64_tolerance: float = 1e-9                    # rtol and atol (on the scale of the tensor set) in fp64
    eager_factor: float = EAGER_FACTOR
    cost: int = 1                                   # a property draws max_examples // cost examples (at least 1)
    gradcheck: dict = field(default_factory=lambda: {"interpreter": "full", "torch": "full"})  # backend: mode
    gradcheck_parameters: bool = True               # gradcheck a module's parameters too, not only its inputs
    custom_ops: dict = field(default_factory=dict)  # "fasthg::name" -> () -> opcheck args, per op it launches

    def __str__(self):
        return self.name


# ------------------------------------------------------------------------------- module builders

def randomize(module, generator):
    """Non-trivial parameters and running statistics, drawn from ``generator`` (fp64)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(uniform(m.weight.shape, generator, 0.5, 1.5))
                m.bias.copy_(normal(m.bias.shape, generator, std=0.2))
                m.running_mean.copy_(normal(m.running_mean.shape, generator, std=0.2))
                m.running_var.copy_(uniform(m.running_var.shape, generator, 0.5, 2.0))
            elif isinstance(m, nn.Conv2d):
                fan_in = max(1, m.in_channels * m.weight[0, 0].numel()) if m.weight.numel() else 1
                m.weight.copy_(normal(m.weight.shape, generator, std=fan_in ** -0.5))
                m.bias.copy_(normal(m.bias.shape, generator, std=0.2))
    return module


def pair(make_fused, make_reference, seed=0):
    """(fused, reference) fp64 modules with one set of random parameters and statistics."""
    ref = randomize(make_reference().double(), torch.Generator().manual_seed(seed))
    fused = make_fused().double()
    fused.load_state_dict(ref.state_dict())
    return fused, ref


class StackHeadOf(nn.Module):
    """Stack ``index``'s head of ``model`` as a module of (h, x), run by the model's own ``head``:
    stack 0 of a 2-stack model merges into the next stack, stack 1 is the last. Only the head's
    parameters get gradients (the features conv-BN-ReLU, the heatmap conv and the merges)."""

    def __init__(self, model, merged):
        super().__init__()
        self.model, self.index = model, 0 if merged else 1
        model.requires_grad_(False)
        self.parts = [model.features[self.index][1], model.outs[self.index]]
        self.parts += [model.merge_features[0], model.merge_preds[0]] if merged else []
        for part in self.parts:
            part.requires_grad_(True)

    def forward(self, h, x):
        preds, x_next = self.model.head(self.index, h, x)
        return preds if x_next is None else (preds, x_next)


class _Absent(nn.Module):
    """Stands in for a block that a stack's head does not use."""

    def __init__(self, *args, **kwargs):
        super().__init__()


def _heads_only(model_class):
    """``model_class`` built without the hourglasses, Residuals and pools its heads do not use:
    the same ``head``, at a small part of the cost of building and copying a whole model."""
    return type(f"{model_class.__name__}Heads", (model_class,),
                {"residual_class": _Absent, "hourglass_class": _Absent, "pool_class": _Absent})


def stack_head_pair(f, oup, merged, seed=0):
    """(fused, reference) fp64 heads of 2-stack models with ``f`` features and ``oup`` heatmaps, one
    state: the head's parts drawn by :func:`randomize` in the order the head applies them."""
    ref = StackHeadOf(_heads_only(reference.StackedHourglass)(2, f, oup), merged).double()
    randomize(nn.ModuleList(ref.parts), torch.Generator().manual_seed(seed))
    fused = StackHeadOf(_heads_only(fasthg.StackedHourglass)(2, f, oup), merged).double()
    fused.load_state_dict(ref.state_dict())
    return fused, ref


# ------------------------------------------------------------------------------- opcheck samples

def residual_forward_args(module, x, training):
    """The arguments of fasthg::residual_forward for a fasthg.Residual ``module`` and input ``x``."""
    bns = (module.bn1, module.bn2, module.bn3)
    convs = (module.conv1.conv, module.conv2.conv, module.conv3.conv)
    skip = module.skip_layer.conv
    running = [t.clone() for bn in bns for t in (bn.running_mean, bn.running_var)]
    return (x, [bn.weight.detach() for bn in bns], [bn.bias.detach() for bn in bns], *running,
            [c.weight.detach() for c in convs], [c.bias.detach() for c in convs],
            skip.weight.detach() if module.need_skip else None, skip.bias.detach() if module.need_skip else None,
            training, 0.1, 1e-5)


def _residual_forward_sample():
    fused, _ = pair(lambda: fasthg.Residual(3, 4), lambda: reference.Residual(3, 4))
    with torch.no_grad():
        return residual_forward_args(fused.float(), torch.randn(2, 3, 4, 5), True)


def _residual_backward_sample():
    forward = _residual_forward_sample()
    with torch.no_grad():
        out, y1, y2, x_stats, stats = torch.ops.fasthg.residual_forward(*forward)
    # with a pass-through's gradient, which the dx kernel adds
    return (torch.randn_like(out), forward[0], y1, y2, x_stats, stats, forward[1], forward[2], forward[9], forward[11],
            True, 1e-5, torch.randn_like(forward[0]))


def _head_forward_sample():
    fused, _ = stack_head_pair(5, 3, True)
    model = fused.model.float()
    conv, bn, outs = model.features[0][1].conv, model.features[0][1].bn, model.outs[0].conv
    mf, mp = model.merge_features[0].conv.conv, model.merge_preds[0].conv.conv
    with torch.no_grad():
        return (torch.randn(2, 5, 3, 4), torch.randn(2, 5, 3, 4), conv.weight.detach(), conv.bias.detach(),
                bn.weight.detach(), bn.bias.detach(), bn.running_mean.clone(), bn.running_var.clone(),
                outs.weight.detach(), outs.bias.detach(), mf.weight.detach(), mf.bias.detach(), mp.weight.detach(),
                mp.bias.detach(), True, 0.1, 1e-5)


def _head_backward_sample():
    forward = _head_forward_sample()
    with torch.no_grad():
        preds, _, z, stats = torch.ops.fasthg.head_forward(*forward)
    h, x = forward[0], forward[1]
    return (torch.randn_like(preds), torch.randn_like(x), h, z, preds, stats, forward[2], forward[4], forward[5],
            forward[8], forward[10], forward[12], True, 1e-5)


def _window_index(values):
    """A max-pool's window index as its op allocates one: int8, channels_last."""
    return values.to(torch.int8, memory_format=torch.channels_last)


def _heatmap_loss_sample():
    preds = torch.rand(1, 2, 3, 3, 4).requires_grad_()
    keypoints = torch.tensor([[[1.5, 0.5], [float("nan"), 2.0], [2.0, 9.0]]])
    return preds, keypoints, torch.tensor([[True, True, False]]), 1.0, "princeton", True, True


# ------------------------------------------------------------------------------------ strategies

MIN_BN_VALUES = 4


def _batch(training, *spatial):
    """Batch sizes that give train-mode BN at least MIN_BN_VALUES values per channel. PyTorch needs 2;
    over 2 or 3 the BN backward's centring cancels nearly all of the gradient, and eager fp32's
    own error there is luck, no bar to judge by (docs/without_a_gpu.md); test_numerics checks 2 in fp64."""
    pixels = 1
    for size in spatial:
        pixels *= size
    low = -(-MIN_BN_VALUES // pixels) if training else 1
    return st.integers(low, max(low, 3))


CHANNELS = st.one_of(st.integers(1, 9), st.sampled_from([64, 67]))  # odd, tiny, and past a 64-wide block


@st.composite
def _residual_sizes(draw):
    training, h, w = draw(st.booleans()), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    inp = draw(st.integers(1, 7))  # out >= 2: the bottleneck has out // 2 channels
    out = inp if inp >= 2 and draw(st.booleans()) else draw(st.one_of(st.integers(2, 9), st.just(18)))
    return {"inp": inp, "out": out, "n": draw(_batch(training, h, w)), "h": h, "w": w, "training": training}


@st.composite
def _hourglass_sizes(draw):
    depth, training = draw(st.integers(1, 2)), draw(st.booleans())
    kh, kw = draw(st.integers(1, 2)), draw(st.integers(1, 2))  # innermost level: kh x kw
    return {"depth": depth, "f": draw(st.integers(2, 4)), "increase": draw(st.integers(0, 1)),
            "n": draw(_batch(training, kh, kw)), "h": kh << depth, "w": kw << depth, "training": training}


@st.composite
def _head_sizes(draw):
    training, h, w = draw(st.booleans()), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    # f >= 2: a model's Residual(f, f) has f // 2 bottleneck channels.
    return {"f": draw(st.integers(2, 9)), "oup": draw(st.integers(1, 5)), "merged": draw(st.booleans()),
            "n": draw(_batch(training, h, w)), "h": h, "w": w, "training": training}


HEATMAP_SIZES = {"n": st.integers(1, 3), "joints": st.integers(1, 5), "h": st.integers(1, 9), "w": st.integers(1, 9)}
TARGET_OPTIONS = {"sigma": st.sampled_from([0.5, 1.0, 2.0]), "style": st.sampled_from(reference.heatmaps.STYLES)}


def _keypoints(s, g):
    """(n, joints, 2) x, y uniform over the map and one pixel around it (some joints off the map,
    dropped), but the first joint at the map's centre: kept in every style, so neither the maps nor
    the weighted loss's gradient are all zero (parity judges low precision relative to their scale)."""
    keypoints = uniform((s["n"], s["joints"], 2), g) * torch.tensor([s["w"] + 2.0, s["h"] + 2.0]) - 1
    keypoints[:1, :1] = torch.tensor([s["w"] / 2, s["h"] / 2])  # (none in an empty batch)
    return keypoints


def _visible(s, g):
    """(n, joints) bool, a quarter invisible; the first joint visible (see _keypoints)."""
    visible = uniform((s["n"], s["joints"]), g) > 0.25
    visible[:1, :1] = True
    return visible


# -------------------------------------------------------------------------------------- entries

OPS = [
    OpInfo(
        name="upsample_add",
        op=fasthg.ops.upsample_add,
        reference=reference.upsample_add,
        sizes=st.fixed_dictionaries({"n": st.integers(1, 3), "c": CHANNELS, "h": st.integers(1, 6), "w": st.integers(1, 7)}),
        example={"n": 1, "c": 3, "h": 2, "w": 3},
        inputs=lambda s, g: Sample({"low": normal((s["n"], s["c"], s["h"], s["w"]), g),
                                    "skip": normal((s["n"], s["c"], 2 * s["h"], 2 * s["w"]), g)}),
        custom_ops={"fasthg::upsample_add": lambda: (torch.randn(2, 3, 4, 5), torch.randn(2, 3, 8, 10), torch.empty(6),
                                                     torch.randn(3), torch.rand(3) + 0.5, 0.1),
                    "fasthg::upsample_add_backward": lambda: (torch.randn(2, 3, 8, 10),)},
    ),
    OpInfo(
        name="max_pool2x2",
        op=fasthg.ops.max_pool2x2,
        reference=lambda x: torch.nn.functional.max_pool2d(x, 2),
        sizes=st.fixed_dictionaries({"n": st.integers(1, 3), "c": CHANNELS, "h": st.integers(2, 9), "w": st.integers(2, 9)}),
        example={"n": 1, "c": 3, "h": 3, "w": 5},
        inputs=lambda s, g: Sample({"x": normal((s["n"], s["c"], s["h"], s["w"]), g)}),
        custom_ops={"fasthg::max_pool2x2": lambda: (torch.randn(2, 3, 6, 5), _window_index(torch.empty(2, 3, 3, 2)),
                                                    torch.empty(6), torch.randn(3), torch.rand(3) + 0.5, 0.1),
                    # odd width, with a pass-through's gradient: the uncovered column is that gradient's
                    "fasthg::max_pool2x2_backward": lambda: (torch.randn(2, 3, 3, 2),
                                                             _window_index(torch.randint(4, (2, 3, 3, 2))), 6, 5,
                                                             torch.randn(2, 3, 6, 5))},
    ),
    OpInfo(
        name="render_heatmaps",
        op=fasthg.ops.render_heatmaps,
        reference=reference.render_heatmaps,
        sizes=st.fixed_dictionaries({**HEATMAP_SIZES, **TARGET_OPTIONS}),
        example={"n": 2, "joints": 3, "h": 5, "w": 6, "sigma": 1.0, "style": "bearpaw"},
        inputs=lambda s, g: Sample({"keypoints": _keypoints(s, g), "visible": _visible(s, g)},
                                   options={"size": (s["h"], s["w"]), "sigma": s["sigma"], "style": s["style"]}),
        value_kinds=("normal", "ties"),  # ties: keypoints on integers, where the styles' boxes and centres switch
        differentiable=False,
        propagates_nan=False,            # a NaN keypoint's joint is dropped: an all-zero map, as in the reference
        fp64_tolerance=3e-7,             # heatmaps are float32 for every keypoint dtype: 2.5 ulps of the peak 1
        custom_ops={"fasthg::render_heatmaps": lambda: (torch.tensor([[[4.5, 3.5], [9.0, 2.0]]]),
                                                        torch.tensor([[True, False]]), 6, 7, 1.0, "princeton")},
    ),
    OpInfo(
        name="heatmap_loss",
        op=fasthg.ops.heatmap_loss,
        reference=in_accumulation_dtype(reference.heatmap_loss),  # summed in fp32, the gradient in preds' dtype
        sizes=st.fixed_dictionaries({**HEATMAP_SIZES, **TARGET_OPTIONS, "stacks": st.integers(1, 3),
                                     "weighted": st.booleans()}),
        example={"n": 1, "stacks": 2, "joints": 3, "h": 3, "w": 4, "sigma": 1.0, "style": "mmpose", "weighted": False},
        inputs=lambda s, g: Sample({"preds": uniform((s["n"], s["stacks"], s["joints"], s["h"], s["w"]), g),
                                    "keypoints": _keypoints(s, g), "visible": _visible(s, g)},
                                   options={"sigma": s["sigma"], "style": s["style"], "weighted": s["weighted"],
                                            "per_stack": True},
                                   constant=("keypoints", "visible")),
        batch_first=False,  # the losses are per stack
        sums=True,
        custom_ops={"fasthg::heatmap_loss": _heatmap_loss_sample},
    ),
    OpInfo(
        name="decode_heatmaps",
        op=fasthg.ops.decode_heatmaps,
        reference=in_accumulation_dtype(reference.decode_heatmaps),  # coords and peaks in fp32 (the reference's fp64)
        sizes=st.fixed_dictionaries({**HEATMAP_SIZES, "style": st.sampled_from(reference.heatmaps.DECODE_STYLES)}),
        example={"n": 2, "joints": 3, "h": 4, "w": 5, "style": "princeton"},
        inputs=lambda s, g: Sample({"heatmaps": normal((s["n"], s["joints"], s["h"], s["w"]), g)},
                                   options={"style": s["style"]}),
        differentiable=False,
        custom_ops={"fasthg::decode_heatmaps": lambda: (torch.randn(2, 3, 4, 5), "bearpaw")},
    ),
    OpInfo(
        name="Residual",
        modules=lambda s: pair(lambda: fasthg.Residual(s["inp"], s["out"]), lambda: reference.Residual(s["inp"], s["out"])),
        sizes=_residual_sizes(),
        example={"inp": 3, "out": 4, "n": 2, "h": 2, "w": 3, "training": True},
        inputs=lambda s, g: Sample({"x": normal((s["n"], s["inp"], s["h"], s["w"]), g, mean=0.5, std=2.0)}),
        batch_statistics=True,
        relu_masks=True,
        cost=2,
        gradcheck={"interpreter": "fast", "torch": "fast"},
        custom_ops={"fasthg::residual_forward": _residual_forward_sample,
                    "fasthg::residual_backward": _residual_backward_sample},
    ),
    OpInfo(
        name="stack_head",
        public=False,
        modules=lambda s: stack_head_pair(s["f"], s["oup"], s["merged"]),
        sizes=_head_sizes(),
        example={"f": 5, "oup": 3, "merged": True, "n": 2, "h": 3, "w": 4, "training": True},
        inputs=lambda s, g: Sample({"h": normal((s["n"], s["f"], s["h"], s["w"]), g),
                                    "x": normal((s["n"], s["f"], s["h"], s["w"]), g)}),
        torch_dtypes=(),  # the torch path of the models is the reference itself
        batch_statistics=True,
        relu_masks=True,
        cost=2,
        gradcheck={"interpreter": "fast"},
        custom_ops={"fasthg::head_forward": _head_forward_sample, "fasthg::head_backward": _head_backward_sample},
    ),
    OpInfo(
        name="Hourglass",
        modules=lambda s: pair(lambda: fasthg.Hourglass(s["depth"], s["f"], increase=s["increase"]),
                               lambda: reference.Hourglass(s["depth"], s["f"], increase=s["increase"])),
        sizes=_hourglass_sizes(),
        example={"depth": 1, "f": 2, "increase": 1, "n": 2, "h": 2, "w": 4, "training": True},
        inputs=lambda s, g: Sample({"x": normal((s["n"], s["f"], s["h"], s["w"]), g)}),
        batch_statistics=True,
        relu_masks=True,
        cost=6,
        # The interpreter's gradcheck (40 s) would repeat its parts' (Residual, max_pool2x2,
        # upsample_add); its fp64 parity with the reference's autograd is in test_properties.
        gradcheck={"torch": "fast"},
        gradcheck_parameters=False,  # the Residual entry checks its blocks' parameters
    ),
    OpInfo(
        name="PoseNet",
        # one stack unless the sizes say (a second one has the head's merge into the next stack)
        modules=lambda s: pair(lambda: fasthg.PoseNet(s.get("nstack", 1), 4, 2),
                               lambda: reference.PoseNet(s.get("nstack", 1), 4, 2)),
        sizes=st.fixed_dictionaries({"training": st.booleans()}),
        example={"training": False},
        inputs=lambda s, g: Sample({"imgs": uniform((2, 64, 64, 3), g)}),
        interpreter_dtypes=(torch.float64,),  # whole models are compared in fp64 (docs/without_a_gpu.md)
        value_kinds=("normal",),               # images in [0, 1]
        cost=50,                               # ~20 s an example in the interpreter: one per CI run
        gradcheck={"torch": "fast"},
        gradcheck_parameters=False,
    ),
]


def draw_sample(info, sizes, values="normal", seed=0):
    """The entry's inputs at ``sizes``, with values of the given kind (constant inputs as drawn)."""
    sample = info.inputs(sizes, torch.Generator().manual_seed(seed))
    transform = VALUE_KINDS[values]
    sample.tensors = {name: transform(t) if t.is_floating_point() and name not in sample.constant else t
                      for name, t in sample.tensors.items()}
    return sample


def case_strategy(info, dtypes, tiles):
    """Hypothesis strategy of one call: sizes, dtype, input layout, kind of values, seed, kernel tiles."""
    return st.fixed_dictionaries({
        "sizes": info.sizes, "dtype": st.sampled_from(dtypes), "layout": st.sampled_from(info.layouts),
        "values": st.sampled_from(info.value_kinds), "seed": st.integers(0, 2**31 - 1), "tiles": st.sampled_from(tiles),
    })


def entry(name):
    return next(info for info in OPS if info.name == name)


# ---------------------------------------------------------------------------------------- calling

@dataclass
class Bound:
    """An entry ready to call in one dtype: ``fn(*tensors)`` and the named parameters that get gradients."""
    fn: Callable
    params: dict
    module: Optional[nn.Module] = None

    def buffers(self):
        return dict(self.module.named_buffers()) if self.module is not None else {}


def bind(info, sizes, kind, dtype, options=None, storage=None):
    """The ``kind`` ("fused" or "reference") implementation of ``info`` at ``sizes`` in ``dtype``.

    ``storage``: a module's intermediate tensors take the values fasthg's kernels store in that
    dtype (:func:`fasthg.accuracy.round_stored_tensors`): the reference then decides each ReLU
    on the value the kernels decide it on.
    """
    options = options or {}
    if info.modules is None:
        fn = info.op if kind == "fused" else info.reference
        return Bound(lambda *tensors: fn(*tensors, **options), {})
    fused, ref = info.modules(sizes)
    module = copy.deepcopy(fused if kind == "fused" else ref).to(dtype).train(sizes.get("training", True))
    if storage is not None:
        round_stored_tensors(module, storage)
    params = {name: p for name, p in module.named_parameters() if p.requires_grad}
    return Bound(lambda *tensors: module(*tensors, **options), params, module)


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def leaves(sample, dtype, differentiable=True):
    """The sample's tensors as leaves in ``dtype`` (float ones), requiring grad unless constant."""
    result = {}
    for name, t in sample.tensors.items():
        t = t.to(dtype) if t.is_floating_point() else t
        wants_grad = differentiable and t.is_floating_point() and name not in sample.constant
        result[name] = t.detach().clone().requires_grad_(wants_grad)
    return result


def grad_outputs(outputs, seed=0):
    """A fixed random output gradient per output, drawn in fp64 and cast to the output's dtype."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(normal(o.shape, generator).to(o.dtype) for o in outputs)


@dataclass
class Result:
    outputs: tuple
    grads: dict   # input and parameter name -> gradient (None entries dropped)
    buffers: dict


def run(bound, inputs, layout="contiguous", backward=True, grads_out=None):
    """Forward (inputs viewed in ``layout``) and, for differentiable inputs, backward with ``grads_out``."""
    views = [LAYOUTS[layout](t) if t.is_floating_point() else t for t in inputs.values()]
    outputs = as_tuple(bound.fn(*views))
    tracked = {name: t for name, t in inputs.items() if t.requires_grad}
    tracked.update(bound.params)
    grads = {}
    if backward and tracked:
        grads_out = grad_outputs(outputs) if grads_out is None else grads_out
        live = [(o, g) for o, g in zip(outputs, grads_out) if o.requires_grad]
        found = torch.autograd.grad([o for o, _ in live], list(tracked.values()), [g for _, g in live], allow_unused=True)
        grads = {name: g for name, g in zip(tracked, found) if g is not None}
    return Result(tuple(o.detach() for o in outputs), grads, {k: v.clone() for k, v in bound.buffers().items()})
