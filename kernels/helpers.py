"""``@triton.jit`` helpers shared by the kernel families: one definition for every caller."""
import triton
import triton.language as tl


@triton.jit
def widen(x):
    """Promotes a loaded tile to the accumulation type: fp64 stays fp64, everything else becomes fp32."""
    if x.dtype == tl.float64:
        return x
    return x.to(tl.float32)
