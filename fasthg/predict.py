"""``python -m fasthg.predict IMAGE... --checkpoint RUN``: keypoints of one person per image.

The person is cropped as in training (a square of 200·scale pixels around a centre): by default
the whole image, or ``--box`` (the person's bounding box plus a 25% margin, as MPII's people fill
about 80% of their crop), or ``--center X Y --scale S`` in MPII's convention. Writes
``keypoints.json`` (x, y in image pixels and a confidence, the heatmap's peak, per joint) and an
overlay PNG per image into ``--output``.
"""
import argparse
import json
import os

import cv2
import torch

from . import cli
from .data.transforms import CROP_UNIT, crop_matrix, invert_matrix, warp_image
from .dispatch import BACKENDS
from .distributed import use_device
from .errors import MissingFileError, UserError
from .files import write_atomic
from .inference import flip_tested, model_input, run_model, to_original
from .joints import JOINT_NAMES
from .model_factory import load_trained_model, select_backend
from .targets import HeatmapTargets
from .visualize import draw_skeleton, encode_png

_BOX_MARGIN = 1.25


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fasthg.predict", description=__doc__.split("\n\n")[0].strip("`"))
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file or a run folder")
    person = parser.add_mutually_exclusive_group()
    person.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="the person's bounding box")
    person.add_argument("--center", type=float, nargs=2, metavar=("X", "Y"), help="the person's centre (with --scale)")
    parser.add_argument("--scale", type=float, help="the person's size in units of 200 pixels (with --center)")
    parser.add_argument("--flip-test", action="store_true", help="average the heatmaps with the mirror image's")
    parser.add_argument("--min-confidence", type=float, default=0.1, help="joints below it are not drawn (default 0.1)")
    parser.add_argument("--output", default="predictions", help="folder for keypoints.json and the overlays")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    return parser


def person_crop(args, width, height):
    """(centre, scale) of the crop: the options', or the whole image."""
    if args.box is not None:
        x0, y0, x1, y1 = args.box
        if x1 <= x0 or y1 <= y0:
            raise UserError(f"--box: expected X0 < X1 and Y0 < Y1, got {args.box}")
        return ((x0 + x1) / 2, (y0 + y1) / 2), max(x1 - x0, y1 - y0) * _BOX_MARGIN / CROP_UNIT
    if args.center is not None:
        return tuple(args.center), args.scale
    return (width / 2, height / 2), max(width, height) / CROP_UNIT


def read_image(path):
    """An RGB uint8 image; clear errors for a missing or undecodable file."""
    if not os.path.isfile(path):
        raise MissingFileError(f"image not found: {path}")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"image {path} could not be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def overlay_name(path, used):
    """A PNG name for ``path``'s overlay that no earlier image took."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name, number = f"{stem}.pose.png", 1
    while name in used:
        name, number = f"{stem}-{number}.pose.png", number + 1
    used.add(name)
    return name


@torch.no_grad()
def predict_image(model, config, image, centre, scale, flip, device):
    """Keypoints (16, 2) in image pixels and confidences (16,) of the person at centre/scale."""
    size = config["input_size"]
    matrix = crop_matrix(centre, scale, size)
    crop = warp_image(image, matrix, size)
    inputs = model_input(torch.from_numpy(crop)[None], device)
    heatmaps = run_model(model, inputs)[:, -1]
    if flip:
        heatmaps = flip_tested(model, inputs, heatmaps)
    coordinates, peaks = HeatmapTargets(config["heatmap_style"], config["sigma"]).decode(heatmaps)
    back = torch.from_numpy(invert_matrix(matrix))[None]
    return to_original(coordinates.double().cpu(), back)[0].numpy(), peaks[0].float().cpu().numpy()


def main(argv=None):
    args = build_parser().parse_args(argv)
    if (args.center is None) != (args.scale is None):
        raise UserError("--center and --scale go together")
    if args.scale is not None and not args.scale > 0:
        raise UserError(f"--scale: expected a number > 0, got {args.scale}")
    device = use_device(args.device)
    select_backend(args.backend, device)
    model, config = load_trained_model(args.checkpoint, device)
    images = [(path, read_image(path)) for path in args.images]  # every path checked before any work
    os.makedirs(args.output, exist_ok=True)
    records, used = [], set()
    for path, image in images:
        height, width = image.shape[:2]
        centre, scale = person_crop(args, width, height)
        keypoints, confidence = predict_image(model, config, image, centre, scale, args.flip_test, device)
        overlay = overlay_name(path, used)
        write_atomic(os.path.join(args.output, overlay), encode_png(draw_skeleton(image, keypoints, confidence, args.min_confidence)))
        records.append({
            "image": path, "center": [float(c) for c in centre], "scale": float(scale), "overlay": overlay,
            "keypoints": [{"joint": name, "x": float(x), "y": float(y), "confidence": float(c)}
                          for name, (x, y), c in zip(JOINT_NAMES, keypoints, confidence)],
        })
    result_path = os.path.join(args.output, "keypoints.json")
    write_atomic(result_path, (json.dumps(records, indent=2) + "\n").encode())
    print(f"{len(records)} image(s): keypoints in {result_path}, overlays in {args.output}")
    return 0


if __name__ == "__main__":
    cli.run(main)
