"""A real headless Chromium (Debian's `chromium` package) for the HTML tests: no stand-in.

`screenshot(page, out, width, height)` starts Chromium on the file, waits for it to paint the page and
write a PNG of the window, and returns the decoded image (PIL). Without Chromium the test fails (it is
not skipped) and says how to install it; .ci/run installs it.

The flags: as root Chromium refuses to start without --no-sandbox; the machine has no network and no
display, so everything that would reach out (background networking, component and safe-browsing
updates, sync, QUIC) is off, or start-up stalls on it; a fresh profile per start keeps runs apart; the
device scale factor is 1, so a PNG is painted pixel for pixel at its own size.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--no-default-browser-check",
         "--disable-extensions", "--force-device-scale-factor=1",
         # the screenshot waits for every image to be decoded and drawn, not only for the load event
         "--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000")


def require_chromium() -> str:
    exe = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if exe is None:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (Debian's package, "
                    f"{CHROMIUM}); .ci/run installs it", pytrace=False)
    return exe


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 8000, timeout: float = 120):
    """The window's PNG after Chromium loaded `page` (a file), decoded with PIL, as RGB."""
    from PIL import Image

    exe = require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
                               f"--window-size={width},{height}", Path(page).resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and out.is_file(), \
        f"chromium exited with {proc.returncode}, no screenshot:\n{proc.stderr[-3000:]}"
    with Image.open(out) as img:
        return img.convert("RGB")


def solid_png_uri(width: int, height: int, rgb: tuple[int, int, int]) -> str:
    """A `data:` URI of a PNG of one colour: a stand-in image of the same size keeps a page's layout."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def rectangles_of(img, rgb: tuple[int, int, int]) -> list[tuple[int, int, int, int]]:
    """The boxes (left, top, right, bottom) painted in `rgb` (within 3 per channel), top to bottom: one per band of rows
    holding that colour; each must be a filled rectangle (else AssertionError)."""
    import numpy as np

    pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    mask = (np.abs(pixels - np.array(rgb, dtype=np.int16)) <= 3).all(axis=2)  # colour management's rounding
    rows = np.flatnonzero(mask.any(axis=1))
    boxes = []
    if rows.size:
        breaks = np.flatnonzero(np.diff(rows) > 1)
        for top, bottom in zip(np.r_[rows[0], rows[breaks + 1]], np.r_[rows[breaks], rows[-1]] + 1):
            cols = np.flatnonzero(mask[top:bottom].any(axis=0))
            left, right = int(cols[0]), int(cols[-1]) + 1
            assert mask[top:bottom, left:right].all(), f"not a filled rectangle at {(left, top, right, bottom)}"
            boxes.append((left, int(top), right, int(bottom)))
    return boxes
