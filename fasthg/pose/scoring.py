"""How a validation set is scored, chosen by its dataset: PCKh for the head-normalised sets
(synthetic figures, MPII), OKS AP through pycocotools for COCO. Training and evaluation ask the
scoring for its numbers, the headline numbers an epoch records, and a text table."""
from . import evaluation
from .coco_eval import oks_average_precision
from ..data.coco import COCOPoses

# The label of each headline number in curves and logs.
LABELS = {"pckh_mpii": "PCKh@0.5 (mpii)", "pckh_all16": "PCKh@0.5 (all16)", "oks_ap": "OKS AP"}


class PCKhScoring:
    """PCKh@0.5 in every convention (:func:`fasthg.pose.evaluation.score`) of ``joint_set``'s joints."""

    name = "pckh"  # the results' key
    best_by = "pckh_mpii"  # the headline number that picks the best checkpoint

    def __init__(self, joint_set):
        self.joint_set = joint_set

    def score(self, results, predicted=None):
        return evaluation.score(results, predicted, self.joint_set)

    @staticmethod
    def headline(scores):
        return {"pckh_mpii": scores["mpii"]["mean"], "pckh_all16": scores["all16"]["mean"]}

    @staticmethod
    def format(scores, baseline=None):
        return evaluation.format_table(scores, baseline)


class OKSScoring:
    """COCO's OKS AP (:mod:`fasthg.pose.coco_eval`) of the people of a :class:`~fasthg.data.coco.COCOPoses`
    set, each prediction's confidence the mean of its heatmap peaks."""

    name = "oks"
    best_by = "oks_ap"

    def __init__(self, dataset):
        self.dataset = dataset

    def score(self, results, predicted=None):
        predicted = results["predicted"] if predicted is None else predicted
        return oks_average_precision(self.dataset.data, self.dataset.image_ids[results["index"]], predicted,
                                     results["peaks"].mean(axis=1), self.dataset.joint_set)

    @staticmethod
    def headline(scores):
        return {"oks_ap": scores["AP"]}

    @staticmethod
    def format(scores, baseline=None):
        header = f"{'OKS':<8}{'model':>8}" + (f"{'mean pose':>11}" if baseline else "")
        rows = [f"{name:<8}{100 * value:>8.1f}" + (f"{100 * baseline[name]:>11.1f}" if baseline else "")
                for name, value in scores.items()]
        return "\n".join([header, "-" * len(header), *rows])


def scoring_for(dataset):
    """The scoring of a validation ``dataset``."""
    return OKSScoring(dataset) if isinstance(dataset, COCOPoses) else PCKhScoring(dataset.joint_set)


def describe(headline):
    """Headline numbers as "label value, ..." in percent."""
    return ", ".join(f"{LABELS[name]} {100 * value:.1f}" for name, value in headline.items())
