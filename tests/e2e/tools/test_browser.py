"""Browser data plane, end to end: boto3's `bedrock-agentcore` client and Playwright for Python
(`connect_over_cdp` to the session's automation stream, SigV4 in the upgrade headers or a
presigned query) against a real `hangar serve` whose sessions are headless Chromiums in
bubblewrap sandboxes. Playwright downloads no browser: the only browser is the session's.
Pages are served by this test on the host's loopback; the sandboxed browser reaches the host
at 10.0.2.2."""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
import urllib.parse
import zipfile

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import support
from browser_kit import (  # noqa: F401 - fixtures are found by name
    BUILTIN,
    HOST_LOOPBACK,
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

# ----------------------------------------------------------------------------------------------
# Start / Get / List / Stop


def test_start_get_list_stop(dp, br_server):
    started = start(dp, name="shop-session", sessionTimeoutSeconds=600)
    sid = started["sessionId"]
    assert started["browserIdentifier"] == BUILTIN
    assert len(sid) == 26 and sid.isalnum()
    host = f"127.0.0.1:{br_server.port}"
    auto = started["streams"]["automationStream"]
    assert auto == {
        "streamEndpoint": f"ws://{host}/browser-streams/{BUILTIN}/sessions/{sid}/automation",
        "streamStatus": "ENABLED",
    }
    assert started["streams"]["liveViewStream"]["streamEndpoint"].endswith(
        f"/browser-streams/{BUILTIN}/sessions/{sid}/live-view"
    )

    got = dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    assert got["status"] == "READY"
    assert got["name"] == "shop-session"
    assert got["sessionTimeoutSeconds"] == 600
    assert got["viewPort"] == {"width": 1456, "height": 819}
    assert got["streams"]["automationStream"] == auto

    listed = dp.list_browser_sessions(browserIdentifier=BUILTIN)["items"]
    assert any(i["sessionId"] == sid and i["status"] == "READY" for i in listed)

    stopped = dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    assert stopped["sessionId"] == sid and stopped["browserIdentifier"] == BUILTIN
    assert dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=sid)["status"] == "TERMINATED"
    ended = dp.list_browser_sessions(browserIdentifier=BUILTIN, status="TERMINATED")["items"]
    assert [i["sessionId"] for i in ended if i["sessionId"] == sid] == [sid]
    ready = dp.list_browser_sessions(browserIdentifier=BUILTIN, status="READY")["items"]
    assert sid not in [i["sessionId"] for i in ready]
    # Stop is idempotent; an ended session cannot be automated.
    dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    assert upgrade_status(auto["streamEndpoint"], signed_headers(auto["streamEndpoint"])) == 404


def test_unknown_session_and_browser(dp):
    with pytest.raises(ClientError) as e:
        dp.get_browser_session(browserIdentifier=BUILTIN, sessionId="NOSUCHSESSION")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        start(dp, browser="nosuch-abcdefghij")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_session_timeout_is_enforced(dp):
    sid = start(dp, sessionTimeoutSeconds=2)["sessionId"]
    assert dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=sid)["status"] == "READY"
    support.wait_until(
        lambda: dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=sid)["status"],
        lambda status: status == "TERMINATED",
        timeout=10,
        what="session TERMINATED by its timeout",
    )


def test_custom_browser_session(dp, cp):
    created = cp.create_browser(**support.browser_request(f"custom_{int(time.time())}", full=False))
    bid = created["browserId"]
    support.wait_status(lambda: cp.get_browser(browserId=bid))
    started = start(dp, browser=bid, viewPort={"width": 800, "height": 600})
    sid = started["sessionId"]
    assert f"/browser-streams/{bid}/sessions/{sid}/automation" in started["streams"]["automationStream"]["streamEndpoint"]
    got = dp.get_browser_session(browserIdentifier=bid, sessionId=sid)
    assert got["viewPort"] == {"width": 800, "height": 600}
    # A session belongs to its browser.
    with pytest.raises(ClientError) as e:
        dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert [i["sessionId"] for i in dp.list_browser_sessions(browserIdentifier=bid)["items"]] == [sid]
    dp.stop_browser_session(browserIdentifier=bid, sessionId=sid)


# ----------------------------------------------------------------------------------------------
# Automation stream


def test_playwright_drives_the_session(dp, pw, site):
    started = start(dp)
    sid = started["sessionId"]
    url = started["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    try:
        assert "Chrome" in browser.version or browser.version[0].isdigit()
        context = browser.contexts[0]
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(site)
        assert page.title() == "Hangar test page"
        assert page.inner_text("#title") == "Hello from the host"
        page.fill("#name", "Hangar")
        page.click("#go")
        assert page.inner_text("#out") == "Hi Hangar"
        assert page.evaluate("document.cookie") == "visited=yes"
        # The page gets the default viewport, 1456×819, in this tab and in a new one.
        assert page.evaluate("[window.innerWidth, window.innerHeight]") == [1456, 819]
        other = context.new_page()
        assert other.evaluate("[window.innerWidth, window.innerHeight]") == [1456, 819]
        other.close()
        png = page.screenshot()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    finally:
        browser.close()
    dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)


def test_sessions_do_not_share_cookies(dp, pw, site):
    a = start(dp)
    b = start(dp)
    try:
        for started, expect_before in ((a, ""), (b, "")):
            url = started["streams"]["automationStream"]["streamEndpoint"]
            browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
            try:
                context = browser.contexts[0]
                page = context.new_page()
                page.goto(site)
                assert page.inner_text("#cookie") == expect_before
                page.click("#go")
                page.reload()
                assert page.inner_text("#cookie") == "visited=yes"
            finally:
                browser.close()
    finally:
        for s in (a, b):
            dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=s["sessionId"])


def test_presigned_query_is_accepted(dp, pw):
    started = start(dp)
    url = started["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(presigned(url), timeout=30_000)
    try:
        assert browser.version
    finally:
        browser.close()
        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=started["sessionId"])


def test_unsigned_and_badly_signed_are_refused(dp, pw):
    started = start(dp)
    url = started["streams"]["automationStream"]["streamEndpoint"]
    try:
        assert upgrade_status(url, {}) == 403
        bad = signed_headers(url)
        bad["Authorization"] = bad["Authorization"][:-4] + "0000"
        assert upgrade_status(url, bad) == 403
        wrong_secret = Credentials(support.DEFAULT_KEY, "not-the-secret")
        request = AWSRequest(method="GET", url=url.replace("ws://", "http://", 1))
        SigV4Auth(wrong_secret, "bedrock-agentcore", support.REGION).add_auth(request)
        assert upgrade_status(url, {"Authorization": request.headers["Authorization"], "X-Amz-Date": request.headers["X-Amz-Date"]}) == 403
        with pytest.raises(Exception):
            pw.chromium.connect_over_cdp(url, timeout=10_000)
        # The same request, signed correctly, upgrades.
        assert upgrade_status(url, signed_headers(url)) == 101
    finally:
        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=started["sessionId"])


def test_stream_disabled_refuses_automation(dp, pw, site):
    started = start(dp)
    sid = started["sessionId"]
    url = started["streams"]["automationStream"]["streamEndpoint"]
    try:
        browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
        page = browser.contexts[0].new_page()
        assert page.evaluate("1 + 1") == 2
        updated = dp.update_browser_stream(
            browserIdentifier=BUILTIN,
            sessionId=sid,
            streamUpdate={"automationStreamUpdate": {"streamStatus": "DISABLED"}},
        )
        assert updated["streams"]["automationStream"]["streamStatus"] == "DISABLED"
        # The open connection is closed, new ones are refused.
        with pytest.raises(Exception):
            page.goto(site, timeout=10_000)
        assert upgrade_status(url, signed_headers(url)) == 409
        got = dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
        assert got["streams"]["automationStream"]["streamStatus"] == "DISABLED"
        dp.update_browser_stream(
            browserIdentifier=BUILTIN,
            sessionId=sid,
            streamUpdate={"automationStreamUpdate": {"streamStatus": "ENABLED"}},
        )
        browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
        page = browser.contexts[0].new_page()
        page.goto(site)
        assert page.inner_text("#title") == "Hello from the host"
        browser.close()
    finally:
        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)


# ----------------------------------------------------------------------------------------------
# InvokeBrowser


def invoke(dp, sid: str, **action) -> dict:
    r = dp.invoke_browser(browserIdentifier=BUILTIN, sessionId=sid, action=action)
    assert r["sessionId"] == sid
    (name, result), = r["result"].items()
    assert name == next(iter(action)), r
    assert result["status"] == "SUCCESS", result
    return result


def center(page, selector: str) -> tuple[int, int]:
    box = page.locator(selector).bounding_box()
    return int(box["x"] + box["width"] / 2), int(box["y"] + box["height"] / 2)


def test_invoke_browser_actions_change_the_page(dp, pw, site):
    started = start(dp)
    sid = started["sessionId"]
    url = started["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    try:
        page = browser.contexts[0].pages[0]
        page.goto(site)
        x, y = center(page, "#name")
        invoke(dp, sid, mouseClick={"x": x, "y": y})
        invoke(dp, sid, keyType={"text": "wrong"})
        invoke(dp, sid, keyShortcut={"keys": ["ctrl", "a"]})
        invoke(dp, sid, keyType={"text": "Invoker"})
        assert page.input_value("#name") == "Invoker"
        invoke(dp, sid, keyPress={"key": "backspace", "presses": 2})
        assert page.input_value("#name") == "Invok"
        invoke(dp, sid, mouseMove={"x": 10, "y": 10})
        x, y = center(page, "#go")
        invoke(dp, sid, mouseClick={"x": x, "y": y, "button": "LEFT", "clickCount": 1})
        assert page.inner_text("#out") == "Hi Invok"
        invoke(dp, sid, mouseScroll={"x": 100, "y": 100, "deltaY": -500})
        page.wait_for_function("window.scrollY > 0", timeout=5_000)
        invoke(dp, sid, mouseDrag={"startX": 10, "startY": 10, "endX": 200, "endY": 200})
        shot = invoke(dp, sid, screenshot={"format": "PNG"})
        assert shot["data"][:8] == b"\x89PNG\r\n\x1a\n" and len(shot["data"]) > 1000
    finally:
        browser.close()
    # Outside the viewport (1 < x < width-2): refused before anything happens.
    with pytest.raises(ClientError) as e:
        dp.invoke_browser(browserIdentifier=BUILTIN, sessionId=sid, action={"mouseClick": {"x": 1456, "y": 10}})
    assert e.value.response["Error"]["Code"] == "ValidationException"
    dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    with pytest.raises(ClientError) as e:
        dp.invoke_browser(browserIdentifier=BUILTIN, sessionId=sid, action={"mouseMove": {"x": 10, "y": 10}})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


# ----------------------------------------------------------------------------------------------
# Browser profiles


def test_profile_saved_in_one_session_appears_in_the_next(dp, cp, pw, site):
    profile = cp.create_browser_profile(name=f"shopper_{int(time.time() * 1000)}")["profileId"]
    first = start(dp)
    url = first["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    try:
        page = browser.contexts[0].pages[0]  # the session's first tab
        page.goto(site)
        assert page.inner_text("#cookie") == ""
        page.click("#go")  # sets the cookie visited=yes
        page.evaluate("localStorage.setItem('cart', '3 items'); sessionStorage.setItem('step', 'pay')")
        # Saved while the tab is open: storage is read from the open tabs.
        saved = dp.save_browser_session_profile(
            profileIdentifier=profile, browserIdentifier=BUILTIN, sessionId=first["sessionId"]
        )
    finally:
        browser.close()
    assert saved["profileIdentifier"] == profile and saved["sessionId"] == first["sessionId"]
    dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=first["sessionId"])
    got = cp.get_browser_profile(profileId=profile)
    assert got["lastSavedBrowserSessionId"] == first["sessionId"]
    assert got["lastSavedBrowserId"] == BUILTIN and got["lastSavedAt"]

    # A session with the profile has the cookie; one without it does not.
    with_profile = start(dp, profileConfiguration={"profileIdentifier": profile})
    without = start(dp)
    try:
        storage = "[localStorage.getItem('cart'), sessionStorage.getItem('step')]"
        for started, has in ((with_profile, True), (without, False)):
            url = started["streams"]["automationStream"]["streamEndpoint"]
            browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
            try:
                first_tab = browser.contexts[0].pages[0]
                assert first_tab.url == "about:blank"
                first_tab.goto(site)
                assert first_tab.inner_text("#cookie") == ("visited=yes" if has else "")
                # Session storage belongs to the tab it was restored into; local storage to
                # the origin.
                assert first_tab.evaluate(storage) == (["3 items", "pay"] if has else [None, None])
                new_tab = browser.contexts[0].new_page()
                new_tab.goto(site)
                assert new_tab.evaluate(storage) == (["3 items", None] if has else [None, None])
            finally:
                browser.close()
        got = dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=with_profile["sessionId"])
        assert got["profileConfiguration"] == {"profileIdentifier": profile}
    finally:
        for s in (with_profile, without):
            dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=s["sessionId"])
    # An ended session cannot be saved; an unknown profile is refused.
    with pytest.raises(ClientError) as e:
        dp.save_browser_session_profile(
            profileIdentifier=profile, browserIdentifier=BUILTIN, sessionId=first["sessionId"]
        )
    assert e.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as e:
        start(dp, profileConfiguration={"profileIdentifier": "nosuch-abcdefghij"})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


# ----------------------------------------------------------------------------------------------
# The bedrock-agentcore SDK's BrowserClient


@pytest.fixture
def sdk_browser(br_server, monkeypatch):
    """The SDK's BrowserClient pointed at the test server. Its generate_ws_headers() builds an
    AWS host name, so the test signs the returned streamEndpoint itself (the workaround the
    contract describes)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", support.DEFAULT_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", support.DEFAULT_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    try:
        from bedrock_agentcore._utils import endpoints
        from bedrock_agentcore.tools.browser_client import BrowserClient
    except ImportError:
        _skip_or_fail("bedrock-agentcore is not installed: pip install -r tests/requirements-tools.txt")
    monkeypatch.setattr(endpoints, "DP_ENDPOINT_OVERRIDE", br_server.url)
    monkeypatch.setattr(endpoints, "CP_ENDPOINT_OVERRIDE", br_server.url)
    client = BrowserClient(support.REGION)
    client.data_plane_client.meta.events.register("after-call.*.*", support._audit_hook)
    yield client
    client.stop()


def test_sdk_browser_client(sdk_browser, pw, site):
    sid = sdk_browser.start(viewport={"width": 1280, "height": 720})
    info = sdk_browser.get_session()
    assert info["sessionId"] == sid and info["status"] == "READY"
    assert info["viewPort"] == {"width": 1280, "height": 720}
    assert info["sessionTimeoutSeconds"] == 3600  # what the SDK sends
    url = info["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    try:
        page = browser.contexts[0].new_page()
        page.goto(site)
        assert page.inner_text("#title") == "Hello from the host"
        assert page.evaluate("window.innerWidth") == 1280
    finally:
        browser.close()
    sdk_browser.take_control()
    assert sdk_browser.get_session()["streams"]["automationStream"]["streamStatus"] == "DISABLED"
    sdk_browser.release_control()
    assert sdk_browser.get_session()["streams"]["automationStream"]["streamStatus"] == "ENABLED"
    assert any(s["sessionId"] == sid for s in sdk_browser.list_sessions()["items"])
    sdk_browser.stop()
    assert sdk_browser.get_session(BUILTIN, sid)["status"] == "TERMINATED"


# ----------------------------------------------------------------------------------------------
# proxyConfiguration


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A forward HTTP proxy that answers every request itself: a page naming the proxy and
    the host asked for. It records the absolute URLs it was asked for."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.seen.append(self.path)
        host = urllib.parse.urlsplit(self.path).hostname or "?"
        body = f"<title>{self.server.label}</title><h1 id='via'>{self.server.label} for {host}</h1>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


@pytest.fixture
def proxies():
    servers = []
    for label in ("corp-proxy", "catch-all-proxy"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
        server.seen, server.label = [], label
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def test_proxy_configuration_routes_by_domain(dp, pw, site, proxies):
    corp, catch_all = proxies
    started = start(
        dp,
        proxyConfiguration={
            "proxies": [
                {"externalProxy": {"server": HOST_LOOPBACK, "port": catch_all.server_address[1]}},
                {"externalProxy": {"server": HOST_LOOPBACK, "port": corp.server_address[1], "domainPatterns": [".corp.test", "intranet.test"]}},
            ],
            "bypass": {"domainPatterns": [HOST_LOOPBACK]},
        },
    )
    sid = started["sessionId"]
    url = started["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    try:
        page = browser.contexts[0].new_page()
        # Bypassed: straight to the site.
        page.goto(site)
        assert page.inner_text("#title") == "Hello from the host"
        # A subdomain pattern and an exact one go to the corporate proxy; the rest to the
        # catch-all. (The proxies answer themselves: no name is resolved, nothing leaves.)
        for target, proxy in (
            ("http://www.corp.test/a", corp),
            ("http://intranet.test/b", corp),
            ("http://corp.test/c", catch_all),  # `.corp.test` is subdomains only
            ("http://shop.example/d", catch_all),
        ):
            page.goto(target)
            assert page.inner_text("#via") == f"{proxy.label} for {urllib.parse.urlsplit(target).hostname}"
            assert target in proxy.seen
        assert not any(HOST_LOOPBACK in u for u in corp.seen + catch_all.seen)
    finally:
        browser.close()
        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    got = dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    assert got["proxyConfiguration"]["bypass"] == {"domainPatterns": [HOST_LOOPBACK]}


def test_proxy_credentials_are_refused(dp):
    with pytest.raises(ClientError) as e:
        start(
            dp,
            proxyConfiguration={
                "proxies": [
                    {
                        "externalProxy": {
                            "server": "proxy.corp.test",
                            "port": 3128,
                            "credentials": {"basicAuth": {"secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:proxy-AbCdEf"}},
                        }
                    }
                ]
            },
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "proxies[0].externalProxy.credentials" in e.value.response["Error"]["Message"]


# ----------------------------------------------------------------------------------------------
# extensions and enterprisePolicies (objects from the server's object store: with no
# --s3-endpoint, `s3://bucket/key` is DATA_DIR/s3/bucket/key)

EXTENSION_MANIFEST = {
    "manifest_version": 3,
    "name": "hangar-test-extension",
    "version": "1.0",
    "content_scripts": [{"matches": ["<all_urls>"], "js": ["mark.js"], "run_at": "document_end"}],
}


def put_object(server, bucket: str, key: str, body: bytes) -> dict:
    path = server.data_dir / "s3" / bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return {"s3": {"bucket": bucket, "prefix": key}}


def extension_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        # In a top folder, as `zip -r ext.zip my-extension/` makes it.
        z.writestr("my-extension/manifest.json", json.dumps(EXTENSION_MANIFEST))
        z.writestr("my-extension/mark.js", "document.documentElement.dataset.hangarExtension = 'loaded';")
    return buf.getvalue()


def test_extensions_and_enterprise_policies_apply(dp, cp, pw, site, br_server):
    ext = put_object(br_server, "browser-assets", "extensions/marker.zip", extension_zip())
    blocklist = put_object(
        br_server, "browser-assets", "policies/blocklist.json", json.dumps({"URLBlocklist": [f"{HOST_LOOPBACK}/blocked"]}).encode()
    )
    homepage = put_object(
        br_server, "browser-assets", "policies/homepage.json", json.dumps({"HomepageLocation": "http://hangar.test/home"}).encode()
    )
    # The browser's own policy is MANAGED (mandatory) by default; the session's RECOMMENDED.
    browser_id = cp.create_browser(
        name=f"policy_browser_{int(time.time() * 1000)}",
        networkConfiguration={"networkMode": "PUBLIC"},
        enterprisePolicies=[{"location": blocklist}],
    )["browserId"]
    support.wait_status(lambda: cp.get_browser(browserId=browser_id))
    started = start(dp, browser_id, extensions=[{"location": ext}], enterprisePolicies=[{"location": homepage}])
    sid = started["sessionId"]
    url = started["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    try:
        page = browser.contexts[0].new_page()
        page.goto(site)
        page.wait_for_function("document.documentElement.dataset.hangarExtension === 'loaded'", timeout=10_000)
        with pytest.raises(Exception) as blocked:
            page.goto(site + "blocked")
        assert "ERR_BLOCKED_BY_ADMINISTRATOR" in str(blocked.value)
        page = browser.contexts[0].new_page()  # the other one shows the error page
        page.goto("chrome://policy")
        # chrome://policy lists each policy with its level (in shadow DOM: locators pierce it).
        for name, level in (("HomepageLocation", "Recommended"), ("URLBlocklist", "Mandatory")):
            row = page.locator(".policy.row", has_text=name).first
            row.wait_for(timeout=10_000)
            assert level in row.inner_text(), row.inner_text()
    finally:
        browser.close()
        dp.stop_browser_session(browserIdentifier=browser_id, sessionId=sid)
    # A plain session of the built-in browser has neither.
    plain = start(dp)
    url = plain["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    try:
        page = browser.contexts[0].new_page()
        page.goto(site)
        assert page.evaluate("document.documentElement.dataset.hangarExtension") is None
        page.goto(site + "blocked")
        assert page.inner_text("#title") == "Hello from the host"
    finally:
        browser.close()
        dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=plain["sessionId"])


def test_missing_or_bad_objects_are_refused_naming_the_field(dp, br_server):
    missing = {"s3": {"bucket": "browser-assets", "prefix": "extensions/nosuch.zip"}}
    with pytest.raises(ClientError) as e:
        start(dp, extensions=[{"location": missing}])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "extensions[0].location" in e.value.response["Error"]["Message"]
    not_json = put_object(br_server, "browser-assets", "policies/broken.json", b"{not json")
    with pytest.raises(ClientError) as e:
        start(dp, enterprisePolicies=[{"location": not_json, "type": "MANAGED"}])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "enterprisePolicies[0]" in e.value.response["Error"]["Message"]
