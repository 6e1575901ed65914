"""Poses in videos and from cameras, one person per frame.

Frames are decoded by a worker thread up to :data:`FRAMES_AHEAD` frames before the model needs
them, so a GPU never waits on decoding; the model takes them in batches. A video file gives an
annotated copy (``<name>.pose.mp4``) and one JSON line per frame (``<name>.keypoints.jsonl``),
both written under temporary names and renamed when the last frame is done: an empty or broken
video, or an interrupted run, leaves no half-written file. A camera shows a live window where
OpenCV has a display.
"""
import json
import os
import queue
import re
import sys
import threading
import time

from ..errors import InvalidValueError, MissingFileError, UserError
from ..extras import LazyModule
from ..files import write_atomic
from .drawing import draw_skeleton

cv2, tqdm = LazyModule("cv2"), LazyModule("tqdm")

FRAMES_AHEAD = 32
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
_END = object()


def is_video(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


class FrameReader:
    """The frames of an opened ``cv2.VideoCapture`` as RGB uint8 arrays (H, W, 3), in order, decoded
    by a worker thread that keeps up to ``ahead`` frames ready. Iterate once; :meth:`close` (or
    leaving a ``with`` block) stops the thread and releases the capture."""

    def __init__(self, capture, ahead=FRAMES_AHEAD):
        self.capture = capture
        self.frames = queue.Queue(maxsize=ahead)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._decode, name="fasthg-frame-reader", daemon=True)
        self.thread.start()

    def _decode(self):
        while not self.stopping.is_set():
            ok, frame = self.capture.read()
            item = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else _END
            while not self.stopping.is_set():
                try:
                    self.frames.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item is _END:
                return

    def __iter__(self):
        while (frame := self.frames.get()) is not _END:
            yield frame

    def batches(self, size):
        """Lists of up to ``size`` consecutive frames."""
        batch = []
        for frame in self:
            batch.append(frame)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self):
        self.stopping.set()
        self.thread.join()
        self.capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_video(path):
    """A ``cv2.VideoCapture`` of the file ``path``, with clear errors when it cannot be read."""
    if not os.path.isfile(path):
        raise MissingFileError(f"video not found: {path}")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise InvalidValueError(f"video {path} could not be opened (empty, or not a video file OpenCV decodes)")
    return capture


def output_names(path, folder):
    """(annotated video, JSON lines) paths in ``folder`` for the video ``path``."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(folder, f"{stem}.pose.mp4"), os.path.join(folder, f"{stem}.keypoints.jsonl")


def predict_video(estimator, path, person_crop, folder, batch_size=8, min_confidence=0.1):
    """Writes the annotated video and the per-frame JSON lines of ``path`` into ``folder``.

    ``person_crop(width, height)`` gives the (center, scale) of the person in every frame.
    Returns (frames, seconds, annotated video path, JSON lines path).
    """
    capture = open_video(path)
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    video_path, lines_path = output_names(path, folder)
    partial = re.sub(r"\.mp4$", ".partial.mp4", video_path)
    writer, lines, count, start = None, [], 0, time.perf_counter()
    try:
        with FrameReader(capture) as reader, tqdm.tqdm(total=total, unit="frame", desc=os.path.basename(path),
                                                  file=sys.stderr, leave=False) as bar:
            for frames in reader.batches(batch_size):
                height, width = frames[0].shape[:2]
                center, scale = person_crop(width, height)
                poses = estimator.at(frames, [center] * len(frames), [scale] * len(frames))
                if writer is None:
                    os.makedirs(folder, exist_ok=True)
                    writer = cv2.VideoWriter(partial, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                for frame, pose in zip(frames, poses):
                    writer.write(draw_skeleton(frame, pose.keypoints, pose.confidence, min_confidence)[..., ::-1].copy())
                    lines.append(json.dumps({"frame": count, "time": count / fps, **pose.as_dict()}))
                    count += 1
                bar.update(len(frames))
                bar.set_postfix(fps=f"{count / (time.perf_counter() - start):.1f}")
        if writer is None:
            raise InvalidValueError(f"video {path} has no frames (or none OpenCV can decode)")
        writer.release()
        write_atomic(lines_path, "".join(line + "\n" for line in lines).encode())
        os.replace(partial, video_path)
    except BaseException:
        if writer is not None:
            writer.release()
            if os.path.exists(partial):
                os.remove(partial)
        raise
    return count, time.perf_counter() - start, video_path, lines_path


def has_display():
    """Whether OpenCV can open a window here: a GUI backend in its build (opencv-python-headless
    has none) and, on Linux, an X11 or Wayland display."""
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if gui is None or gui.group(1).upper() == "NONE":
        return False
    return not sys.platform.startswith("linux") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def require_display():
    """Raises UserError saying why when OpenCV cannot open a window here."""
    if not has_display():
        raise UserError("--camera: no display here (OpenCV's build has no GUI, as opencv-python-headless, fasthg's "
                        "dependency, has none; or no DISPLAY on Linux). Install opencv-python on a desktop, or record "
                        "a video and run python -m fasthg.predict on the file")


def show_camera(estimator, index, person_crop, min_confidence=0.1):
    """A live window of camera ``index`` with the pose drawn on each frame, until q or Esc
    (:func:`require_display` first)."""
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise InvalidValueError(f"--camera {index}: no camera {index} could be opened")
    with FrameReader(capture, ahead=1) as reader:  # live: never more than a frame behind
        for frame in reader:
            center, scale = person_crop(frame.shape[1], frame.shape[0])
            pose, = estimator.at([frame], [center], [scale])
            cv2.imshow("fasthg (q to quit)", draw_skeleton(frame, pose.keypoints, pose.confidence, min_confidence)[..., ::-1])
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                break
    cv2.destroyAllWindows()
