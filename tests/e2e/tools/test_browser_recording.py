"""Browser session recording, end to end: a custom browser created with boto3's control-plane
client with `recording` to a bucket of moto's S3 server, a session driven by Playwright over the
automation stream, and the recording read back with boto3's S3 client: `metadata.json` and the
gzip NDJSON batches of rrweb events under `<prefix>/<sessionId>/`. Also: a recording that cannot
be written (no such bucket) leaves the session usable, and the built-in browser records nothing.
(Requires moto[server] from tests/requirements-sessions.txt and Playwright from
tests/requirements-tools.txt.)"""

from __future__ import annotations

import datetime
import gzip
import json
import time

import pytest

import support
from browser_kit import (  # noqa: F401 - fixtures are found by name
    BUILTIN,
    browser_server,
    pw,
    signed_headers,
    site,
    start,
)
from conftest import _skip_or_fail, data_client

BUCKET = "hangar-e2e-recordings"
PREFIX = "replays/e2e"
MISSING_BUCKET = "hangar-e2e-no-such-bucket"
CONSOLE_MARKER = "hangar-console-marker"
SECRET = "s3cret-pa55"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    try:
        import moto  # noqa: F401
    except ImportError:
        _skip_or_fail("moto[server] is not installed: pip install -r tests/requirements-sessions.txt")
    store = support.MotoS3(tmp_path_factory.mktemp("moto-logs"))
    store.start()
    store.ensure_bucket(BUCKET)
    yield store
    store.stop()


@pytest.fixture(scope="module")
def rec_server(tmp_path_factory, s3):
    srv = browser_server(
        tmp_path_factory.mktemp("recording-server"),
        label="recording",
        extra_args=("--s3-endpoint", s3.url),
        env=support.s3_env(),
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def dp(rec_server):
    return data_client(rec_server.url)


@pytest.fixture(scope="module")
def cp(rec_server):
    return support.make_client(rec_server.url)


def recorded_browser(cp, bucket: str, prefix: str) -> str:
    created = cp.create_browser(
        name=f"rec_{int(time.time() * 1000)}",
        networkConfiguration={"networkMode": "PUBLIC"},
        recording={"enabled": True, "s3Location": {"bucket": bucket, "prefix": prefix}},
    )
    bid = created["browserId"]
    support.wait_status(lambda: cp.get_browser(browserId=bid))
    return bid


def drive(pw, started: dict, site: str, second_page: bool = False) -> None:
    """Navigate, type, click, scroll and log to the console, as an agent would."""
    url = started["streams"]["automationStream"]["streamEndpoint"]
    browser = pw.chromium.connect_over_cdp(url, headers=signed_headers(url), timeout=30_000)
    try:
        context = browser.contexts[0]
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(site)
        assert page.inner_text("#title") == "Hello from the host"
        page.click("#name")
        page.keyboard.type("Hangar")
        page.click("#go")
        assert page.inner_text("#out") == "Hi Hangar"
        # A password field added later (a mutation): its value is masked in the recording.
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<input id=pw type=password>')")
        page.fill("#pw", SECRET)
        page.mouse.move(200, 300)
        page.mouse.wheel(0, 900)
        page.wait_for_function("window.scrollY > 0")
        page.evaluate(f"console.log('{CONSOLE_MARKER}', 42)")
        page.wait_for_timeout(300)  # the scroll and moves are sampled, not sent at once
        if second_page:
            # A tab opened later is recorded too (and not held up by the recorder).
            other = context.new_page()
            other.goto(site + "second")
            assert other.inner_text("#title") == "Hello from the host"
            other.close()
    finally:
        browser.close()


def objects(s3, bucket: str, prefix: str = "") -> dict[str, bytes]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def iso(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_session_is_recorded_to_s3(dp, cp, pw, site, s3):
    bid = recorded_browser(cp, BUCKET, PREFIX + "/")
    started = start(dp, browser=bid)
    sid = started["sessionId"]
    t0 = time.time()
    drive(pw, started, site, second_page=True)
    dp.stop_browser_session(browserIdentifier=bid, sessionId=sid)
    stopped_after = time.time() - t0

    got = dp.get_browser_session(browserIdentifier=bid, sessionId=sid)
    folder = f"{PREFIX}/{sid}/"
    assert got["sessionReplayArtifact"] == f"s3://{BUCKET}/{folder}"

    # Stop answers once the recording is written: nothing to wait for.
    stored = objects(s3, BUCKET, folder)
    assert f"{folder}metadata.json" in stored, sorted(stored)
    batch_keys = sorted(k for k in stored if k.startswith(f"{folder}batch-"))
    assert batch_keys and batch_keys[0] == f"{folder}batch-000001.ndjson.gz", sorted(stored)

    meta = json.loads(stored[f"{folder}metadata.json"])
    assert meta["sessionId"] == sid and meta["browserIdentifier"] == bid
    assert meta["format"] == "rrweb"
    start_time, end_time = iso(meta["startTime"]), iso(meta["endTime"])
    assert start_time <= end_time
    assert 0 < meta["durationMs"] <= (stopped_after + 5) * 1000
    assert meta["viewport"] == {"width": 1456, "height": 819}
    assert "recordingError" not in meta, meta
    assert [f"{folder}{b['file']}" for b in meta["batches"]] == batch_keys

    events = []
    for key, batch in zip(batch_keys, meta["batches"]):
        lines = gzip.decompress(stored[key]).decode().splitlines()
        parsed = [json.loads(line) for line in lines]
        assert len(parsed) == batch["eventCount"]
        assert all("type" in e and isinstance(e.get("timestamp"), (int, float)) for e in parsed)
        assert batch["firstTimestamp"] == parsed[0]["timestamp"]
        assert batch["lastTimestamp"] == parsed[-1]["timestamp"]
        events.extend(parsed)
    assert meta["eventCount"] == len(events)
    # Events are within the session's lifetime (page clock and server clock are the same host).
    assert all(start_time.timestamp() * 1000 - 2000 <= e["timestamp"] <= end_time.timestamp() * 1000 + 2000 for e in events)

    def of(type_, source=None):
        return [e for e in events if e["type"] == type_ and (source is None or e["data"].get("source") == source)]

    metas = [e["data"] for e in of(4)]
    assert any(m["href"] == site and m["width"] == 1456 for m in metas), metas
    assert any(m["href"] == site + "second" for m in metas), metas
    snapshots = [json.dumps(e["data"]["node"]) for e in of(2)]
    page_snapshot = [s for s in snapshots if "Hello from the host" in s]
    assert page_snapshot, f"no full snapshot of the page among {len(snapshots)}"
    node = next(e["data"]["node"] for e in of(2) if "Hello from the host" in json.dumps(e["data"]["node"]))
    assert node["type"] == 0 and node["childNodes"], "a Document node with children"
    html = next(c for c in node["childNodes"] if c.get("tagName") == "html")
    assert html["type"] == 2 and isinstance(html["id"], int)

    clicks = [e["data"] for e in of(3, 2)]
    assert any(c["type"] == 2 for c in clicks), clicks  # Click
    assert any(c["type"] == 1 for c in clicks), clicks  # MouseDown
    inputs = [e["data"]["text"] for e in of(3, 5)]
    assert "Hangar" in inputs, inputs
    assert "*" * len(SECRET) in inputs, inputs
    assert not [e for e in events if SECRET in json.dumps(e)], "the password is masked"
    assert of(3, 3), "a scroll event"
    assert of(3, 1), "mouse moves"
    assert any(a.get("node", {}).get("textContent") == "Hi Hangar" or "Hi Hangar" in json.dumps(m) for m in [e["data"] for e in of(3, 0)] for a in m.get("adds", [{}])), "the mutation writing 'Hi Hangar'"

    consoles = [e["data"] for e in of(6) if e["data"]["plugin"] == "rrweb/console@1"]
    assert any(c["payload"]["level"] == "log" and c["payload"]["payload"][:2] == [CONSOLE_MARKER, "42"] for c in consoles), consoles
    network = [e["data"]["payload"] for e in of(5) if e["data"]["tag"] == "network"]
    assert any(n["phase"] == "request" and n["url"] == site and n["method"] == "GET" for n in network), network
    assert any(n["phase"] == "response" and n["url"] == site and n["status"] == 200 for n in network), network
    navigations = [e["data"]["payload"]["url"] for e in of(5) if e["data"]["tag"] == "navigation"]
    assert site in navigations, navigations


def test_builtin_browser_records_nothing(dp, pw, site, s3):
    started = start(dp)
    sid = started["sessionId"]
    drive(pw, started, site)
    dp.stop_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    assert "sessionReplayArtifact" not in dp.get_browser_session(browserIdentifier=BUILTIN, sessionId=sid)
    for bucket in s3.client().list_buckets()["Buckets"]:
        assert not [k for k in objects(s3, bucket["Name"]) if sid in k]


def test_recording_failure_does_not_break_the_session(dp, cp, pw, site, s3, rec_server):
    bid = recorded_browser(cp, MISSING_BUCKET, "nowhere")
    started = start(dp, browser=bid)
    sid = started["sessionId"]
    drive(pw, started, site)
    got = dp.get_browser_session(browserIdentifier=bid, sessionId=sid)
    assert got["status"] == "READY"
    # Where it would have been; the failure is in the server log.
    assert got["sessionReplayArtifact"] == f"s3://{MISSING_BUCKET}/nowhere/{sid}/"
    # Still usable after the first failed upload: drive it again.
    drive(pw, started, site)
    dp.stop_browser_session(browserIdentifier=bid, sessionId=sid)
    assert dp.get_browser_session(browserIdentifier=bid, sessionId=sid)["status"] == "TERMINATED"
    assert rec_server.alive()
    names = [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    assert MISSING_BUCKET not in names

    log = rec_server.stderr_path.read_text("utf-8", "replace")
    failures = [line for line in log.splitlines() if "WARN" in line and sid in line and "recording" in line]
    assert any(MISSING_BUCKET in line for line in failures), "\n".join(failures) or log[-3000:]
    assert any("session recording incomplete" in line for line in failures), "\n".join(failures)


def test_timed_out_session_is_flushed(dp, cp, pw, site, s3):
    """A session that ends by its timeout (not Stop) still gets its last batch and final
    metadata (written in the background, so polled for)."""
    bid = recorded_browser(cp, BUCKET, "timeouts")
    started = start(dp, browser=bid, sessionTimeoutSeconds=8)  # time enough to drive it
    sid = started["sessionId"]
    drive(pw, started, site)
    key = f"timeouts/{sid}/metadata.json"
    deadline = time.time() + 25
    meta = {}
    while time.time() < deadline:
        stored = objects(s3, BUCKET, f"timeouts/{sid}/")
        meta = json.loads(stored[key]) if key in stored else {}
        if meta.get("status") == "COMPLETE":
            break
        time.sleep(0.5)
    assert meta.get("status") == "COMPLETE", meta
    assert dp.get_browser_session(browserIdentifier=bid, sessionId=sid)["status"] == "TERMINATED"
    assert meta["eventCount"] > 0 and meta["batches"]
    assert not [k for k in stored if k.endswith(".part")]


def test_recording_to_the_local_directory(tmp_path, pw, site):
    """Without an S3 endpoint, recordings go where code artifacts come from: the directory
    standing in for S3 (`s3://bucket/key` is `DIR/bucket/key`)."""
    root = tmp_path / "s3"
    (root / "local-bucket").mkdir(parents=True)
    (tmp_path / "server").mkdir()
    srv = browser_server(tmp_path / "server", label="recording-dir", extra_args=("--s3-dir", str(root)))
    try:
        cp, dp = support.make_client(srv.url), data_client(srv.url)
        bid = recorded_browser(cp, "local-bucket", "here")
        started = start(dp, browser=bid)
        sid = started["sessionId"]
        drive(pw, started, site)
        dp.stop_browser_session(browserIdentifier=bid, sessionId=sid)
        assert dp.get_browser_session(browserIdentifier=bid, sessionId=sid)["sessionReplayArtifact"] == f"s3://local-bucket/here/{sid}/"
        folder = root / "local-bucket" / "here" / sid
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["status"] == "COMPLETE" and meta["eventCount"] > 0
        lines = gzip.decompress((folder / "batch-000001.ndjson.gz").read_bytes()).decode().splitlines()
        assert any(json.loads(line)["type"] == 2 for line in lines)
    finally:
        srv.stop()
