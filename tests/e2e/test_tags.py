"""TagResource / UntagResource / ListTagsForResource on every kind of ARN Hangar issues."""

from __future__ import annotations

import pytest

from support import (
    ARN_PREFIX,
    BROWSER_BUILTIN_ARN,
    browser_arn,
    browser_request,
    code_interpreter_arn,
    code_interpreter_request,
    create_ready_runtime,
    encode_path_param,
    endpoint_arn,
    expect_error,
    profile_arn,
    runtime_arn,
    status_of,
    uniq,
    wait_status,
)

INITIAL = {"team": "e2e", "env": "test"}


def make_resource(client, kind: str) -> str:
    """Create one resource of `kind` with INITIAL tags; return its ARN."""
    if kind == "runtime":
        _req, resp = create_ready_runtime(client, tags=dict(INITIAL))
        return runtime_arn(resp["agentRuntimeId"])
    if kind == "endpoint":
        _req, resp = create_ready_runtime(client)
        rid = resp["agentRuntimeId"]
        client.create_agent_runtime_endpoint(agentRuntimeId=rid, name="tagged", tags=dict(INITIAL))
        wait_status(lambda: client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="tagged"))
        return endpoint_arn(rid, "tagged")
    if kind == "browser":
        b = client.create_browser(**browser_request(uniq("tb"), tags=dict(INITIAL), full=False))
        return browser_arn(b["browserId"])
    if kind == "code_interpreter":
        c = client.create_code_interpreter(
            **code_interpreter_request(uniq("tci"), tags=dict(INITIAL), full=False)
        )
        return code_interpreter_arn(c["codeInterpreterId"])
    if kind == "profile":
        p = client.create_browser_profile(name=uniq("tp"), tags=dict(INITIAL))
        return profile_arn(p["profileId"])
    raise ValueError(kind)


KINDS = ["runtime", "endpoint", "browser", "code_interpreter", "profile"]


@pytest.mark.parametrize("kind", KINDS)
def test_tag_untag_list(client, kind):
    arn = make_resource(client, kind)
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == INITIAL

    r = client.tag_resource(resourceArn=arn, tags={"env": "prod", "owner": "alice", "empty": ""})
    assert status_of(r) == 204
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {
        "team": "e2e", "env": "prod", "owner": "alice", "empty": "",
    }  # fmt: skip

    r = client.untag_resource(resourceArn=arn, tagKeys=["team", "empty", "not-there"])
    assert status_of(r) == 204
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "prod", "owner": "alice"}

    client.untag_resource(resourceArn=arn, tagKeys=["env", "owner"])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {}


def test_tags_of_untagged_resource_is_empty(client):
    b = client.create_browser(**browser_request(uniq("tb"), full=False))
    resp = client.list_tags_for_resource(resourceArn=browser_arn(b["browserId"]))
    assert resp.get("tags", {}) == {}


def test_tag_values_with_allowed_punctuation(client):
    arn = make_resource(client, "profile")
    tags = {"a b": "x y", "k.:/=+@-_": "v.:/=+@-_", "K" * 128: "V" * 256}
    client.tag_resource(resourceArn=arn, tags=tags)
    got = client.list_tags_for_resource(resourceArn=arn)["tags"]
    assert got == {**INITIAL, **tags}


def test_more_than_50_tags_rejected(client):
    arn = make_resource(client, "browser")
    tags = {f"k{i}": "v" for i in range(51)}
    e = expect_error(client.tag_resource, "ValidationException", 400, resourceArn=arn, tags=tags)
    assert "tags" in [f["name"] for f in e.response.get("fieldList", [])]
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == INITIAL


def test_total_tags_capped_at_50(client):
    """Tags already on the resource count: 2 + 49 new ones exceed 50."""
    arn = make_resource(client, "code_interpreter")
    client.tag_resource(resourceArn=arn, tags={f"k{i}": "v" for i in range(48)})  # 50 in all
    assert len(client.list_tags_for_resource(resourceArn=arn)["tags"]) == 50
    client.tag_resource(resourceArn=arn, tags={"k0": "overwritten"})  # still 50: allowed
    e = expect_error(
        client.tag_resource, "ValidationException", 400, resourceArn=arn, tags={"one_more": "x"}
    )
    assert e.response["Error"]["Message"]
    got = client.list_tags_for_resource(resourceArn=arn)["tags"]
    assert len(got) == 50 and got["k0"] == "overwritten" and "one_more" not in got


def test_create_with_more_than_50_tags_rejected(client):
    name = uniq("tb")
    expect_error(
        client.create_browser, "ValidationException", 400,
        **browser_request(name, tags={f"k{i}": "v" for i in range(51)}, full=False),
    )  # fmt: skip


@pytest.mark.parametrize(
    "arn",
    [
        f"{ARN_PREFIX}:runtime/ghost_rt-AAAAAAAAAA",
        f"{ARN_PREFIX}:runtime/ghost_rt-AAAAAAAAAA/runtime-endpoint/DEFAULT",
        f"{ARN_PREFIX}:browser-custom/ghost_b-AAAAAAAAAA",
        f"{ARN_PREFIX}:code-interpreter-custom/ghost_c-AAAAAAAAAA",
        f"{ARN_PREFIX}:browser-profile/ghost_p-AAAAAAAAAA",
        f"{ARN_PREFIX}:gateway/ghost_g-AAAAAAAAAA",
        "arn:aws:bedrock-agentcore:us-east-1:999999999999:runtime/someone_else-AAAAAAAAAA",
    ],
    ids=["runtime", "endpoint", "browser", "code_interpreter", "profile", "gateway", "other-account"],
)
def test_unknown_arn_is_404(client, arn):
    expect_error(client.list_tags_for_resource, "ResourceNotFoundException", 404, resourceArn=arn)
    expect_error(
        client.tag_resource, "ResourceNotFoundException", 404, resourceArn=arn, tags={"a": "b"}
    )
    expect_error(
        client.untag_resource, "ResourceNotFoundException", 404, resourceArn=arn, tagKeys=["a"]
    )


def test_endpoint_arn_of_existing_runtime_but_unknown_endpoint_is_404(client):
    _req, resp = create_ready_runtime(client)
    arn = endpoint_arn(resp["agentRuntimeId"], "nothere")
    expect_error(client.list_tags_for_resource, "ResourceNotFoundException", 404, resourceArn=arn)


@pytest.mark.parametrize(
    "arn",
    [
        "this-is-not-an-arn-at-all",
        "arn:aws:s3:::hangar-e2e-bucket-name",
        "arn:aws:bedrock-agentcore:us-east-1:12345:runtime/x-AAAAAAAAAA",
        "arn:aws:bedrock-agentcore:us-east-1:123456789012:Runtime",
        BROWSER_BUILTIN_ARN,  # account "aws" is not taggable
    ],
    ids=["plain", "s3", "short-account", "no-resource", "builtin-browser"],
)
def test_malformed_arn_is_400(client_nv, arn):
    for call, kw in (
        (client_nv.list_tags_for_resource, {}),
        (client_nv.tag_resource, {"tags": {"a": "b"}}),
        (client_nv.untag_resource, {"tagKeys": ["a"]}),
    ):
        e = expect_error(call, "ValidationException", 400, resourceArn=arn, **kw)
        assert "resourceArn" in [f["name"] for f in e.response.get("fieldList", [])], e.response


def test_arn_path_encoding_variants(raw, client):
    """The ARN in /tags/{resourceArn} arrives percent-encoded (botocore) or with raw ':'."""
    arn = make_resource(client, "profile")
    for path in (f"/tags/{encode_path_param(arn)}", f"/tags/{arn.replace('/', '%2F')}"):
        resp = raw.request("GET", path)
        assert resp.status == 200, resp
        assert resp.json()["tags"] == INITIAL
