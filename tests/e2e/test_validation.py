"""Bad input: every model constraint is enforced by the server with an AWS ValidationException.

The parametrized cases come from model_cases.py (walks the botocore model). Each is sent as a raw
SigV4-signed HTTP request, and those botocore can serialize also through boto3 with
parameter_validation=False. For each: HTTP 400, x-amzn-ErrorType ValidationException, a message,
reason FieldValidationFailed (CannotParse also accepted for wrong JSON types), a fieldList entry
naming the field, x-amzn-RequestId, and nothing changed in the store.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

import model_cases as mc
from support import (
    ARN_PREFIX,
    RawClient,
    assert_error,
    assert_runtime_config,
    assert_validation_error,
    browser_ids,
    code_interpreter_ids,
    create_ready_runtime,
    encode_path_param,
    endpoint_names,
    expect_error,
    make_client,
    profile_ids,
    runtime_arn,
    runtime_ids,
    runtime_request,
    status_of,
    uniq,
    version_ids,
    wait_status,
)

CASES = mc.all_cases()
SPECS = mc.specs_by_op()
# UpdateAgentRuntime's boto3 twins would repeat CreateAgentRuntime's (same shapes).
BOTO_CASES = [c for c in CASES if c.boto_ok and c.op != "UpdateAgentRuntime"]
MUTATING_PREFIXES = ("Create", "Update", "Delete", "Tag", "Untag")


class Ctx:
    pass


@pytest.fixture(scope="module")
def vctx(module_factory):
    """A private server with one resource of each kind, and its store snapshot."""
    srv = module_factory.start(label="validation")
    ctx = Ctx()
    ctx.server = srv
    ctx.client = make_client(srv.url)
    ctx.client_nv = make_client(srv.url, validate=False)
    ctx.raw = RawClient(srv.url)
    c = ctx.client
    _req, resp = create_ready_runtime(c, uniq("vbase"), "code", tags={"team": "support"})
    rid = resp["agentRuntimeId"]
    c.create_agent_runtime_endpoint(agentRuntimeId=rid, name="stable", agentRuntimeVersion="1")
    wait_status(lambda: c.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="stable"))
    c.create_browser(name=uniq("vb"), networkConfiguration={"networkMode": "PUBLIC"})
    c.create_code_interpreter(name=uniq("vci"), networkConfiguration={"networkMode": "SANDBOX"})
    c.create_browser_profile(name=uniq("vp"))
    ctx.rid = rid
    ctx.placeholders = {
        mc.RUNTIME_ID: rid,
        mc.RUNTIME_ARN: runtime_arn(rid),
        mc.ENDPOINT_NAME: "stable",
    }
    ctx.snapshot = lambda: snapshot(c, rid)
    ctx.initial = ctx.snapshot()
    return ctx


def snapshot(client, rid: str) -> dict:
    rt = client.get_agent_runtime(agentRuntimeId=rid)
    return {
        "runtimes": sorted(runtime_ids(client)),
        "browsers": sorted(browser_ids(client)),
        "code_interpreters": sorted(code_interpreter_ids(client)),
        "profiles": sorted(profile_ids(client)),
        "versions": sorted(version_ids(client, rid)),
        "endpoints": sorted(endpoint_names(client, rid)),
        "latest": rt["agentRuntimeVersion"],
        "description": rt.get("description"),
        "tags": client.list_tags_for_resource(resourceArn=runtime_arn(rid))["tags"],
        "stable": client.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="stable")[
            "targetVersion"
        ],
    }


def _resolve(value, ctx):
    if isinstance(value, str) and value in ctx.placeholders:
        return ctx.placeholders[value]
    return value


def _fresh_value(member: str) -> str:
    return str(uuid.uuid4()) if member == "clientToken" else uniq("v")


def render(case: mc.Case, ctx):
    """(method, path, query list, body, boto3 params) for a case, placeholders resolved and
    names/clientTokens made fresh unless they are what the case is about."""
    spec = SPECS[case.op]
    http = spec.http
    fresh = getattr(case, "fresh", ())
    body = None
    if case.body is not None:
        body = dict(case.body)
        for m in fresh:
            if m in body and spec.body and body[m] == spec.body.get(m) and case.field != m:
                body[m] = _fresh_value(m)
    path_params = {k: _resolve(v, ctx) for k, v in case.path_params.items()}
    query = []
    for k, v in case.query:
        if k in fresh and case.field != k and spec.query.get(k) == v:
            v = _fresh_value(k)
        query.append((k, v))
    uri = http["requestUri"]
    path = re.sub(r"\{(\w+)\+?\}", lambda m: encode_path_param(str(path_params[m.group(1)])), uri)
    # boto3 parameters use member names, not location names
    locs = mc._member_by_location(case.op)
    params = dict(body or {})
    for (loc, loc_name), (member, spec_m) in locs.items():
        if loc == "uri":
            params[member] = path_params[loc_name]
        else:
            vals = [v for k, v in query if k == loc_name]
            if not vals:
                continue
            if mc.shape(spec_m["shape"])["type"] == "list":
                params[member] = vals
            else:
                params[member] = vals[0]
    return http["method"], path, query, body, params


def _check_message(body: dict, case: mc.Case) -> None:
    msg = body["message"]
    assert re.match(r"^\d+ validation errors? detected: ", msg), f"message format: {msg!r}"
    if not case.prefix and case.kind != "type":
        names = (case.field,) + tuple(case.alt_fields)
        assert any(f"at '{n}'" in msg for n in names), f"message does not name {names}: {msg!r}"


def _reasons(case: mc.Case) -> tuple:
    if case.kind == "type":
        return ("FieldValidationFailed", "CannotParse")
    return ("FieldValidationFailed",)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_model_constraint_raw(vctx, case):
    method, path, query, body, _params = render(case, vctx)
    resp = vctx.raw.request(method, path, query=query, body=body)
    got = assert_validation_error(
        resp, case.field, _reasons(case), field_prefix=case.prefix, alt_fields=case.alt_fields
    )
    _check_message(got, case)
    if case.op.startswith(MUTATING_PREFIXES):
        assert vctx.snapshot() == vctx.initial, "the rejected request changed the store"


@pytest.mark.parametrize("case", BOTO_CASES, ids=[c.id for c in BOTO_CASES])
def test_model_constraint_boto3(vctx, case):
    _m, _p, _q, _b, params = render(case, vctx)
    call = getattr(vctx.client_nv, xform_name(case.op))
    with pytest.raises(ClientError) as ei:
        call(**params)
    r = ei.value.response
    assert r["Error"]["Code"] == "ValidationException", r
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400, r
    assert r["ResponseMetadata"].get("RequestId"), r
    assert r.get("reason") in _reasons(case), r
    names = [f.get("name") for f in r.get("fieldList") or []]
    wanted = (case.field,) + tuple(case.alt_fields)
    if case.prefix:
        ok = any(
            n == w or n.startswith(w + ".") or n.startswith(w + "[") for n in names for w in wanted
        )
    else:
        ok = any(n in wanted for n in names)
    assert ok, f"fieldList {names} does not name {wanted}: {r}"
    if case.op.startswith(MUTATING_PREFIXES):
        assert vctx.snapshot() == vctx.initial, "the rejected request changed the store"


def test_case_counts():
    """The generator covers every tested operation and every kind of constraint."""
    ops = {c.op for c in CASES}
    assert {
        "CreateAgentRuntime", "UpdateAgentRuntime", "CreateAgentRuntimeEndpoint",
        "UpdateAgentRuntimeEndpoint", "CreateBrowser", "CreateCodeInterpreter",
        "CreateBrowserProfile", "TagResource", "UntagResource", "ListAgentRuntimes",
        "GetAgentRuntime", "DeleteAgentRuntime",
    } <= ops  # fmt: skip
    kinds = {c.kind for c in CASES}
    assert {"required", "type", "length", "pattern", "enum", "range", "items", "union"} <= kinds
    assert len(CASES) >= 300


# --------------------------------------------------------------------------------------------
# Hand-written cases: the exact AWS text, field naming, unparseable bodies


def create_path() -> str:
    return "/runtimes/"


def valid_runtime_body(name=None) -> dict:
    return runtime_request(name or uniq("v"), "minimal")


def test_exact_message_for_name_pattern(vctx):
    body = valid_runtime_body()
    body["agentRuntimeName"] = "a-b"
    resp = vctx.raw.request("PUT", create_path(), body=body)
    got = assert_validation_error(resp, "agentRuntimeName")
    assert got["message"] == (
        "1 validation error detected: Value 'a-b' at 'agentRuntimeName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [a-zA-Z][a-zA-Z0-9_]{0,47}"
    )
    assert got["reason"] == "FieldValidationFailed"
    assert [f["name"] for f in got["fieldList"]] == ["agentRuntimeName"]


def test_boto3_hyphenated_name_rejected(vctx):
    """The classic: a hyphen in the runtime name (botocore does not check patterns)."""
    e = expect_error(
        vctx.client.create_agent_runtime,
        "ValidationException",
        400,
        **runtime_request("my-agent-runtime", "minimal"),
    )
    assert e.response["reason"] == "FieldValidationFailed"
    assert [f["name"] for f in e.response["fieldList"]] == ["agentRuntimeName"]
    assert "Value 'my-agent-runtime' at 'agentRuntimeName'" in e.response["Error"]["Message"]


def test_nested_enum_field_name(vctx):
    req = runtime_request(uniq("v"), "minimal")
    req["protocolConfiguration"] = {"serverProtocol": "GRPC"}
    e = expect_error(vctx.client.create_agent_runtime, "ValidationException", 400, **req)
    assert "protocolConfiguration.serverProtocol" in [f["name"] for f in e.response["fieldList"]]
    assert "at 'protocolConfiguration.serverProtocol'" in e.response["Error"]["Message"]


def test_list_and_map_entry_field_names(vctx):
    req = runtime_request(uniq("v"), "code")
    req["agentRuntimeArtifact"]["codeConfiguration"]["entryPoint"] = ["x" * 129]
    req["environmentVariables"] = {"GOOD": "ok", "BIG": "v" * 5001}
    e = expect_error(vctx.client_nv.create_agent_runtime, "ValidationException", 400, **req)
    names = [f["name"] for f in e.response["fieldList"]]
    assert "agentRuntimeArtifact.codeConfiguration.entryPoint[0]" in names, names
    assert "environmentVariables[BIG]" in names, names
    assert e.response["Error"]["Message"].startswith("2 validation errors detected: ")
    assert vctx.snapshot() == vctx.initial


def test_union_with_two_members(vctx):
    req = runtime_request(uniq("v"), "code")
    req["agentRuntimeArtifact"]["containerConfiguration"] = {
        "containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/a:1"
    }
    e = expect_error(vctx.client_nv.create_agent_runtime, "ValidationException", 400, **req)
    names = [f["name"] for f in e.response["fieldList"]]
    assert any(n == "agentRuntimeArtifact" or n.startswith("agentRuntimeArtifact.") for n in names)
    assert vctx.snapshot() == vctx.initial


def test_missing_required_via_boto3(vctx):
    req = runtime_request(uniq("v"), "minimal")
    del req["roleArn"]
    e = expect_error(vctx.client_nv.create_agent_runtime, "ValidationException", 400, **req)
    assert "roleArn" in [f["name"] for f in e.response["fieldList"]]


@pytest.mark.parametrize("value", [0, 101])
def test_max_results_range_via_boto3(vctx, value):
    e = expect_error(
        vctx.client_nv.list_agent_runtimes, "ValidationException", 400, maxResults=value
    )
    assert "maxResults" in [f["name"] for f in e.response["fieldList"]]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"agentRuntimeName": ',
        b'{"agentRuntimeName": "x",}',
        b"{'agentRuntimeName': 'x'}",
        b"not json at all",
        b'{"agentRuntimeName": "x"} trailing',
    ],
    ids=["truncated", "trailing-comma", "single-quotes", "garbage", "trailing-data"],
)
def test_malformed_json_cannot_parse(vctx, payload):
    resp = vctx.raw.request("PUT", create_path(), body=payload)
    got = assert_validation_error(resp, None, reasons=("CannotParse",))
    assert got["message"]
    assert vctx.snapshot() == vctx.initial


@pytest.mark.parametrize(
    "payload",
    [b"[]", b'[{"agentRuntimeName": "x"}]', b"null", b'"a string"', b"42", b"true"],
    ids=["array", "array-of-object", "null", "string", "number", "bool"],
)
def test_non_object_body(vctx, payload):
    resp = vctx.raw.request("PUT", create_path(), body=payload)
    assert_validation_error(resp, None, reasons=("CannotParse", "FieldValidationFailed"))
    assert vctx.snapshot() == vctx.initial


def test_invalid_utf8_body(vctx):
    body = json.dumps(valid_runtime_body()).encode()
    body = body.replace(b'"roleArn"', b'"role\xff\xfeArn"')
    resp = vctx.raw.request("PUT", create_path(), body=body)
    assert_validation_error(resp, None, reasons=("CannotParse", "FieldValidationFailed"))
    assert vctx.snapshot() == vctx.initial


def test_empty_body_on_create(vctx):
    resp = vctx.raw.request("PUT", create_path(), body=b"")
    assert_validation_error(resp, None, reasons=("CannotParse", "FieldValidationFailed"))
    assert vctx.snapshot() == vctx.initial


def test_oversize_body(vctx):
    body = valid_runtime_body()
    body["description"] = "d"
    raw_body = json.dumps(body).encode()
    pad = b" " * (4 * 1024 * 1024 + 1024 - len(raw_body))
    payload = raw_body[:-1] + pad + b"}"
    assert len(payload) > 4 * 1024 * 1024
    resp = vctx.raw.request("PUT", create_path(), body=payload, timeout=60)
    assert_validation_error(resp, None, reasons=("CannotParse", "FieldValidationFailed"))
    assert vctx.snapshot() == vctx.initial


def test_oversize_string_member(vctx):
    """A single huge string member (> 4 MiB body) is rejected without a 5xx."""
    body = valid_runtime_body()
    body["description"] = "d" * (5 * 1024 * 1024)
    resp = vctx.raw.request("PUT", create_path(), body=body, timeout=60)
    assert_validation_error(resp, None, reasons=("CannotParse", "FieldValidationFailed"))
    assert vctx.snapshot() == vctx.initial


def test_unknown_route_is_a_client_error(vctx):
    resp = vctx.raw.request("GET", "/no-such-route/at-all")
    assert 400 <= resp.status < 500, resp
    assert resp.header("x-amzn-RequestId")


def test_wrong_method_is_a_client_error(vctx):
    resp = vctx.raw.request("PATCH", "/runtimes/")
    assert 400 <= resp.status < 500, resp
    assert resp.header("x-amzn-RequestId")


# --------------------------------------------------------------------------------------------
# Controls: the maximal valid request of every operation (all optional members) is accepted.
# This proves the rejected cases above fail for the field they name, not for the base request.


def test_maximal_requests_accepted(hangar_factory):
    srv = hangar_factory.start(label="maximal")
    c = make_client(srv.url)
    raw = RawClient(srv.url)

    def send(op: str, body: dict, path_params: dict, query=None):
        spec = SPECS[op]
        path = re.sub(
            r"\{(\w+)\+?\}",
            lambda m: encode_path_param(path_params[m.group(1)]),
            spec.http["requestUri"],
        )
        return raw.request(spec.http["method"], path, body=body, query=query)

    created = {}
    # CreateAgentRuntime with every member the model has; Get must return all of it.
    body = mc.maximal_body(SPECS["CreateAgentRuntime"])
    # the local S3 stand-in has no object versions (a versionId would make it CREATE_FAILED)
    body["agentRuntimeArtifact"]["codeConfiguration"]["code"]["s3"].pop("versionId")
    body["agentRuntimeName"] = uniq("max")
    body["clientToken"] = str(uuid.uuid4())
    resp = send("CreateAgentRuntime", body, {})
    assert resp.status == 202, resp
    rid = resp.json()["agentRuntimeId"]
    got = wait_status(lambda: c.get_agent_runtime(agentRuntimeId=rid))
    assert_runtime_config(got, body)
    created["runtime"] = rid

    body = mc.maximal_body(SPECS["UpdateAgentRuntime"])
    body["clientToken"] = str(uuid.uuid4())
    resp = send("UpdateAgentRuntime", body, {"agentRuntimeId": rid})
    assert resp.status == 202, resp
    got = wait_status(lambda: c.get_agent_runtime(agentRuntimeId=rid))
    assert got["agentRuntimeVersion"] == "2"
    assert_runtime_config(got, body)

    body = mc.maximal_body(SPECS["CreateAgentRuntimeEndpoint"])
    body.update(name="canary", clientToken=str(uuid.uuid4()))
    resp = send("CreateAgentRuntimeEndpoint", body, {"agentRuntimeId": rid})
    assert resp.status == 202, resp

    body = mc.maximal_body(SPECS["UpdateAgentRuntimeEndpoint"])
    body["clientToken"] = str(uuid.uuid4())
    resp = send(
        "UpdateAgentRuntimeEndpoint", body, {"agentRuntimeId": rid, "endpointName": "canary"}
    )
    assert resp.status == 202, resp

    for op, key, get in (
        ("CreateBrowser", "browserId", "get_browser"),
        ("CreateCodeInterpreter", "codeInterpreterId", "get_code_interpreter"),
    ):
        body = mc.maximal_body(SPECS[op])
        members = [m for m in body if m not in ("clientToken", "tags")]
        body.update(name=uniq("max"), clientToken=str(uuid.uuid4()))
        resp = send(op, body, {})
        assert resp.status == 202, resp
        new_id = resp.json()[key]
        got = wait_status(lambda: getattr(c, get)(**{key: new_id}))
        for m in members:
            assert got.get(m) == body.get(m), f"{op} {m}: sent {body.get(m)!r} got {got.get(m)!r}"

    body = mc.maximal_body(SPECS["CreateBrowserProfile"])
    body.update(name=uniq("max"), clientToken=str(uuid.uuid4()))
    resp = send("CreateBrowserProfile", body, {})
    assert resp.status == 200, resp

    body = mc.maximal_body(SPECS["TagResource"])
    resp = send("TagResource", body, {"resourceArn": runtime_arn(rid)})
    assert resp.status == 204, resp
    tags = c.list_tags_for_resource(resourceArn=runtime_arn(rid))["tags"]
    create_tags = SPECS["CreateAgentRuntime"].body["tags"]
    assert tags == {**create_tags, **body["tags"]}

    resp = send("ListBrowserProfiles", mc.maximal_body(SPECS["ListBrowserProfiles"]), {})
    assert resp.status == 200, resp
    assert status_of(c.list_agent_runtimes()) == 200


def test_validation_precedes_existence(vctx):
    """A bad value on a resource that does not exist is a 400, not a 404."""
    resp = vctx.raw.request(
        "GET", f"/runtimes/{encode_path_param('ghost-AAAAAAAAAA')}/", query={"version": "0"}
    )
    assert_validation_error(resp, "agentRuntimeVersion", alt_fields=("version",))
    arn = f"{ARN_PREFIX}:runtime/ghost-AAAAAAAAAA"
    resp = vctx.raw.request("POST", f"/tags/{encode_path_param(arn)}", body={"tags": {"k": "v!"}})
    assert_validation_error(resp, "tags[k]")
    resp = vctx.raw.request("GET", f"/tags/{encode_path_param(arn)}")
    assert_error(resp, "ResourceNotFoundException", 404)
