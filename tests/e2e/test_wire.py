"""Wire details botocore is lenient about: timestamps, content types, empty bodies, request ids."""

from __future__ import annotations

import re

from support import (
    browser_request,
    create_ready_runtime,
    encode_path_param,
    runtime_arn,
    uniq,
)

ISO8601 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def test_timestamps_are_iso8601_strings(raw, client):
    _req, resp = create_ready_runtime(client)
    rid = resp["agentRuntimeId"]
    r = raw.request("GET", f"/runtimes/{rid}/")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("application/json"), r.headers
    body = r.json()
    for k in ("createdAt", "lastUpdatedAt"):
        assert isinstance(body[k], str) and ISO8601.fullmatch(body[k]), (k, body[k])
    r = raw.request("POST", "/runtimes/", query={"maxResults": "1"})
    item = r.json()["agentRuntimes"][0]
    assert isinstance(item["lastUpdatedAt"], str) and ISO8601.fullmatch(item["lastUpdatedAt"])


def test_202_answers_carry_json(raw):
    r = raw.request("PUT", "/browsers", body=browser_request(uniq("w"), full=False))
    assert r.status == 202, r
    assert r.header("Content-Type").startswith("application/json")
    body = r.json()
    assert body["status"] == "CREATING"
    assert ISO8601.fullmatch(body["createdAt"])


def test_tag_and_untag_answer_204_without_body(raw, client):
    _req, resp = create_ready_runtime(client)
    path = f"/tags/{encode_path_param(runtime_arn(resp['agentRuntimeId']))}"
    r = raw.request("POST", path, body={"tags": {"a": "b"}})
    assert r.status == 204, r
    assert r.body in (b"", b"{}"), r
    r = raw.request("DELETE", path, query=[("tagKeys", "a")])
    assert r.status == 204, r
    assert r.body in (b"", b"{}"), r


def test_request_ids_are_unique(raw):
    ids = set()
    for _ in range(20):
        r = raw.request("GET", "/browsers/aws.browser.v1")
        assert r.status == 200
        ids.add(r.header("x-amzn-RequestId"))
    assert len(ids) == 20


def test_error_body_shape(raw):
    r = raw.request("GET", "/runtimes/ghost_rt-AAAAAAAAAA/")
    assert r.status == 404
    assert r.error_type == "ResourceNotFoundException"
    assert r.header("Content-Type").startswith("application/json")
    body = r.json()
    assert isinstance(body.get("message"), str) and body["message"]


def test_list_with_empty_json_body_and_content_type(raw):
    """Other SDKs send `{}` with a JSON content type on body-less POST lists."""
    r = raw.request("POST", "/browsers", body={}, query={"type": "SYSTEM"})
    assert r.status == 200, r
    assert [b["browserId"] for b in r.json()["browserSummaries"]] == ["aws.browser.v1"]
