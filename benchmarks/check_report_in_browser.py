"""Open a tearsheet in headless Chromium: check every image loads, nothing errs, and
optionally save a full-page screenshot to look at.

    python benchmarks/check_report_in_browser.py runs/sp500/tearsheet.html [--screenshot page.png]
    python benchmarks/check_report_in_browser.py page.html --screenshot page.png --slices 2000

Needs Debian's ``chromium``. A copy of the page gets a small probe script that
records console errors, uncaught exceptions and failed resource loads, and,
after load, counts images with a decoded size and measures the page height;
Chromium's ``--dump-dom`` prints the result. ``--screenshot`` then renders the
page again in a window 1400 px wide and as tall as the page (one PNG of the
whole page); ``--slices H`` also cuts it into ``PNG-1.png, PNG-2.png, ...`` of at
most ``H`` px each, small enough for an image viewer. Exit status 0 only when
all images loaded and no error was seen.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH = 1400
MAX_HEIGHT = 30_000  # Chromium's headless compositor gives up on taller windows

PROBE = """<script>
window.__errors = [];
const _err = console.error;
console.error = function (...a) { window.__errors.push(a.join(' ')); _err.apply(console, a); };
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)))), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const height = Math.max(document.body.scrollHeight, document.documentElement.scrollHeight);
  const out = document.createElement('pre');
  out.id = '__probe';
  out.textContent = JSON.stringify({images: imgs.length, loaded: ok, height: height, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def chromium_binary() -> str:
    """Path of Debian's chromium (or chromium-browser); exits with a hint when absent."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found (apt-get install chromium)")
    return chromium


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile and no network chatter."""
    cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
           "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def check(page: Path, screenshot: Path | None = None) -> dict:
    """Probe result ``{images, loaded, height, errors}``; with ``screenshot`` also writes
    a full-page PNG there."""
    html = page.read_text()
    probed = html.replace("<head>", "<head>" + PROBE, 1) if "<head>" in html else PROBE + html
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(probed)
        dom = _chromium(Path(tmp) / "profile", f"--window-size={WIDTH},1000", "--dump-dom",
                        copy.as_uri()).stdout
        m = re.search(r'<pre id="__probe">(.*?)</pre>', dom, re.S)
        if not m:
            return {"images": 0, "loaded": 0, "height": 0, "errors": ["probe did not run"]}
        result = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        if screenshot is not None:
            height = min(int(result["height"]) + 40, MAX_HEIGHT)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(html)  # the page as the user sees it, no probe output
            _chromium(Path(tmp) / "profile2", f"--window-size={WIDTH},{height}",
                      f"--screenshot={screenshot.resolve()}", copy.as_uri())
            if not screenshot.is_file():
                result["errors"].append("screenshot was not written")
    return result


def slice_png(png: Path, height: int) -> list[Path]:
    """Cut ``png`` into ``png-1.png, png-2.png, ...`` of at most ``height`` px each."""
    try:
        from PIL import Image  # Pillow: the dev extra (matplotlib installs it too)
    except ImportError:
        raise SystemExit("--slices needs Pillow: pip install pillow (or pip install -e '.[dev]')"
                         ) from None

    out = []
    with Image.open(png) as im:
        for i, top in enumerate(range(0, im.height, height), start=1):
            part = png.with_name(f"{png.stem}-{i}{png.suffix}")
            im.crop((0, top, im.width, min(top + height, im.height))).save(part)
            out.append(part)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", nargs="?", default="runs/sp500/tearsheet.html", type=Path)
    ap.add_argument("--screenshot", type=Path, help="write a full-page PNG here")
    ap.add_argument("--slices", type=int, default=0,
                    help="also cut the screenshot into parts of at most this many px")
    a = ap.parse_args(argv)
    r = check(a.page, a.screenshot)
    print(f"{a.page}: {r['loaded']}/{r['images']} images loaded, {len(r['errors'])} console "
          f"errors, page height {r['height']} px")
    for e in r["errors"]:
        print("  ", e)
    if a.screenshot is not None and a.screenshot.is_file():
        print(f"screenshot: {a.screenshot}")
        if a.slices:
            for part in slice_png(a.screenshot, a.slices):
                print(f"  {part}")
    return 0 if r["images"] and r["loaded"] == r["images"] and not r["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
