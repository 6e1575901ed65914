"""Videos and cameras in ``python -m fasthg.predict``: an annotated video and a JSON line per frame
with the estimator's keypoints, frames decoded ahead by a worker thread, clear errors for empty or
unreadable videos and for a camera without a display, and nothing half-written."""
import json
import os
import time

import cv2
import numpy as np
import pytest

import fasthg
from fasthg import predict
from fasthg.pose import video
from fasthg.data import SyntheticPoses
from pose_checkpoints import tiny_posenet, write_checkpoints
from test_cli import run_command


FRAMES, FPS, WIDTH, HEIGHT = 5, 10.0, 96, 80


def write_video(path, frames, fps=FPS):
    codec = "MJPG" if path.endswith(".avi") else "mp4v"
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()


def decoded_frames(path):
    """Every frame of ``path`` as OpenCV decodes it, RGB."""
    capture, frames = cv2.VideoCapture(path), []
    while (read := capture.read())[0]:
        frames.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A short video of synthetic figures, moving across the frame."""
    path = str(tmp_path_factory.mktemp("videos") / "walk.mp4")
    figures = [cv2.resize(SyntheticPoses("val", FRAMES, 64)[i]["image"], (WIDTH, HEIGHT)) for i in range(FRAMES)]
    write_video(path, figures)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoints(str(tmp_path_factory.mktemp("checkpoints")), tiny_posenet().state_dict())["princeton"]


def test_a_video_gives_an_annotated_video_and_the_estimators_keypoints_per_frame(clip, checkpoint, tmp_path, capsys):
    output = str(tmp_path / "out")
    status, out, _ = run_command(predict, [clip, "--checkpoint", checkpoint, "--output", output, "--input-size", "64",
                                           "--batch-size", "3", "--box", "10", "5", "80", "75", "--device", "cpu"], capsys)
    assert status == 0 and f"{FRAMES} frames in" in out and "frames per second" in out
    assert sorted(os.listdir(output)) == ["walk.keypoints.jsonl", "walk.pose.mp4"]
    annotated = decoded_frames(os.path.join(output, "walk.pose.mp4"))
    assert len(annotated) == FRAMES and annotated[0].shape == (HEIGHT, WIDTH, 3)
    with open(os.path.join(output, "walk.keypoints.jsonl")) as file:
        lines = [json.loads(line) for line in file]
    assert [line["frame"] for line in lines] == list(range(FRAMES))
    assert [line["time"] for line in lines] == pytest.approx([i / FPS for i in range(FRAMES)])
    estimator = fasthg.PoseEstimator(checkpoint, device="cpu", input_size=64)
    frames = decoded_frames(clip)
    poses = estimator.batch(frames[:3], [(10, 5, 80, 75)] * 3) + estimator.batch(frames[3:], [(10, 5, 80, 75)] * 2)
    assert [line["keypoints"] for line in lines] == [pose.as_dict()["keypoints"] for pose in poses]


def test_frames_are_decoded_ahead_in_order(clip):
    with video.FrameReader(video.open_video(clip), ahead=2) as reader:
        deadline = time.monotonic() + 30
        while reader.frames.qsize() < 2:  # the worker fills the queue before anything is asked of it
            assert time.monotonic() < deadline, "the reader thread decoded nothing ahead"
            time.sleep(0.01)
        frames = list(reader)
    assert len(frames) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(frames, decoded_frames(clip)))
    assert not reader.thread.is_alive()


def test_closing_a_reader_early_stops_its_thread(clip):
    reader = video.FrameReader(video.open_video(clip), ahead=1)
    next(iter(reader))
    reader.close()
    assert not reader.thread.is_alive()


@pytest.mark.parametrize("case, message", [
    ("empty avi", "has no frames"),  # an AVI without frames opens, an MP4 does not
    ("empty mp4", "could not be opened (empty, or not a video file OpenCV decodes)"),
    ("not a video", "could not be opened (empty, or not a video file OpenCV decodes)"),
    ("missing", "video not found"),
])
def test_bad_videos_are_one_line_and_leave_no_output(case, message, checkpoint, tmp_path, capsys):
    path = str(tmp_path / ("clip.avi" if case == "empty avi" else "clip.mp4"))
    if case.startswith("empty"):
        write_video(path, [])
    elif case == "not a video":
        with open(path, "w") as file:
            file.write("not a video\n")
    output = str(tmp_path / "out")
    status, _, err = run_command(predict, [path, "--checkpoint", checkpoint, "--output", output, "--input-size", "64",
                                           "--device", "cpu"], capsys)
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not os.path.exists(output) or os.listdir(output) == []


def test_the_camera_says_where_there_is_no_display(monkeypatch, checkpoint, capsys):
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: "  GUI:                           NONE\n")
    status, _, err = run_command(predict, ["--camera", "0", "--checkpoint", checkpoint, "--device", "cpu"], capsys)
    assert status == 2 and err.startswith("error: --camera: no display here") and err.count("\n") == 1


@pytest.mark.parametrize("gui, display, expected", [("GTK3", ":0", True), ("GTK3", None, False), ("NONE", ":0", False)])
def test_a_display_needs_a_gui_build_and_a_display(gui, display, expected, monkeypatch):
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: f"Video I/O:\n  GUI:     {gui}\n")
    monkeypatch.setattr(video.sys, "platform", "linux")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display:
        monkeypatch.setenv("DISPLAY", display)
    else:
        monkeypatch.delenv("DISPLAY", raising=False)
    assert video.has_display() is expected


def test_files_or_a_camera_not_both(checkpoint, clip, capsys):
    status, _, err = run_command(predict, [clip, "--camera", "0", "--checkpoint", checkpoint], capsys)
    assert status == 2 and "expected image or video files, or --camera N, and not both" in err
