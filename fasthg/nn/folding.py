"""Eval-mode BatchNorm folded into the convolution before it, cached between forwards.

With running statistics, bn(conv(x)) = conv'(x) with

    scale = gamma / sqrt(running_var + eps),  w' = w * scale[o],  b' = (b - running_mean) * scale + beta

Recomputing (w', b') costs a dozen small ops per fold, as much as the BN pass it saves at small
sizes, so :class:`FoldedConv` keeps the result while every source tensor is the same object at
the same version (no in-place update: an optimizer step, ``load_state_dict``, ``.to()`` all show).
It recomputes without caching while autograd records (the fold must then be differentiable),
while torch.compile traces (the compiled graph folds on its own) and for inference tensors.
"""
import torch


def fold(conv, bn):
    """(weight, bias) of bn(conv(x)) as one conv, with bn's running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight * scale.view(-1, 1, 1, 1), (conv.bias - bn.running_mean) * scale + bn.bias


def _sources(conv, bn):
    return (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)


class FoldedConv:
    """The folded (weight, bias) of one conv and the BN after it, cached; see the module docstring."""

    def __init__(self):
        self._key = None
        self._folded = None

    def __call__(self, conv, bn):
        sources = _sources(conv, bn)
        # Inference tensors (a model built under inference_mode) have no version counter.
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or any(t.is_inference() for t in sources):
            return fold(conv, bn)
        # The tensors themselves are held, so another tensor cannot take an old one's place.
        key = (sources, tuple(t._version for t in sources), bn.eps)
        if self._key is None or not _same(key, self._key):
            self._folded, self._key = fold(conv, bn), key
        return self._folded

    def clear(self):
        """Drops the cached tensors (training needs none of them)."""
        self._key = self._folded = None


def _same(key, cached):
    (sources, versions, eps), (cached_sources, cached_versions, cached_eps) = key, cached
    return all(a is b for a, b in zip(sources, cached_sources)) and versions == cached_versions and eps == cached_eps

