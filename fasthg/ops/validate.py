"""Argument checks shared by every op: each failure names the argument and what was expected.

All checks run before any kernel launch, so bad input never reaches Triton.
"""
import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _describe(dtypes):
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


def check_tensor(name, value, ndim=None, dtypes=FLOAT_DTYPES, layout=None):
    """Checks that ``value`` is a tensor of rank ``ndim`` (an int or a tuple of ints) and a dtype in ``dtypes``.

    ``layout`` is a human description of the axes (e.g. "(N, C, H, W)") used in the message.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense (strided) tensor, got layout {value.layout}")
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if ranks is not None and value.dim() not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(f"{name}: expected a {want} tensor{' ' + layout if layout else ''}, got shape {tuple(value.shape)}")
    if dtypes is not None and value.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype in ({_describe(dtypes)}), got {value.dtype}")
    return value


def check_same_device(**tensors):
    """Checks that every given tensor (None entries are skipped) lives on one device."""
    named = [(n, t) for n, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.device != first.device:
            raise ValueError(f"{name}: expected a tensor on {first.device} like {first_name}, got {t.device}")


def check_same_dtype(**tensors):
    """Checks that every given tensor (None entries are skipped) has one dtype."""
    named = [(n, t) for n, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.dtype != first.dtype:
            raise TypeError(f"{name}: expected dtype {first.dtype} like {first_name}, got {t.dtype}")


def check_nonempty(name, value):
    """Checks that a tensor has at least one element (an empty batch would launch an empty grid)."""
    if value.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(value.shape)}")


def check_dtype_like_parameters(name, value, parameter):
    """Checks that ``value`` has the dtype of a module's parameters, as PyTorch's conv requires,
    unless autocast (which casts both) is on for its device."""
    device = value.device.type
    if device in ("cpu", "cuda") and torch.is_autocast_enabled(device):
        return
    if value.dtype != parameter.dtype:
        raise TypeError(f"{name}: expected dtype {parameter.dtype} like the module's parameters (convert one of "
                        f"them, or run under torch.autocast), got {value.dtype}")


def check_size(name, value, minimum):
    """Checks that a size argument is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def check_flag(name, value):
    """Checks that a flag argument is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def check_choice(name, value, choices):
    """Checks that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_positive(name, value):
    """Checks that a number is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return value


INT32_ELEMENTS = 2**31


def check_int32_addressable(name, shape):
    """Checks that a tensor of ``shape`` has fewer than 2^31 elements: kernels address with int32 offsets."""
    elements = 1
    for size in shape:
        elements *= size
    if elements >= INT32_ELEMENTS:
        raise ValueError(f"{name}: expected fewer than 2^31 elements (the kernels use 32-bit offsets), got shape "
                         f"{tuple(shape)}; split the batch")
