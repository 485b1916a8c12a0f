"""What the browser tests share: a page served on the host's loopback, a `hangar serve` with
strict SigV4 and browser sessions, Playwright, and SigV4 helpers for the stream endpoints
(signed upgrade headers, as the SDK's generate_ws_headers computes them, or a presigned query)."""

from __future__ import annotations

import http.client
import http.server
import shutil
import threading
import urllib.parse
from pathlib import Path

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import pytest

import support
from conftest import _require_sandboxes, _skip_or_fail, data_client

BUILTIN = support.BROWSER_BUILTIN
HOST_LOOPBACK = "10.0.2.2"  # the host's loopback, as the sandboxed browser sees it
CREDS = Credentials(support.DEFAULT_KEY, support.DEFAULT_SECRET)

PAGE = b"""<!doctype html>
<html><head><title>Hangar test page</title></head>
<body>
<h1 id="title">Hello from the host</h1>
<input id="name" type="text">
<button id="go" onclick="document.getElementById('out').textContent = 'Hi ' + document.getElementById('name').value; document.cookie = 'visited=yes; path=/';">Go</button>
<p id="out"></p>
<p id="cookie"></p>
<div style="height: 3000px"></div>
<script>document.getElementById('cookie').textContent = document.cookie;</script>
</body></html>"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_args):
        pass


@pytest.fixture(scope="module")
def site():
    """A page on the host's loopback; the URL is the one the sandboxed browser uses."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{HOST_LOOPBACK}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def browser_server(base: Path, label: str = "browser", extra_args: tuple[str, ...] = (), env: dict | None = None):
    """A started `hangar serve` with strict SigV4 (so bad signatures on the stream endpoints are
    refused) and one pre-started browser; the caller stops it."""
    _require_sandboxes()
    if shutil.which("chromium") is None:
        _skip_or_fail("chromium is not installed (Debian package chromium)")
    creds = support.write_credentials(base / "credentials", support.DEFAULT_KEY, support.DEFAULT_SECRET)
    srv = support.HangarServer(
        base / "data",
        base / "logs",
        label=label,
        code_artifacts=False,
        credentials=creds,
        extra_args=["--browser-pool", "1", "--code-interpreter-pool", "0", *extra_args],
        extra_env=env,
    )
    srv.start()
    return srv


@pytest.fixture(scope="module")
def br_server(tmp_path_factory):
    srv = browser_server(tmp_path_factory.mktemp("browser-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def dp(br_server):
    return data_client(br_server.url)


@pytest.fixture(scope="module")
def cp(br_server):
    return support.make_client(br_server.url)


@pytest.fixture(scope="module")
def pw():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed: pip install -r tests/requirements-tools.txt")
    with sync_playwright() as p:
        yield p


def start(dp, browser: str = BUILTIN, **kw) -> dict:
    return dp.start_browser_session(browserIdentifier=browser, **kw)


def signed_headers(url: str) -> dict:
    """SigV4 headers for the WebSocket upgrade, as the SDK's generate_ws_headers computes them
    (a virtual GET of the URL, signing host and x-amz-date)."""
    http_url = url.replace("ws://", "http://", 1)
    request = AWSRequest(method="GET", url=http_url, headers={"host": urllib.parse.urlsplit(http_url).netloc})
    SigV4Auth(CREDS, "bedrock-agentcore", support.REGION).add_auth(request)
    return {"Authorization": request.headers["Authorization"], "X-Amz-Date": request.headers["X-Amz-Date"]}


def presigned(url: str, expires: int = 300) -> str:
    http_url = url.replace("ws://", "http://", 1)
    request = AWSRequest(method="GET", url=http_url)
    SigV4QueryAuth(CREDS, "bedrock-agentcore", support.REGION, expires=expires).add_auth(request)
    return request.url.replace("http://", "ws://", 1)


def upgrade_status(url: str, headers: dict) -> int:
    """The status of a raw WebSocket upgrade request to `url`."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request(
        "GET",
        path,
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            **headers,
        },
    )
    status = conn.getresponse().status
    conn.close()
    return status


