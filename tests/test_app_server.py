"""The served app under load and over time: one slow request holds only the model worker, a full
queue refuses at once with a "busy" error, and what a session leaves on disk is deleted.

Each test serves its own demo (a held model worker or deleted files would disturb the shared
server of the other app tests).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import build_test_demo, free_port, save_png, serve, smooth_photo
from gradio.route_utils import delete_files_created_by_app
from gradio_client import Client, handle_file
from gradio_client.utils import QueueError
from PIL import Image

from bag import Deblurrer
from explorer.config import OUTPUT_MAX_AGE_S
from explorer.files import Files

MODEL_HANDLERS = {"on_restore", "on_compute", "on_explain"}


class HeldDeblurrer(Deblurrer):
    """A Deblurrer whose calls wait until `release` is set: a slow request on the worker."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, image):
        self.entered.set()
        assert self.release.wait(60), "the test never released the model"
        return super().__call__(image)


def wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_slow_request_holds_only_the_model_worker_and_a_full_queue_says_busy(
    app_files, app_deblurrer, tmp_path
):
    held = HeldDeblurrer(app_deblurrer.generator, device="cpu", precision="float32")
    demo = build_test_demo(app_files, held)
    # Only the handlers that run the model share its worker: the other tabs' redraws and
    # a new upload's reset have workers of their own, so a slow restore does not hold them.
    groups = {fn.name: fn.concurrency_id for fn in demo.fns.values()}
    assert MODEL_HANDLERS <= set(groups)
    assert {name for name, group in groups.items() if group == "model"} == MODEL_HANDLERS
    url = serve(demo, app_files, max_size=2)
    try:
        client = Client(url, verbose=False)
        photo = handle_file(str(save_png(tmp_path / "photo.png", smooth_photo(37, 53))))
        slow = client.submit(photo, None, api_name="/restore")
        assert held.entered.wait(30)
        waiting = [client.submit(photo, None, api_name="/restore") for _ in range(2)]
        wait_for(lambda: len(demo._queue) == 2)  # both wait; the slow one runs
        refused = client.submit(photo, None, api_name="/restore")
        with pytest.raises(QueueError, match="full"):
            refused.result(timeout=30)
        held.release.set()
        # The held request did not starve the ones behind it: each finishes, in order.
        outputs = [job.result(timeout=60) for job in (slow, *waiting)]
        for _, restored, *_ in outputs:
            assert Path(restored).is_file()
    finally:
        held.release.set()
        demo.close()


def temp_files(demo) -> set[str]:
    """The files Gradio tracks for `demo` (uploads, copies of served results)."""
    return {f for files in demo.temp_file_sets for f in files}


def test_uploads_and_results_are_deleted_by_the_cache_cleanup(app_files, app_deblurrer, tmp_path):
    demo = build_test_demo(app_files, app_deblurrer)
    assert demo.delete_cache == (3600, 3600)  # hourly, the files older than an hour
    url = serve(demo, app_files)
    try:
        before = temp_files(demo)  # the page's own files (examples, defaults): they stay
        client = Client(url, verbose=False)
        photo = save_png(tmp_path / "photo.png", smooth_photo(37, 53))
        _, restored, _, *_ = client.predict(handle_file(str(photo)), None, api_name="/restore")
        assert np.asarray(Image.open(restored)).shape == (37, 53, 3)
        request = temp_files(demo) - before
        names = {Path(f).name for f in request}
        assert {
            "photo.png",
            "photo-input.png",
            "photo-restored.png",
            "photo-attention.npz",
        } <= names
        delete_files_created_by_app(demo, age=0)  # what the hourly cleanup does to old files
        assert not [f for f in request if Path(f).exists()]
        assert all(Path(f).exists() for f in before)
    finally:
        demo.close()


def test_the_apps_own_output_folders_are_removed_after_an_hour(tmp_path):
    files = Files()
    old, recent = files.new_output_dir(), files.new_output_dir()
    (old / "x-restored.png").write_bytes(b"png")
    an_hour_ago = time.time() - OUTPUT_MAX_AGE_S - 60
    os.utime(old, (an_hour_ago, an_hour_ago))
    newest = files.new_output_dir()
    assert not old.exists() and recent.is_dir() and newest.is_dir()


def test_sigterm_stops_the_app_and_leaves_no_files_behind(app_files, tmp_path):
    """`python app.py` stopped as a Space or a service manager stops it: uploads, served copies
    and the app's output folder are all deleted, not just abandoned."""
    gradio_dir, temp_dir = tmp_path / "gradio", tmp_path / "tmp"
    temp_dir.mkdir()
    port = free_port()
    env = os.environ | {
        "GRADIO_TEMP_DIR": str(gradio_dir),
        "TMPDIR": str(temp_dir),
        "BAG_CHECKPOINT": str(app_files.checkpoint),
        "BAG_DEVICE": "cpu",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen(
        [sys.executable, str(root / "app.py")],
        cwd=tmp_path,  # the examples cache (.gradio/) goes here, not into the checkout
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: _answers(url) or server.poll() is not None, seconds=120)
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        page = _files(gradio_dir)  # the page's own (examples, defaults): kept, the same each start
        photo = save_png(tmp_path / "photo.png", smooth_photo(37, 53))
        Client(url, verbose=False).predict(handle_file(str(photo)), None, api_name="/restore")
        assert len(_files(gradio_dir) - page) >= 4  # the upload and the results served
        assert list(temp_dir.glob("bag-explorer-*"))
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert _files(gradio_dir) == page
    assert not list(temp_dir.glob("bag-explorer-*"))


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False
