"""report.html in a real browser: headless Chromium (Debian's ``chromium`` package) loads the
report in a 1280 px wide window; every image must decode (``naturalWidth > 0``) and no table
may reach past the window's right edge.

Chromium is installed with ``apt-get install -y chromium`` when missing (as root, or through
``sudo -n``); the test is skipped, saying why, only where apt is not available. A copy of the
report gets a small script that measures the page after ``load`` and writes the result into
the DOM, which ``chromium --headless --dump-dom`` prints: no driver, no extra Python package.
A screenshot of each checked report is kept beside it (``report.png``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bdfl.experiment.report import build_report
from tests.experiment.test_results import make_run

WIDTH, HEIGHT = 1280, 900
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PROBE = """
<script>
window.addEventListener("load", () => {
  const W = window.innerWidth;
  const heading = (el) => { let h = el; while (h && !/^H[1-3]$/.test(h.tagName)) h = h.previousElementSibling || h.parentElement; return h ? h.textContent : ""; };
  const result = {
    innerWidth: W,
    scrollWidth: document.documentElement.scrollWidth,
    images: [...document.images].map((i) => ({alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth})),
    tables: [...document.querySelectorAll("table")].map((t) => {
      const r = t.getBoundingClientRect();
      return {section: heading(t.closest(".scroll, .wide") || t), left: r.left, right: r.right, width: r.width};
    }),
  };
  const out = document.createElement("pre");
  out.id = "bdfl-probe";
  out.style.display = "none";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def _install_chromium() -> None:
    if shutil.which("apt-get") is None:
        pytest.skip("headless Chromium is missing and apt-get is not available to install Debian's chromium package")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            pytest.skip("headless Chromium is missing; installing it needs root (apt-get install -y chromium) and there is no sudo")
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, "apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:  # a fresh machine may not have the package lists yet
        subprocess.run([*prefix, "apt-get", "update"], env=env, capture_output=True, text=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"apt-get install chromium failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a Chromium binary, installed with apt when missing."""
    found = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if found is None:
        _install_chromium()
        found = next((p for p in map(shutil.which, BROWSERS) if p), None)
    assert found, "chromium still not found after apt-get install chromium"
    return found


def _flags(tmp: Path) -> list[str]:
    # --no-sandbox: CI runs tests as root, where Chromium's sandbox refuses to start
    return ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}",
            "--virtual-time-budget=10000", f"--user-data-dir={tmp / 'chromium-profile'}"]


def probe(chromium: str, page: Path, tmp: Path) -> dict[str, Any]:
    """Load a copy of ``page`` with the probe script in headless Chromium and return what it measured."""
    doc = page.read_text(encoding="utf-8")
    probed = tmp / f"probed-{page.name}"
    probed.write_text(doc.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
    done = subprocess.run([chromium, *_flags(tmp), "--dump-dom", probed.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="bdfl-probe"[^>]*>(.*?)</pre>', done.stdout, re.S)
    assert m, f"the probe did not run (exit {done.returncode}):\n{done.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def screenshot(chromium: str, page: Path, tmp: Path) -> Path:
    shot = page.with_suffix(".png")
    subprocess.run([chromium, *_flags(tmp), f"--screenshot={shot}", page.resolve().as_uri()],
                   capture_output=True, text=True, timeout=120)
    return shot


def _problems(found: dict[str, Any]) -> list[str]:
    out = []
    for img in found["images"]:
        if not img["naturalWidth"] > 0:
            out.append(f"image {img['alt']!r} did not load")
    for t in found["tables"]:
        if t["right"] > found["innerWidth"] + 0.5 or t["left"] < 0:
            out.append(f"table under {t['section']!r} spans {t['left']:.0f}-{t['right']:.0f} px, wider than {found['innerWidth']} px")
    if found["scrollWidth"] > found["innerWidth"]:
        out.append(f"the page is {found['scrollWidth']} px wide")
    return out


def test_report_fits_1280px_and_every_image_loads(chromium: str, tmp_path: Path) -> None:
    d = make_run(tmp_path / "run", name="a-run-name-long-enough-to-matter-" * 3)
    report = build_report(d)
    found = probe(chromium, report, tmp_path)
    assert found["innerWidth"] == WIDTH
    assert len(found["images"]) == 5  # the five figures of the run
    assert len(found["tables"]) >= 5  # summary, peers, outcomes, cost, events
    assert _problems(found) == []
    shot = screenshot(chromium, report, tmp_path)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_probe_sees_overflow_and_broken_images(chromium: str, tmp_path: Path) -> None:
    """The same check on a page that is wrong in both ways: it must say so."""
    cells = "".join(f"<td>column_number_{i}_with_a_long_value</td>" for i in range(40))
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><h2>Too wide</h2><table><tr>" + cells + "</tr></table>"
                   '<img alt="broken" src="data:image/png;base64,AAAA"></body></html>')
    problems = _problems(probe(chromium, bad, tmp_path))
    assert any("did not load" in p for p in problems)
    assert any("Too wide" in p and "wider than 1280" in p for p in problems)
