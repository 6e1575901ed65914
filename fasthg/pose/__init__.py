"""Poses from a PoseNet: heatmap targets (targets.py), running a model on crops and decoding
(inference.py), validation over a dataset (evaluation.py), any PoseNet's weights (state_dicts.py:
others' state_dicts; weights.py: a file or run as a ready model; network.py: the model the commands
build), the Python API (estimator.py: fasthg.PoseEstimator), its inputs (images.py, video.py) and
skeletons drawn on images (drawing.py)."""
