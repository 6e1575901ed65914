"""``python -m fasthg.evaluate --checkpoint RUN``: validation PCKh, or on COCO OKS AP, of a trained model.

On COCO, pycocotools' AP, AP50, AP75, APm, APl and AR (fasthg.pose.coco_eval). Elsewhere, every
joint at PCKh@0.5, and the table papers print (:mod:`fasthg.pose.pckh_table`: each body part
at PCKh@0.5 and @0.1 with the means of every convention of docs/conventions.md: ``mpii``, the
mean over the 14 joints without pelvis and thorax; ``all16``, the count-weighted total; ``mmpose``,
the count-weighted mean over those 14), as text and as JSON. The dataset, its folders and the
input size default to the checkpoint's training run.
"""
import argparse
import json
import os

from torch.utils.data import DataLoader, Subset

from . import cli, distributed, extras
from .data import DATASETS, JOINT_SETS, ON_DISK, make_dataset
from .dispatch import BACKENDS
from .files import write_atomic
from .joint_sets import check_model_joints
from .pose import evaluation
from .pose.network import select_backend
from .pose.pckh_table import body_part_table, format_body_part_table
from .pose.scoring import OKSScoring, describe, scoring_for
from .pose.weights import load_pose_model
from .precision import AMP_MODES, autocast_dtype
from .errors import UserError
from .pose.targets import HeatmapTargets
from .training.checkpoints import checkpoint_path, run_folder_of
from .training.options import DEFAULT_VAL_SIZE


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m fasthg.evaluate",
                                     description="PCKh of a trained model on the synthetic or MPII validation set, "
                                                 "OKS AP on COCO's.")
    parser.add_argument("--checkpoint", required=True,
                        help="a fasthg run folder or checkpoint, princeton-vl's checkpoint.pt or a PoseNet state_dict file")
    parser.add_argument("--dataset", choices=DATASETS, help="default: the run's")
    parser.add_argument("--data-dir", help="mpii: the folder of MPII's images; coco: the COCO folder, holding val2017/ "
                                           "(default: the run's)")
    parser.add_argument("--annot-dir", help="mpii: the folder of valid.h5, or of the official .mat and valid.h5 (default: "
                                            "the run's, or annot beside --data-dir); coco: the folder of "
                                            "person_keypoints_val2017.json (default: annotations in --data-dir)")
    parser.add_argument("--val-size", type=int, help="synthetic: validation figures (default: the run's)")
    parser.add_argument("--flip-test", action="store_true", help="average each image's heatmaps with its mirror image's")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="data-loader processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--amp", choices=AMP_MODES, default="off", help="mixed precision (default off: exact fp32)")
    parser.add_argument("--json", help="where to write the results (default: evaluation.json in the run folder)")
    return parser


def default_json_path(checkpoint):
    """evaluation.json in the run folder of ``checkpoint`` (the parent of its checkpoints/ folder)."""
    folder = run_folder_of(checkpoint) or os.path.dirname(os.path.abspath(checkpoint))
    return os.path.join(folder, "evaluation.json")


def main(argv=None):
    args = build_parser().parse_args(argv)
    extras.check(extras.COMMANDS)
    if args.batch_size < 1 or args.workers < 0 or (args.val_size is not None and args.val_size < 1):
        raise UserError("--batch-size and --val-size: expected at least 1; --workers: at least 0")
    context = distributed.setup(args.device)
    try:
        select_backend(args.backend, context.device)
        model, info = load_pose_model(args.checkpoint, context.device)
        config = info.run_config or {}
        dataset_name = args.dataset or config.get("dataset")
        if dataset_name is None:
            raise UserError(f"--dataset: {info.source} is not a fasthg run, so it does not say what it was trained on: "
                            "give --dataset mpii --data-dir MPII/images (princeton's weights) or --dataset synthetic")
        joint_set = JOINT_SETS[dataset_name]
        check_model_joints(joint_set, info.architecture.oup_dim, info.source)
        same_dataset = dataset_name == config.get("dataset")
        data_dir = args.data_dir or (config["data_dir"] if same_dataset else None)
        if dataset_name in ON_DISK and not data_dir:
            raise UserError(f"--dataset {dataset_name} needs --data-dir, {ON_DISK[dataset_name]}")
        dataset = make_dataset(dataset_name, "val", info.input_size, config.get("seed", 0),
                               args.val_size or config.get("val_size", DEFAULT_VAL_SIZE), data_dir,
                               args.annot_dir or (config["annot_dir"] if same_dataset else None))
        shard = Subset(dataset, range(context.rank, len(dataset), context.world_size))
        loader = DataLoader(shard, batch_size=args.batch_size, num_workers=args.workers)
        targets = HeatmapTargets(info.heatmap_style, info.sigma, config.get("weighted_loss", False))
        results = evaluation.predict_dataset(model, loader, context, targets,
                                             autocast_dtype(args.amp, context.device), flip=args.flip_test,
                                             joint_set=joint_set)
    finally:
        distributed.shutdown(context)
    if results is None:  # not rank 0
        return 0
    scoring = scoring_for(dataset)
    scores = scoring.score(results)
    report = {"checkpoint": checkpoint_path(args.checkpoint), "dataset": dataset_name, "items": len(results["index"]),
              "flip_test": args.flip_test, scoring.name: scores}
    text = [scoring.format(scores)]
    if not isinstance(scoring, OKSScoring):
        report["pckh_table"] = body_part_table(results["predicted"], results["original_keypoints"], results["annotated"],
                                               results["normalize"])
        text.append(format_body_part_table(report["pckh_table"]))
    path = args.json or default_json_path(args.checkpoint)
    write_atomic(path, (json.dumps(report, indent=2) + "\n").encode())
    print("\n".join(text))
    print(f"{dataset_name} validation, {len(results['index'])} people{', flip test' if args.flip_test else ''}: "
          f"{describe(scoring.headline(scores))}; JSON in {path}")
    return 0


if __name__ == "__main__":
    cli.run(main)
