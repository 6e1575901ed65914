"""``python -m fasthg.predict IMAGE_OR_VIDEO... --checkpoint CHECKPOINT``: keypoints of one person per image or frame.

A thin layer over :class:`fasthg.PoseEstimator`. The checkpoint is a fasthg run, princeton-vl's
checkpoint.pt or any PoseNet state_dict. The person is cropped as in training (a square of
200·scale pixels around a centre): by default the whole image, or ``--box`` (the person's bounding
box plus a 25% margin, as MPII's people fill about 80% of their crop), or ``--center X Y --scale S``
in MPII's convention. Images: ``keypoints.json`` (x, y in image pixels and a confidence, the
heatmap's peak, per joint) and an overlay PNG each in ``--output``. Videos: an annotated video and
one JSON line per frame each (:mod:`fasthg.pose.video`). ``--camera N``: a live window.
"""
import argparse
import functools
import json
import os
import sys
import warnings

from . import cli, extras
from .dispatch import BACKENDS
from .distributed import use_device
from .errors import UserError
from .files import write_atomic
from .pose.drawing import draw_skeleton, encode_png
from .pose.estimator import PoseEstimator, box_crop
from .pose.images import read_image
from .pose.network import select_backend
from .pose.video import VIDEO_EXTENSIONS, is_video, open_video, predict_video, require_display, show_camera
from .pose.weights import SyntheticWeightsWarning, photo_notice
from .precision import AMP_MODES


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fasthg.predict", description=__doc__.split("\n\n")[0].strip("`"))
    parser.add_argument("inputs", nargs="*", metavar="IMAGE_OR_VIDEO",
                        help=f"image files, and videos ({', '.join(VIDEO_EXTENSIONS)})")
    parser.add_argument("--camera", type=int, metavar="N", help="a live window of camera N instead of files")
    parser.add_argument("--checkpoint", required=True,
                        help="a fasthg run folder or checkpoint, princeton-vl's checkpoint.pt or a PoseNet state_dict file")
    person = parser.add_mutually_exclusive_group()
    person.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="the person's bounding box")
    person.add_argument("--center", type=float, nargs=2, metavar=("X", "Y"), help="the person's centre (with --scale)")
    parser.add_argument("--scale", type=float, help="the person's size in units of 200 pixels (with --center)")
    parser.add_argument("--input-size", type=int, help="crop side in pixels (default: the run's; 256, princeton's, for other weights)")
    parser.add_argument("--flip-test", action="store_true", help="average the heatmaps with the mirror image's")
    parser.add_argument("--min-confidence", type=float, default=0.1, help="joints below it are not drawn (default 0.1)")
    parser.add_argument("--output", default="predictions", help="folder for keypoints.json and the overlays")
    parser.add_argument("--batch-size", type=int, default=8, help="video frames per forward pass (default 8)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--amp", choices=AMP_MODES, default="off", help="mixed precision (default off: exact fp32)")
    return parser


def make_estimator(args, device):
    """The PoseEstimator of the options (its warning about synthetic weights is :func:`print_notice`'s)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticWeightsWarning)
        return PoseEstimator(args.checkpoint, device, args.flip_test, args.amp, args.input_size)


def print_notice(estimator):
    """Says on stderr, after the results, when the weights were trained on synthetic figures."""
    notice = photo_notice(estimator.info)
    if notice:
        print(f"note: {notice}", file=sys.stderr)


def person_crop(args, width, height):
    """(center, scale) of the person: --center and --scale, or the crop of --box or the whole image."""
    if args.center is not None:
        return tuple(args.center), args.scale
    return box_crop(args.box, width, height, "--box")


def overlay_name(path, used):
    """A PNG name for ``path``'s overlay that no earlier image took."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name, number = f"{stem}.pose.png", 1
    while name in used:
        name, number = f"{stem}-{number}.pose.png", number + 1
    used.add(name)
    return name


def predict_images(estimator, args, paths_and_images):
    """keypoints.json and an overlay PNG per image in --output, written once every image has worked."""
    records, used, overlays = [], set(), {}
    for path, image in paths_and_images:
        center, scale = person_crop(args, image.shape[1], image.shape[0])
        pose, = estimator.at([image], [center], [scale])
        overlay = overlay_name(path, used)
        overlays[overlay] = draw_skeleton(image, pose.keypoints, pose.confidence, args.min_confidence)
        records.append({"image": path, **pose.as_dict(), "overlay": overlay})
    for overlay, picture in overlays.items():
        write_atomic(os.path.join(args.output, overlay), encode_png(picture))
    result_path = os.path.join(args.output, "keypoints.json")
    write_atomic(result_path, (json.dumps(records, indent=2) + "\n").encode())
    print(f"{len(records)} image(s): keypoints in {result_path}, overlays in {args.output}")


def check(args):
    """Raises UserError for options that do not go together."""
    if (args.center is None) != (args.scale is None):
        raise UserError("--center and --scale go together")
    if args.scale is not None and not args.scale > 0:
        raise UserError(f"--scale: expected a number > 0, got {args.scale}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size: expected at least 1, got {args.batch_size}")
    if (args.camera is None) == (not args.inputs):
        raise UserError("expected image or video files, or --camera N, and not both")


def main(argv=None):
    args = build_parser().parse_args(argv)
    extras.check(extras.COMMANDS)
    check(args)
    device = use_device(args.device)
    select_backend(args.backend, device)
    crop_of = functools.partial(person_crop, args)
    if args.camera is not None:
        require_display()  # before the model loads
        show_camera(make_estimator(args, device), args.camera, crop_of, args.min_confidence)
        return 0
    videos = [path for path in args.inputs if is_video(path)]
    for path in videos:  # every path checked before any work
        open_video(path).release()
    images = [(path, read_image(path)) for path in args.inputs if not is_video(path)]
    estimator = make_estimator(args, device)
    if images:
        predict_images(estimator, args, images)
    for path in videos:
        frames, seconds, video, lines = predict_video(estimator, path, crop_of, args.output, args.batch_size,
                                                      args.min_confidence)
        print(f"{path}: {frames} frames in {seconds:.1f} s, {frames / seconds:.1f} frames per second; "
              f"annotated video {video}, keypoints per frame in {lines}")
    print_notice(estimator)
    return 0


if __name__ == "__main__":
    cli.run(main)
