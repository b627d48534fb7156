"""Camera input on a video file that the test writes with OpenCV."""

import cv2
import numpy as np
from sqlalchemy import func, select

from inspector.service.camera import CameraInput
from inspector.store import Inspection
from inspector.store.session import session_factory
from tests.helpers.synthetic import make_image


def write_video(path, frames=30):
    rng = np.random.default_rng(0)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 96))
    assert out.isOpened()
    for i in range(frames):
        out.write(cv2.cvtColor(make_image("scratch" if i % 2 else "ok", rng), cv2.COLOR_GRAY2BGR))
    out.release()


def count(service):
    with session_factory(service.db_engine)() as s:
        return s.scalar(select(func.count()).select_from(Inspection).where(Inspection.camera == "cam7"))


def test_every_nth_frame_of_a_video_is_inspected_and_stored(service, tmp_path):
    video = tmp_path / "line.avi"
    write_video(video, 30)
    cam = CameraInput(str(video), service.worker, "washer", line="L1", name="cam7", every_n=5)
    service.worker.start()
    cam.start()
    assert cam.finished.wait(60)
    service.worker.stop(drain=True)
    assert cam.submitted == 6 and count(service) == 6


def test_trigger_mode_inspects_one_frame_per_trigger(service, tmp_path):
    video = tmp_path / "line.avi"
    write_video(video, 200)
    cam = CameraInput(str(video), service.worker, "washer", name="cam7", mode="trigger")
    cam.trigger("SN-1")
    cam.trigger("SN-2")
    service.worker.start()
    cam.start()
    assert cam.finished.wait(60)
    service.worker.stop(drain=True)
    with session_factory(service.db_engine)() as s:
        serials = sorted(s.scalars(select(Inspection.part_serial)))
    assert serials == ["SN-1", "SN-2"]
