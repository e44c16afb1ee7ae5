"""Cold-start benchmark: seconds from `python app.py` to the first served page, to the first
finished /restore of a 1280x720 photo, and the time of a second (warm) restore.

    .venv/bin/python bench/startup.py [--repeats 3] [--json OUT]

Each repeat launches a fresh app process (shipped checkpoint, a free local port), polls its
page until it answers, then calls the documented /restore endpoint through gradio_client, as
a user's first request would arrive. The photo is bench/inference.py's. The medians of the
repeats are reported; the first-restore figure minus the warm one is what a cold start adds to
the first user's wait.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gradio_client import Client, handle_file
from inference import test_image  # bench/inference.py, beside this script

from bag.imageio import to_pil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_page(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Poll `url` until it answers 200; fail if the app exits or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: the app exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"error: no page at {url} after {timeout:.0f} s")


def cold_start(photo: Path, timeout: float) -> dict[str, float]:
    """Launch the app once; seconds to the page, to the first restore, of a second restore."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_page(url, process, timeout)
        page = time.perf_counter() - start
        client = Client(url, verbose=False)
        client.predict(handle_file(str(photo)), None, api_name="/restore")
        first = time.perf_counter() - start
        again = time.perf_counter()
        client.predict(handle_file(str(photo)), None, api_name="/restore")
        warm = time.perf_counter() - again
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"page": page, "first_restore": first, "warm_restore": warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    image, source = test_image(720, 1280)
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "photo.png"
        to_pil(image).save(photo)
        runs = [cold_start(photo, args.timeout) for _ in range(args.repeats)]
    median = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]}
    report = {
        "image": f"{source} (1280x720)",
        "cpu_count": os.cpu_count(),
        "repeats": args.repeats,
        "seconds_launch_to_page": median["page"],
        "seconds_launch_to_first_restore": median["first_restore"],
        "seconds_warm_restore": median["warm_restore"],
        "seconds_first_restore_after_page": round(median["first_restore"] - median["page"], 2),
        "runs": [{k: round(v, 2) for k, v in r.items()} for r in runs],
    }
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
