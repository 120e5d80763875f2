"""The report in a real browser: headless Chromium (Debian's ``chromium``; ``make test`` installs it) opens the pages
of a tiny real run from disk. Every image decodes, nothing is logged as an error, nothing but file:/data: URLs is
requested, and at phone width the page does not scroll sideways. Screenshots go to the test's tmp dir (and to
docs/report-screenshot.png when GENLAB_WRITE_SCREENSHOT=1).

Chromium is driven over its DevTools protocol on a pipe (``--remote-debugging-pipe``): the standard library is
enough, and no port, websocket, driver binary or download is involved.
"""

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import time
from pathlib import Path

import pytest

from genlab.cli import main
from genlab.evaluate import DESCRIPTIONS
from genlab.report import write_comparison

CHROMIUM = Path(os.environ.get("GENLAB_CHROMIUM", "/usr/bin/chromium"))
LAPTOP, PHONE = (1280, 900), (390, 844)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", "--disable-default-apps", "--metrics-recording-only", "--mute-audio",
         "--hide-scrollbars", "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # belt and braces: no network
         "--remote-debugging-pipe"]


def _move_high(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    """Headless Chromium speaking the DevTools protocol over fds 3 (commands in) and 4 (replies out), one JSON
    message per NUL-terminated chunk."""

    def __init__(self, binary: Path, profile: Path, log: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser's ends, moved to fds >= 10 so that placing them on 3 and 4 cannot overwrite one with the other;
        # all four are close-on-exec: the browser keeps only the copies on 3 and 4
        to_browser_r, from_browser_w = (_move_high(fd) for fd in (to_browser_r, from_browser_w))
        file_actions = [(os.POSIX_SPAWN_DUP2, to_browser_r, 3), (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
                        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
                        (os.POSIX_SPAWN_DUP2, 1, 2)]
        self.pid = os.posix_spawn(str(binary), [str(binary), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                  os.environ, file_actions=file_actions, setsid=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.log, self._buf, self._next_id, self.events = log, b"", 0, []

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60.0) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self.events.append(self._receive(deadline))

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"chromium did not answer in time; its log:\n{self.log.read_text(errors='replace')[-3000:]}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited; its log:\n{self.log.read_text(errors='replace')[-3000:]}")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):  # if it does not close, it is killed below
            self.call("Browser.close", timeout=10)
        for _ in range(50):
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        with contextlib.suppress(ProcessLookupError):  # its helper processes, in the session it was started in
            os.killpg(self.pid, signal.SIGKILL)
        os.close(self._to_browser)
        os.close(self._from_browser)


class Page:
    """One tab at a fixed viewport size, recording console errors and requested URLs."""

    def __init__(self, browser: Chromium, url: str, size: tuple[int, int]):
        self.browser = browser
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": size[0], "height": size[1], "deviceScaleFactor": 1,
                                                         "mobile": False})
        self.call("Page.navigate", {"url": url})
        browser.wait_for("Page.loadEventFired", self.session)

    def call(self, method: str, params: dict | None = None) -> dict:
        return self.browser.call(method, params, self.session)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _events(self, *methods: str) -> list[dict]:
        return [e["params"] for e in self.browser.events if e.get("sessionId") == self.session and e.get("method") in methods]

    def errors(self) -> list[str]:
        """Console errors (Selenium's SEVERE): console.error, uncaught exceptions, and the browser's own error log
        (failed loads, Content-Security-Policy violations)."""
        found = [str(p.get("exceptionDetails")) for p in self._events("Runtime.exceptionThrown")]
        found += [str(p.get("args")) for p in self._events("Runtime.consoleAPICalled") if p.get("type") in ("error", "assert")]
        found += [p["entry"].get("text", "") for p in self._events("Log.entryAdded") if p["entry"].get("level") == "error"]
        return found

    def requests(self) -> list[str]:
        return [p["request"]["url"] for p in self._events("Network.requestWillBeSent")]

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        params = {"format": "png"}
        if full_page:
            width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", params)["data"]))
        return path


IMAGES = """Promise.all([...document.images].map(i => i.decode().then(() => 0, () => 0).then(() =>
  ({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight, src: i.currentSrc.slice(0, 22)}))))"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, or `apt-get install chromium`); "
                    "`make test` does this itself.")
    tmp = tmp_path_factory.mktemp("chromium")
    b = Chromium(CHROMIUM, tmp / "profile", tmp / "chromium.log")
    yield b
    b.close()


FULL_METRICS = {  # every metric an evaluation of a conditional VAE writes, with real-looking values
    "reconstruction_mse": 0.01113, "reconstruction_bce": 16.84, "elbo": 36.53, "nll": -39.6, "bits_per_dim": -0.8926,
    "frechet_distance": 0.9395, "kid": 0.02922, "kid_std": 0.01291, "precision": 0.937, "recall": 0.6, "density": 1.238,
    "coverage": 1.0, "class_entropy": 2.303, "classes_covered": 10.0, "inception_score": 9.697,
    "conditional_accuracy": 0.993, "memorisation_ratio": 0.9515}


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """A tiny conditional VAE with a 2-D latent space (every section of a run page) evaluated on every metric, and a
    comparison page of it and a GAN."""
    root = tmp_path_factory.mktemp("runs")
    run, gan = root / "cvae", root / "a-gan-with-a-rather-long-run-name"
    assert main(["train", "vae", "--data", "digits", "--latent-dim", "2", "--conditional", "--epochs", "2",
                 "--batch-size", "128", "--seed", "0", "--quiet", "--out", str(run)]) == 0
    assert main(["train", "gan", "--data", "digits", "--conditional", "--epochs", "1", "--batch-size", "128", "--seed", "0",
                 "--quiet", "--out", str(gan)]) == 0
    reference = {k: v * 1.1 for k, v in FULL_METRICS.items() if k not in ("reconstruction_mse", "reconstruction_bce", "elbo",
                                                                           "nll", "bits_per_dim")}
    (run / "metrics.json").write_text(json.dumps({
        "format": "genlab-metrics", "version": 1, "model": "VAE", "data": "digits", "n_heldout": 180,
        "feature_extractor": {"kind": "classifier", "test_accuracy": 0.97, "note": "genlab's reference CNN trained on these labels"},
        "metrics": FULL_METRICS, "reference": reference, "descriptions": {k: DESCRIPTIONS[k] for k in FULL_METRICS}}))
    write_comparison([run, gan], root / "compare.html")  # writes the runs' report.html too
    return run / "report.html", root / "compare.html"


NO_SIDEWAYS = """[document.documentElement.scrollWidth <= window.innerWidth + 1,
  [...document.querySelectorAll('.wide')].filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.textContent.slice(0, 60))]"""


def assert_no_sideways_scrolling(page) -> None:
    """Neither the page nor any table in it scrolls sideways."""
    page_fits, tables_that_scroll = page.evaluate(NO_SIDEWAYS)
    assert page_fits, page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert tables_that_scroll == []


def check_page(browser, path: Path, tmp_path: Path, name: str) -> Page:
    page = Page(browser, path.as_uri(), LAPTOP)
    images = page.evaluate(IMAGES)
    assert images, "the page has no images"
    assert [i for i in images if i["width"] == 0 or i["height"] == 0] == [], "images that do not decode"
    assert all(i["src"].startswith("data:image/png") for i in images)
    assert page.errors() == []
    assert [u for u in page.requests() if not u.startswith(("file:", "data:"))] == []
    page.screenshot(tmp_path / f"{name}-laptop.png")
    return page


def test_run_report_in_chromium(browser, pages, tmp_path):
    report, _ = pages
    page = check_page(browser, report, tmp_path, "report")
    headings = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert headings[0].startswith("Health: ")
    assert headings[1:] == ["Samples", "Nearest training neighbours", "Reconstructions", "Latent space", "Metrics", "Training",
                            "Configuration"]
    assert page.evaluate("document.querySelector('#metrics table').rows.length") == 1 + len(FULL_METRICS) - 1  # KID ± its std. error
    assert_no_sideways_scrolling(page)
    assert (tmp_path / "report-laptop.png").stat().st_size > 10_000
    if os.environ.get("GENLAB_WRITE_SCREENSHOT") == "1":
        docs = Path(__file__).resolve().parents[1] / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(page.screenshot(tmp_path / "report-top.png", full_page=False), docs / "report-screenshot.png")


def test_comparison_page_in_chromium(browser, pages, tmp_path):
    _, compare = pages
    page = check_page(browser, compare, tmp_path, "compare")
    links = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href.split('#')[0])")
    assert pages[0].as_uri() in links and all(link.endswith("/report.html") for link in links)
    headers = page.evaluate("[...document.querySelectorAll('th')].map(t => t.textContent)")
    assert {"health", "FID", "KID ± std. error", "recall", "ELBO (nats per sample)", "memorisation ratio"} <= set(headers)
    assert not [h for h in headers if "_" in h], "raw metric keys as column names"
    assert_no_sideways_scrolling(page)
    # samples of 8×8 digits are drawn with square pixels and at least 3 screen pixels per image pixel
    scale = page.evaluate("[...document.querySelectorAll('img.pixels')].map(i => i.width / i.naturalWidth * 4)")
    assert scale and min(scale) >= 3, scale


@pytest.mark.parametrize("which", [0, 1], ids=["report", "compare"])
def test_no_sideways_scrolling_at_phone_width(browser, pages, tmp_path, which):
    page = Page(browser, pages[which].as_uri(), PHONE)
    assert_no_sideways_scrolling(page)
    labels = page.evaluate("[...document.querySelectorAll('table.stack td[data-label]')].slice(0, 3).map(td =>"
                           " getComputedStyle(td, '::before').content)")
    assert labels and all(label not in ("none", "normal", "") for label in labels), labels  # each value says what it is
    images = page.evaluate(IMAGES)
    assert all(i["width"] > 0 for i in images)
    assert page.errors() == []
    page.screenshot(tmp_path / f"phone-{which}.png")


@pytest.mark.parametrize("width", [660, 800, 1024])
@pytest.mark.parametrize("which", [0, 1], ids=["report", "compare"])
def test_no_sideways_scrolling_between_phone_and_laptop(browser, pages, which, width):
    """Tablet widths, where the tables are not stacked yet: they must still fit."""
    assert_no_sideways_scrolling(Page(browser, pages[which].as_uri(), (width, 900)))
