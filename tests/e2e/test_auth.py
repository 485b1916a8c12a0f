"""SigV4 authentication: the permissive default server and a strict `--credentials` server."""

from __future__ import annotations

import datetime
import time

import pytest

from support import (
    BROWSER_BUILTIN,
    RawClient,
    assert_error,
    browser_arn,
    browser_request,
    encode_path_param,
    expect_error,
    make_client,
    run_aws,
    runtime_request,
    uniq,
    write_credentials,
)

KEY = "AKIAHANGARSTRICT0001"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYstrictKEY"


@pytest.fixture(scope="module")
def strict(module_factory, tmp_path_factory):
    creds = write_credentials(tmp_path_factory.mktemp("creds") / "credentials", KEY, SECRET)
    return module_factory.start(label="strict", credentials=creds)


@pytest.fixture(scope="module")
def sraw(strict):
    return RawClient(strict.url, KEY, SECRET)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


# --------------------------------------------------------------------------------------------
# Permissive default server


@pytest.mark.parametrize(
    "method,path",
    [("POST", "/runtimes/"), ("GET", "/browsers/aws.browser.v1"), ("PUT", "/browsers")],
)
def test_default_server_rejects_missing_authorization(raw, method, path):
    body = browser_request(uniq("na"), full=False) if method == "PUT" else None
    resp = raw.request(method, path, body=body, sign=False)
    assert_error(resp, "MissingAuthenticationTokenException", 403)


@pytest.mark.parametrize(
    "value",
    [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/bedrock-agentcore/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE, SignedHeaders=host, Signature=00",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
    ],
    ids=["scheme-only", "garbage", "no-signedheaders-no-signature", "bad-credential", "bearer"],
)
def test_default_server_rejects_malformed_authorization(raw, value):
    p = raw.prepare("POST", "/runtimes/")
    p.headers["Authorization"] = value
    resp = raw.send(p)
    assert_error(resp, "IncompleteSignatureException", 403)


def test_default_server_accepts_any_key(server):
    c = make_client(server.url, key="AKIDANYTHINGGOES", secret="whatever")
    b = c.get_browser(browserId=BROWSER_BUILTIN)
    assert b["browserId"] == BROWSER_BUILTIN
    name = uniq("anykey")
    created = c.create_browser(**browser_request(name, full=False))
    assert created["browserId"].startswith(name + "-")


def test_health_needs_no_auth(server, strict):
    for s in (server, strict):
        resp = RawClient(s.url).request("GET", "/_hangar/health", sign=False)
        assert resp.status == 200, resp
        body = resp.json()
        assert body["status"] == "ok"
        assert isinstance(body["version"], str) and body["version"]


# --------------------------------------------------------------------------------------------
# Strict server


def test_strict_accepts_right_key(strict):
    c = make_client(strict.url, KEY, SECRET)
    req = runtime_request(uniq("strict"), "code", tags={"k": "v"})
    rid = c.create_agent_runtime(**req)["agentRuntimeId"]
    assert c.get_agent_runtime(agentRuntimeId=rid)["agentRuntimeName"] == req["agentRuntimeName"]
    assert rid in [r["agentRuntimeId"] for r in c.list_agent_runtimes(maxResults=100)["agentRuntimes"]]
    # the ARN in the path is percent-encoded (and double-encoded in the canonical request)
    arn = c.get_agent_runtime(agentRuntimeId=rid)["agentRuntimeArn"]
    c.tag_resource(resourceArn=arn, tags={"added": "yes"})
    c.untag_resource(resourceArn=arn, tagKeys=["k"])
    assert c.list_tags_for_resource(resourceArn=arn)["tags"] == {"added": "yes"}
    # query strings with several parameters and a clientToken
    c.delete_agent_runtime(agentRuntimeId=rid, clientToken="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")


def test_strict_accepts_aws_cli(strict, tmp_path):
    out = run_aws(strict.url, ["list-browsers", "--type", "SYSTEM"], tmp_path, key=KEY, secret=SECRET)
    assert [b["browserId"] for b in out["browserSummaries"]] == [BROWSER_BUILTIN]
    name = uniq("clistrict")
    created = run_aws(
        strict.url,
        ["create-browser-profile", "--name", name, "--tags", "team=cli"],
        tmp_path, key=KEY, secret=SECRET,
    )  # fmt: skip
    assert created["profileId"].startswith(name + "-")


def test_strict_rejects_wrong_secret(strict):
    c = make_client(strict.url, KEY, SECRET + "x")
    expect_error(c.list_agent_runtimes, "InvalidSignatureException", 403)
    expect_error(c.get_browser, "InvalidSignatureException", 403, browserId=BROWSER_BUILTIN)


def test_strict_rejects_unknown_key(strict):
    c = make_client(strict.url, "AKIAUNKNOWNKEY000000", SECRET)
    expect_error(c.list_agent_runtimes, "UnrecognizedClientException", 403)


def test_strict_rejects_missing_authorization(sraw):
    resp = sraw.request("POST", "/runtimes/", sign=False)
    assert_error(resp, "MissingAuthenticationTokenException", 403)


@pytest.mark.parametrize("minutes", [-20, 20, -60 * 24])
def test_strict_rejects_stale_or_future_date(sraw, minutes):
    when = _now() + datetime.timedelta(minutes=minutes)
    resp = sraw.request("POST", "/runtimes/", when=when)
    assert_error(resp, "InvalidSignatureException", 403)


def test_strict_accepts_small_clock_skew(sraw):
    resp = sraw.request("POST", "/runtimes/", when=_now() - datetime.timedelta(minutes=4))
    assert resp.status == 200, resp


def test_strict_rejects_missing_signature(sraw):
    p = sraw.prepare("POST", "/runtimes/")
    auth = p.headers["Authorization"]
    p.headers["Authorization"] = auth[: auth.index(", Signature=")]
    assert_error(sraw.send(p), "IncompleteSignatureException", 403)


def test_strict_rejects_tampered_body(sraw, strict):
    name = uniq("tamper")
    p = sraw.prepare("PUT", "/browsers", body=browser_request(name, full=False))
    p.body = p.body.replace(name.encode(), (name[:-1] + "X").encode())
    assert_error(sraw.send(p), "InvalidSignatureException", 403)
    c = make_client(strict.url, KEY, SECRET)
    names = [b.get("name") for b in c.list_browsers(maxResults=100, type="CUSTOM")["browserSummaries"]]
    assert name not in names and (name[:-1] + "X") not in names


def test_strict_rejects_tampered_signed_header(sraw):
    p = sraw.prepare("POST", "/runtimes/", headers={"X-Hangar-Test": "original"})
    assert "x-hangar-test" in p.headers["Authorization"].lower()
    p.headers["X-Hangar-Test"] = "changed"
    assert_error(sraw.send(p), "InvalidSignatureException", 403)


def test_strict_rejects_tampered_date_header(sraw):
    p = sraw.prepare("POST", "/runtimes/")
    stamp = p.headers["X-Amz-Date"]
    later = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ") + datetime.timedelta(seconds=1)
    p.headers["X-Amz-Date"] = later.strftime("%Y%m%dT%H%M%SZ")
    assert_error(sraw.send(p), "InvalidSignatureException", 403)


def test_strict_rejects_tampered_query_and_path(sraw):
    p = sraw.prepare("POST", "/runtimes/", query={"maxResults": "5"})
    p.url = p.url.replace("maxResults=5", "maxResults=6")
    assert_error(sraw.send(p), "InvalidSignatureException", 403)
    p = sraw.prepare("POST", "/browsers", query={"type": "SYSTEM"})
    p.url = p.url.replace("/browsers", "/code-interpreters")
    assert_error(sraw.send(p), "InvalidSignatureException", 403)


def test_strict_rejects_wrong_scope(strict):
    for region in ("us-west-2",):
        raw = RawClient(strict.url, KEY, SECRET)
        p = raw.prepare("POST", "/runtimes/")
        p.headers["Authorization"] = p.headers["Authorization"].replace(
            "/us-east-1/", f"/{region}/"
        )
        resp = raw.send(p)
        assert resp.status == 403, resp


def test_strict_presigned_get(sraw, strict):
    c = make_client(strict.url, KEY, SECRET)
    b = c.create_browser(**browser_request(uniq("presign"), tags={"p": "q"}, full=False))
    arn = browser_arn(b["browserId"])
    for path in (f"/browsers/{BROWSER_BUILTIN}", f"/tags/{encode_path_param(arn)}"):
        p = sraw.prepare("GET", path, presign_expires=300)
        assert "X-Amz-Signature=" in p.url and "Authorization" not in p.headers
        resp = sraw.send(p)
        assert resp.status == 200, resp
    assert resp.json()["tags"] == {"p": "q"}

    bad = RawClient(strict.url, KEY, SECRET + "x")
    resp = bad.send(bad.prepare("GET", f"/browsers/{BROWSER_BUILTIN}", presign_expires=300))
    assert_error(resp, "InvalidSignatureException", 403)
    p = sraw.prepare("GET", f"/browsers/{BROWSER_BUILTIN}", presign_expires=300)
    p.url = p.url.replace(BROWSER_BUILTIN, "aws.codeinterpreter.v1").replace(
        "/browsers/", "/code-interpreters/"
    )
    assert sraw.send(p).status == 403


def test_strict_presigned_url_expires(sraw):
    p = sraw.prepare("GET", f"/browsers/{BROWSER_BUILTIN}", presign_expires=1)
    time.sleep(2.1)
    resp = sraw.send(p)
    assert resp.status == 403, resp
    assert resp.error_type in ("InvalidSignatureException", "AccessDeniedException"), resp


def test_credentials_from_environment(hangar_factory, tmp_path):
    creds = write_credentials(tmp_path / "env-credentials", "AKIAFROMENV000000001", "envsecret")
    srv = hangar_factory.start(label="envcreds", credentials_env=creds)
    ok = make_client(srv.url, "AKIAFROMENV000000001", "envsecret")
    assert ok.get_browser(browserId=BROWSER_BUILTIN)["status"] == "READY"
    expect_error(
        make_client(srv.url, "AKIAFROMENV000000001", "wrong").list_browsers,
        "InvalidSignatureException", 403,
    )  # fmt: skip
    expect_error(make_client(srv.url).list_browsers, "UnrecognizedClientException", 403)


def test_strict_canonical_query_encoding(strict):
    """Query values with spaces and reserved characters, repeated keys and real nextTokens all
    verify (the canonical query string is where signature implementations go wrong)."""
    c = make_client(strict.url, KEY, SECRET)
    b = c.create_browser(**browser_request(uniq("q"), full=False))
    arn = browser_arn(b["browserId"])
    tags = {"a b": "1", "x:y/z=+@": "2", "plain": "3", "dots.and-dash_": "4"}
    c.tag_resource(resourceArn=arn, tags=tags)
    c.untag_resource(resourceArn=arn, tagKeys=["a b", "x:y/z=+@", "dots.and-dash_"])
    assert c.list_tags_for_resource(resourceArn=arn)["tags"] == {"plain": "3"}
    for _ in range(3):
        c.create_browser_profile(name=uniq("q"))
    seen = []
    for page in c.get_paginator("list_browser_profiles").paginate(PaginationConfig={"PageSize": 1}):
        seen += [p["profileId"] for p in page["profileSummaries"]]
    assert len(seen) == len(set(seen)) >= 3


def test_strict_session_token_header_is_signed(strict):
    """A client with a session token sends X-Amz-Security-Token (signed); the key still decides."""
    import boto3
    from botocore.config import Config

    c = boto3.session.Session().client(
        "bedrock-agentcore-control", endpoint_url=strict.url, region_name="us-east-1",
        aws_access_key_id=KEY, aws_secret_access_key=SECRET, aws_session_token="FwoGZXIvYXdzEXAMPLE",
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    try:
        c.list_browsers(type="SYSTEM")
    except Exception as e:  # noqa: BLE001
        code = getattr(e, "response", {}).get("Error", {}).get("Code")
        status = getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert status == 403 and code, e  # refusing session credentials is allowed; 5xx is not
