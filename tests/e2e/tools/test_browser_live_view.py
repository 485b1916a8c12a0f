"""Browser live view, end to end: the session's `liveViewStream.streamEndpoint`, presigned with
botocore's SigV4QueryAuth exactly as the SDK's `BrowserClient.generate_live_view_url` does it
(that helper itself only accepts AWS host names, so it cannot be pointed at a local server), is
opened in a second, local headless Chromium (the system's, launched by Playwright; nothing is
downloaded). Hangar's viewer page draws the session's screencast on a canvas and sends mouse and
keyboard input back; the tests read the canvas pixels and check the session's page through the
automation stream."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.auth import SIGV4_TIMESTAMP, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import support
from browser_kit import (  # noqa: F401 - fixtures are found by name
    BUILTIN,
    CREDS,
    br_server,
    cp,
    dp,
    presigned,
    pw,
    signed_headers,
    site,
    start,
    upgrade_status,
)
from conftest import _skip_or_fail

CRIMSON = (220, 20, 60)
GREEN = (30, 160, 60)
BLUE = (20, 60, 200)

# The session's page: one big color (what the viewer must show) and an input whose Enter turns
# the page green and puts the typed text in the title (what the viewer's input must cause).
SESSION_PAGE = """<!doctype html><html><head><title>live view target</title></head>
<body style="margin:0;height:100vh;background:rgb(220,20,60)">
<input id="name" style="position:absolute;left:40px;top:40px;width:400px;height:60px;font-size:30px">
<script>
document.getElementById('name').addEventListener('keydown', e => {
  if (e.key === 'Enter') {
    document.body.style.background = 'rgb(30,160,60)';
    document.title = 'typed:' + e.target.value;
  }
});
</script></body></html>"""


def live_url(started: dict, expires: int = 300) -> str:
    return presigned_ago(started["streams"]["liveViewStream"]["streamEndpoint"], 0, expires=expires)


def stream_url(page_url: str) -> str:
    """The viewer's WebSocket: the page's path + /stream, with the page's presigned query."""
    parts = urllib.parse.urlsplit(page_url)
    return urllib.parse.urlunsplit(("ws", parts.netloc, parts.path + "/stream", parts.query, ""))


class _PastSigV4QueryAuth(SigV4QueryAuth):
    """A presign made `ago` seconds ago (botocore takes the signing time from the request)."""

    def __init__(self, *args, ago: int, **kw):
        super().__init__(*args, **kw)
        self._ago = ago

    def add_auth(self, request):
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=self._ago)
        request.context["timestamp"] = when.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


def presigned_ago(url: str, ago: int, expires: int = 300, creds: Credentials = CREDS) -> str:
    request = AWSRequest(method="GET", url=url)
    _PastSigV4QueryAuth(creds, "bedrock-agentcore", support.REGION, expires=expires, ago=ago).add_auth(request)
    return request.url


def http_get(url: str):
    """(status, headers (case-insensitive), body) of a plain GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def viewer(pw):
    """A local headless Chromium (the system's) standing in for the person's browser."""
    exe = "/usr/lib/chromium/chromium" if os.path.exists("/usr/lib/chromium/chromium") else shutil.which("chromium")
    if exe is None:
        _skip_or_fail("chromium is not installed (Debian package chromium)")
    browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"], headless=True)
    yield browser
    browser.close()


def automate(pw, started: dict):
    """A Playwright connection over the session's automation stream and its first page."""
    url = started["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    context = browser.contexts[0]
    page = context.pages[0] if context.pages else context.new_page()
    return browser, page


def set_stream(dp, sid: str, status: str) -> None:
    dp.update_browser_stream(
        browserIdentifier=BUILTIN, sessionId=sid, streamUpdate={"automationStreamUpdate": {"streamStatus": status}}
    )


PIXEL_JS = """([fx, fy]) => {
  const c = document.getElementById('screen');
  const d = c.getContext('2d').getImageData(Math.floor(c.width * fx), Math.floor(c.height * fy), 1, 1).data;
  return [d[0], d[1], d[2], window.hangarLiveView.frames];
}"""


def wait_color(view, rgb, where=(0.9, 0.9), timeout=15.0) -> list:
    """Waits until the viewer's canvas shows `rgb` (JPEG: within a tolerance) at `where`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = view.evaluate(PIXEL_JS, list(where))
        if last[3] > 0 and all(abs(a - b) <= 40 for a, b in zip(last[:3], rgb)):
            return last
        time.sleep(0.1)
    raise AssertionError(f"the viewer never showed {rgb} (last pixel and frame count: {last})")


def canvas_point(view, x: float, y: float) -> tuple[float, float]:
    """Where on the viewer's screen the session page's CSS pixel (x, y) is drawn."""
    return tuple(
        view.evaluate(
            """([x, y]) => {
              const r = document.getElementById('screen').getBoundingClientRect();
              const m = window.hangarLiveView.metadata;
              return [r.left + x * r.width / m.deviceWidth, r.top + y * r.height / m.deviceHeight];
            }""",
            [x, y],
        )
    )


# ----------------------------------------------------------------------------------------------


def test_viewer_shows_the_session_and_a_person_takes_control(dp, pw, viewer):
    started = start(dp)
    sid = started["sessionId"]
    try:
        browser, page = automate(pw, started)
        page.set_content(SESSION_PAGE)
        browser.close()
        # Take control as the SDK's take_control() does: the automation stream is DISABLED,
        # the live view keeps working.
        set_stream(dp, sid, "DISABLED")

        url = live_url(started)
        status, headers, body = http_get(url)
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert b"<canvas" in body and b"http://" not in body and b"https://" not in body  # no external assets

        view = viewer.new_page(viewport={"width": 1000, "height": 650})
        try:
            view.goto(url)
            wait_color(view, CRIMSON)
            meta = view.evaluate("window.hangarLiveView.metadata")
            assert meta["deviceWidth"] == 1456  # the session's viewport, not the viewer's window
            assert view.evaluate("window.hangarLiveView.viewport") == {"width": 1456, "height": 819}

            view.mouse.click(*canvas_point(view, 240, 70))  # into the input
            view.keyboard.type("hello live")
            view.keyboard.press("Enter")
            # The viewer's next frames show the page's reaction.
            wait_color(view, GREEN)
        finally:
            view.close()

        set_stream(dp, sid, "ENABLED")
        browser, page = automate(pw, started)
        try:
            assert page.title() == "typed:hello live"
            assert page.input_value("#name") == "hello live"
        finally:
            browser.close()
    finally:
        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)


def test_viewer_follows_a_new_tab_and_navigation(dp, pw, viewer, site):
    started = start(dp)
    sid = started["sessionId"]
    try:
        browser, page = automate(pw, started)
        page.set_content(SESSION_PAGE)
        view = viewer.new_page()
        try:
            view.goto(live_url(started))
            wait_color(view, CRIMSON)
            tab = browser.contexts[0].new_page()
            tab.set_content('<body style="margin:0;height:100vh;background:rgb(20,60,200)"></body>')
            wait_color(view, BLUE)
            # A navigation to another site (another renderer process) keeps the stream going.
            tab.goto(site)
            wait_color(view, (255, 255, 255))
            # The wheel reaches the page too.
            tab.set_content('<body style="margin:0"><div style="height:5000px"></div></body>')
            tab.wait_for_function("window.scrollY === 0")
            view.mouse.move(*canvas_point(view, 300, 300))
            view.mouse.wheel(0, 600)
            tab.wait_for_function("window.scrollY > 0", timeout=10_000)
        finally:
            view.close()
            browser.close()
    finally:
        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)


def test_stream_protocol_and_close_when_the_session_stops(dp, pw, viewer):
    from websockets.sync.client import connect

    started = start(dp)
    sid = started["sessionId"]
    browser, page = automate(pw, started)
    page.set_content(SESSION_PAGE)
    browser.close()
    url = live_url(started)
    view = viewer.new_page()
    view.goto(url)
    wait_color(view, CRIMSON)
    t0 = time.monotonic()
    with connect(stream_url(url), max_size=64 << 20, open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello == {"type": "viewport", "width": 1456, "height": 819}
        frame = json.loads(ws.recv(timeout=10))
        first_frame = time.monotonic() - t0
        assert frame["type"] == "frame"
        assert frame["data"][:4] == "/9j/"  # base64 of a JPEG's FF D8 FF
        assert frame["metadata"]["deviceWidth"] == 1456
        print(f"live view first frame after {first_frame * 1000:.0f} ms")

        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
        # Both viewers' sockets close, saying the session ended.
        from websockets.exceptions import ConnectionClosed

        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)
        assert ws.close_code == 1000
    view.wait_for_function("window.hangarLiveView.state === 'ended'", timeout=10_000)
    assert view.evaluate("window.hangarLiveView.closeCode") == 1000
    view.close()
    # An ended session has no live view.
    assert http_get(live_url(started))[0] == 404
    assert upgrade_status(stream_url(live_url(started)), {}) == 404


def test_unsigned_badly_signed_and_expired_are_refused(dp, viewer):
    started = start(dp)
    sid = started["sessionId"]
    endpoint = started["streams"]["liveViewStream"]["streamEndpoint"]
    try:
        good = live_url(started)
        refused = {
            "unsigned": endpoint,
            "bad signature": good[:-4] + ("0000" if not good.endswith("0000") else "1111"),
            "wrong secret": presigned_ago(endpoint, 0, creds=Credentials(support.DEFAULT_KEY, "not-the-secret")),
            "over 300 s": presigned_ago(endpoint, 0, expires=301),
            "expired": presigned_ago(endpoint, ago=301, expires=300),
        }
        for why, url in refused.items():
            status, headers, body = http_get(url)
            assert status == 403, (why, status, body)
            assert (headers.get("x-amzn-ErrorType") or "").endswith("Exception"), (why, dict(headers))
            assert upgrade_status(stream_url(url), {}) == 403, why
        # SigV4 in headers is for the automation stream; a person's browser cannot send it.
        assert upgrade_status(stream_url(endpoint), signed_headers(stream_url(endpoint))) == 403
        # A stream URL signed for its own path is not the page's presign.
        assert upgrade_status(presigned(endpoint + "/stream"), {}) == 403
        # The page's presign re-appended to the stream path is what opens the stream, and a
        # presign that is still fresh opens it however old it is (the window is for the handshake).
        assert upgrade_status(stream_url(good), {}) == 101
        assert upgrade_status(stream_url(presigned_ago(endpoint, ago=290)), {}) == 101
        # A refused page shows no session in the browser either.
        view = viewer.new_page()
        try:
            view.goto(refused["bad signature"])
            assert "InvalidSignatureException" in view.content() or "signature" in view.content().lower()
        finally:
            view.close()
    finally:
        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
