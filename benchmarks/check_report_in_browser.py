"""Open a tearsheet in headless Chromium and check that every image loads and nothing errs.

    python benchmarks/check_report_in_browser.py runs/sp500/tearsheet.html

Needs Debian's ``chromium``. A copy of the page gets a small probe script that
records console errors, uncaught exceptions and failed resource loads, and,
after load, counts images with a decoded size; Chromium's ``--dump-dom``
prints the result. Exit status 0 only when all images loaded and no error
was seen.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """<script>
window.__errors = [];
const _err = console.error;
console.error = function (...a) { window.__errors.push(a.join(' ')); _err.apply(console, a); };
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)))), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const out = document.createElement('pre');
  out.id = '__probe';
  out.textContent = JSON.stringify({images: imgs.length, loaded: ok, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def check(page: Path) -> dict:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found (apt-get install chromium)")
    html = page.read_text()
    probed = html.replace("<head>", "<head>" + PROBE, 1) if "<head>" in html else PROBE + html
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(probed)
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp}/profile", "--virtual-time-budget=10000",
             "--dump-dom", copy.as_uri()],
            capture_output=True, text=True, timeout=120,
        ).stdout
    m = re.search(r'<pre id="__probe">(.*?)</pre>', dom, re.S)
    if not m:
        return {"images": 0, "loaded": 0, "errors": ["probe did not run"]}
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def main() -> int:
    page = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/sp500/tearsheet.html")
    r = check(page)
    print(f"{page}: {r['loaded']}/{r['images']} images loaded, {len(r['errors'])} console errors")
    for e in r["errors"]:
        print("  ", e)
    return 0 if r["images"] and r["loaded"] == r["images"] and not r["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
