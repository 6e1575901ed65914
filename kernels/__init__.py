"""fasthg's Triton kernels (installed as ``fasthg.kernels``): ``@triton.jit`` code only.

Launch code, validation and autograd live in ``fasthg.ops``; the shipped launch configurations
of every kernel are data in :mod:`fasthg.kernels.registry`.
"""
