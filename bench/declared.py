"""The kernel launches each fasthg custom op declares (``KERNEL_LAUNCHES`` of its module), per call.

The accounting checks every call's recorded launches against this, and the tests check it against
the launches the kernels really make in the interpreter: a declaration that drifts from the code fails.
"""
import importlib


def _arguments(func, args, kwargs):
    return {**dict(zip((a.name for a in func._schema.arguments), args)), **kwargs}


# op name: (its module, which KERNEL_LAUNCHES entry a call with these arguments runs)
_VARIANTS = {
    "fasthg::residual_forward": ("residual", lambda a: "forward_eval" if not a["training"] else
                                 "forward_train" if a.get("x_stats") is None else "forward_train_given_stats"),
    "fasthg::residual_backward": ("residual", lambda a: "backward" if a["skip_weight"] is None else "backward_skip"),
    "fasthg::head_forward": ("head", lambda a: "forward" if a["merge_feature_weight"] is not None else "forward_last"),
    "fasthg::head_backward": ("head", lambda a: "backward" if a["merge_feature_weight"] is not None else "backward_last"),
    "fasthg::upsample_add": ("upsample_add", lambda a: "forward"),
    "fasthg::upsample_add_backward": ("upsample_add", lambda a: "backward"),
    "fasthg::max_pool2x2": ("max_pool", lambda a: "forward"),
    "fasthg::max_pool2x2_backward": ("max_pool", lambda a: "backward"),
    "fasthg::render_heatmaps": ("heatmaps.render", lambda a: "forward"),
    "fasthg::heatmap_loss": ("heatmaps.loss", lambda a: "forward"),  # its backward is one aten multiply
    "fasthg::decode_heatmaps": ("heatmaps.decode", lambda a: "forward"),
}


def declared_variant(func, args, kwargs):
    """(op module, its KERNEL_LAUNCHES key) of a call of the fasthg op ``func``."""
    module, variant = _VARIANTS[func._schema.name]
    # By path: fasthg.ops re-exports functions under some module names (fasthg.ops.upsample_add).
    return importlib.import_module(f"fasthg.ops.{module}"), variant(_arguments(func, args, kwargs))
