"""``python -m fasthg.export --checkpoint CKPT --format onnx|torchscript --output FILE``: a PoseNet
for runtimes without Triton (ONNX Runtime, TensorRT, LibTorch).

The weights (anything ``fasthg.predict`` reads) go into :class:`fasthg.reference.PoseNet`, the
same state_dict in plain PyTorch operations (fasthg's Triton kernels cannot be exported), in eval
mode. The exported model takes ``images``: float32 (N, S, S, 3), NHWC RGB in [0, 1] (princeton's
layout), S = ``--input-size`` (default: the checkpoint's), and returns ``heatmaps``: float32
(N, nstack, K, S/4, S/4), the last stack's being the prediction. ONNX: opset 17, N dynamic.
TorchScript: traced at N = 1; the traced graph takes any N.
"""
import argparse
import io
import warnings

import torch

from . import cli
from .errors import InvalidValueError, UserError
from .files import write_atomic
from .pose_model import load_weights, read_pose_weights
from .reference import PoseNet

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fasthg.export", description=__doc__.split("\n\n")[0].strip("`"))
    parser.add_argument("--checkpoint", required=True,
                        help="a fasthg run folder or checkpoint, princeton-vl's checkpoint.pt or a PoseNet state_dict file")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--output", required=True, help="the file to write")
    parser.add_argument("--input-size", type=int, help="crop side S (default: the run's; 256, princeton's, for other weights)")
    return parser


def reference_model(source):
    """The plain-PyTorch PoseNet (eval mode, CPU) of any PoseNet checkpoint, and its PoseModelInfo."""
    state, info = read_pose_weights(source)
    shape = info.architecture
    model = PoseNet(shape.nstack, shape.inp_dim, shape.oup_dim, increase=shape.increase)
    load_weights(model, state, info)
    return model.eval(), info


def exported_bytes(model, example, form):
    """The file contents of ``model`` traced on ``example`` in format ``form`` (one of FORMATS)."""
    buffer = io.BytesIO()
    with torch.no_grad():
        if form == "torchscript":
            torch.jit.save(torch.jit.trace(model, example, check_trace=False), buffer)  # no control flow to check
        else:
            with warnings.catch_warnings():
                # The TorchScript-based exporter is deprecated in favour of torch.export's, which needs
                # onnxscript besides onnx; this network has no control flow, so both give one graph.
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=ONNX_OPSET,
                                  input_names=["images"], output_names=["heatmaps"],
                                  dynamic_axes={"images": {0: "batch"}, "heatmaps": {0: "batch"}})
    return buffer.getvalue()


def main(argv=None):
    args = build_parser().parse_args(argv)
    model, info = reference_model(args.checkpoint)
    size = info.input_size if args.input_size is None else args.input_size
    if size < 64 or size % 64:
        raise InvalidValueError(f"--input-size: expected a multiple of 64 (the network halves it 6 times), got {size}")
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401 (torch.onnx.export needs it)
        except ImportError:
            raise UserError("--format onnx needs the onnx package: pip install onnx") from None
    write_atomic(args.output, exported_bytes(model, torch.zeros(1, size, size, 3), args.format))
    shape = info.architecture
    print(f"{args.format} model in {args.output}: images float32 (N, {size}, {size}, 3) NHWC RGB in [0, 1] -> "
          f"heatmaps (N, {shape.nstack}, {shape.oup_dim}, {size // 4}, {size // 4})"
          + (f", opset {ONNX_OPSET}" if args.format == "onnx" else ""))
    return 0


if __name__ == "__main__":
    cli.run(main)
