"""The HTML report in a real browser (headless Chromium; `.ci/run` installs Debian's chromium when missing):
the summary table, the plots and the per-sample / case drill-down render, and the page loads with the
network cut off and makes no request (Chromium's own net log is read back)."""

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from reasonkd.eval.report import write_report

from test_report import _model  # noqa: E402  (tests/eval is on sys.path under pytest)

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="headless Chromium not installed (apt-get install chromium)")
OFFLINE = [
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]  # any request would fail: the page must not need one


def _chromium(tmp_path, *args, timeout=120):
    cmd = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *OFFLINE,
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


class _Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.alts, self.urls, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(attrs.get("src", ""))
            self.alts.append(attrs.get("alt", ""))
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "srcset", "action") and v]

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def page(tmp_path):
    results = [
        _model("student-before", [1, 0, 0, 0, 1, 0, 0, 0, 0, 1], 120, 7.6e9, 16),
        _model("student-after", [1, 1, 1, 0, 1, 1, 1, 1, 0, 1], 95, 7.6e9, 20),
        _model("teacher", [1] * 10, 320, 671e9, 5),
    ]
    return write_report(results, tmp_path / "report")["html"]


def _shot(tmp_path, html_file, name):
    from PIL import Image

    shot = tmp_path / f"{name}.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,7000", html_file.resolve().as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    return np.asarray(Image.open(shot).convert("RGB"), dtype=int)


def test_dom_has_table_plots_and_drill_down_without_network(page, tmp_path):
    from PIL import Image

    done = _chromium(tmp_path, "--dump-dom", page.resolve().as_uri())
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    dom = _Dom()
    dom.feed(done.stdout)
    text = " ".join(dom.text)
    assert dom.tags.count("table") >= 3 and dom.tags.count("tr") >= 4 + 10  # summary, differences, drill-down
    for label in (
        "student-before",
        "student-after",
        "teacher",
        "30.0% [20.0, 40.0]",
        "Per-sample drill-down",
        "Where the reasoning breaks",
        "fixed (wrong in student-before, right in student-after)",
        "Held-out problems where the models differ",
    ):
        assert label in text
    assert len(dom.imgs) == 4 and all(s.startswith("data:image/png;base64,") for s in dom.imgs)
    assert "errors by first-error class" in dom.alts  # the stacked bar plot of the error analysis
    for src in dom.imgs:  # each plot is a real picture, not an empty placeholder
        w, h = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size
        assert w >= 300 and h >= 150
    assert dom.tags.count("details") >= 3 * 10 + 1 and dom.tags.count("summary") == dom.tags.count("details")
    assert all(u.startswith(("data:", "#")) for u in dom.urls), [u[:60] for u in dom.urls]
    assert _page_requests(tmp_path, page) == []
    # the check itself sees a page that does fetch something (cut off, but attempted)
    leaky = page.with_name("leaky.html")
    remote = '<img src="http://example.invalid/p.png">'
    leaky.write_text(page.read_text().replace("<h2>Plots</h2>", "<h2>Plots</h2>" + remote))
    assert _page_requests(tmp_path, leaky) == ["http://example.invalid/p.png"]


def _page_requests(tmp_path, html_file) -> list[str]:
    """http(s)/ws URLs the PAGE asked for, from Chromium's net log (the browser's own update and time
    checks carry initiator 'not an origin' and are not the page's)."""
    netlog = tmp_path / f"{html_file.stem}.netlog.json"
    _chromium(tmp_path, "--dump-dom", f"--log-net-log={netlog}", html_file.resolve().as_uri())
    text = netlog.read_text().rstrip().rstrip(",")
    log = json.loads(text if text.endswith("}") else text + "]}")  # a log cut at exit lacks its tail
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params") or {} for e in log.get("events", []) if e.get("type") == start]
    return sorted(
        {
            p["url"]
            for p in jobs
            if p.get("initiator") != "not an origin"
            and str(p.get("url", "")).startswith(("http:", "https:", "ws:", "wss:"))
        }
    )


def test_screenshot_shows_plots_and_opened_drill_down(page, tmp_path):
    closed = _shot(tmp_path, page, "closed")
    opened_page = page.with_name("opened.html")
    opened_page.write_text(page.read_text().replace("<details>", "<details open>"))
    opened = _shot(tmp_path, opened_page, "opened")
    assert closed.shape == opened.shape == (7000, 1200, 3)

    def ink(px):
        return (px.sum(axis=2) < 600).mean()

    colour = ((closed.max(axis=2) - closed.min(axis=2)) > 80).mean()
    assert ink(closed) > 0.01, "page looks blank"
    assert colour > 0.005, "no coloured plot bars visible"
    # opening every drill-down shows the prompts and completions: more text on the same canvas
    assert ink(opened) > ink(closed) * 1.05, (ink(opened), ink(closed))
