"""Model-driven bad-input cases for the control plane.

Walks the input shapes of model/bedrock-agentcore-control.json starting from a realistic valid
request per operation and produces one case per violated constraint: a missing required member,
a wrong JSON type, a string too short/too long, a value matching its pattern only as a prefix or
suffix (patterns are anchored) or with a trailing newline, an enum value that is not in the set,
an integer out of range, a list/map with too few/many items, a union with zero or two members, a
map key that breaks the key constraints. Optional members absent from the base request are
synthesized from the model so that their constraints are exercised too.

Every case is checked against a small Python oracle of the model constraints (`violations`) so a
case that would not actually be invalid is a generator bug, not a server failure.

Run `python tests/e2e/model_cases.py` to print a summary (and `-v` to list every case).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODEL = json.loads((REPO / "model" / "bedrock-agentcore-control.json").read_text("utf-8"))
SHAPES: dict = MODEL["shapes"]
OPERATIONS: dict = MODEL["operations"]

ACCOUNT = "123456789012"

# Placeholders filled in by the test fixture (resources that exist on the validation server).
RUNTIME_ID = "<RUNTIME_ID>"
RUNTIME_ARN = "<RUNTIME_ARN>"
ENDPOINT_NAME = "<ENDPOINT_NAME>"
# Well-formed ids of resources that do not exist (targets of Delete cases, so that a server
# that wrongly accepts the request deletes nothing).
GHOST_RUNTIME_ID = "ghost_runtime-AAAAAAAAAA"
GHOST_BROWSER_ID = "ghost_browser-AAAAAAAAAA"
GHOST_CI_ID = "ghost_ci-AAAAAAAAAA"
GHOST_PROFILE_ID = "ghost_profile-AAAAAAAAAA"

# A valid example for every constrained string shape reachable from the tested operations.
EXAMPLES: dict[str, Any] = {
    "AgentRuntimeId": "support_agent-AbCdEfGhIj",
    "AgentRuntimeName": "support_agent",
    "AgentRuntimeVersion": "1",
    "AllowedAudience": "support-api",
    "AllowedClient": "3example5client7id",
    "AllowedScopeType": "support/read",
    "AgentEndpointDescription": "Production traffic",
    "BedrockAgentcoreResourceArn": (
        f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:runtime/host_agent-AbCdEfGhIj"
    ),
    "BrowserId": "aws.browser.v1",
    "BrowserProfileId": "shopping_profile-AbCdEfGhIj",
    "BrowserProfileName": "shopping_profile",
    "CapacityProviderArn": (
        f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:capacity-provider/gpu_pool-AbCdEfGhIj"
    ),
    "CapacityProviderVolumeName": "scratch-vol",
    "CertificateBucketOwnerAccountId": ACCOUNT,
    "CertificateS3Uri": "s3://hangar-e2e-certs/jwt-ca.pem",
    "CertificateSecretArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:jwt-ca-AbCdEf",
    "ClientToken": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "CodeInterpreterId": "aws.codeinterpreter.v1",
    "Description": "An end-to-end test resource",
    "DiscoveryUrl": "https://issuer.example.com/.well-known/openid-configuration",
    "EfsAccessPointArn": (
        f"arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:access-point/fsap-0123456789abcdef0"
    ),
    "EfsFileSystemArn": (
        f"arn:aws:elasticfilesystem:us-east-1:{ACCOUNT}:file-system/fs-0123456789abcdef0"
    ),
    "EndpointName": "production",
    "EnvironmentVariableKey": "LOG_LEVEL",
    "EnvironmentVariableValue": "info",
    "HeaderName": "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant",
    "InboundTokenClaimNameType": "department",
    "LifecycleHookPath": "/warmup",
    "MatchValueString": "support",
    "MountPath": "/mnt/workspace",
    "NextToken": "eyJvZmZzZXQiOjF9",
    "PlatformVersion": "2025.10",
    "PrivateEndpointOverrideDomain": "api.internal.example.com",
    "ResourceConfigurationIdentifier": "rcfg-0123456789abcdef0",
    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/AgentCoreRuntimeRole",
    "RoutingDomain": "internal.example.com",
    "RuntimeContainerUri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/support-agent:v1",
    "S3FilesAccessPointArn": (
        f"arn:aws:s3files:us-east-1:{ACCOUNT}:file-system/fs-0123456789abcdef0/"
        "access-point/fsap-0123456789abcdef0"
    ),
    "S3FilesFileSystemArn": f"arn:aws:s3files:us-east-1:{ACCOUNT}:file-system/fs-0123456789abcdef0",
    "S3LocationBucketString": "hangar-e2e-artifacts",
    "S3LocationPrefixString": "agents/support.zip",
    "S3LocationVersionIdString": "3sL4kqtJlcpXroDTDmJ",
    "SandboxName": "web_tools",
    "SecurityGroupId": "sg-0123456789abcdef0",
    "SecurityGroupIdentifier": "sg-0123456789abcdef0",
    "ServerPath": "/invocations",
    "SubnetId": "subnet-0123456789abcdef0",
    "TagKey": "team",
    "TagValue": "support",
    "TaggableResourcesArn": (
        f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:runtime/support_agent-AbCdEfGhIj"
    ),
    "VpcIdentifier": "vpc-0123456789abcdef0",
    "WorkloadIdentityNameType": "support_agent_identity",
    "entryPoint": "main.py",
    # integers
    "ServerPort": 8080,
    "Port": 9000,
    "LifecycleConfigurationIdleRuntimeSessionTimeoutInteger": 900,
    "LifecycleConfigurationMaxLifetimeInteger": 28800,
    "MaxResults": 10,
    "Integer": 2048,
}


# --------------------------------------------------------------------------------------------
# Model helpers


def shape(name: str) -> dict:
    return SHAPES[name]


def is_union(s: dict) -> bool:
    return s.get("type") == "structure" and bool(s.get("union"))


def join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def fullmatch(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


# --------------------------------------------------------------------------------------------
# Oracle: the violations of the model constraints in a JSON value (paths as Hangar names them)


def violations(shape_name: str, value: Any, path: str) -> list[tuple[str, str]]:
    s = shape(shape_name)
    t = s["type"]
    out: list[tuple[str, str]] = []
    if value is None:
        return out
    if t == "string":
        if not isinstance(value, str):
            return [(path, "type")]
        if "min" in s and len(value) < s["min"]:
            out.append((path, "length"))
        if "max" in s and len(value) > s["max"]:
            out.append((path, "length"))
        if "pattern" in s and not fullmatch(s["pattern"], value):
            out.append((path, "pattern"))
        if "enum" in s and value not in s["enum"]:
            out.append((path, "enum"))
        return out
    if t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [(path, "type")]
        bits = 31 if t == "integer" else 63
        if not -(2**bits) <= value < 2**bits:
            return [(path, "type")]  # does not fit the model's integer type
        if "min" in s and value < s["min"]:
            out.append((path, "range"))
        if "max" in s and value > s["max"]:
            out.append((path, "range"))
        return out
    if t == "boolean":
        return [] if isinstance(value, bool) else [(path, "type")]
    if t == "list":
        if not isinstance(value, list):
            return [(path, "type")]
        if len(value) < s.get("min", 0) or ("max" in s and len(value) > s["max"]):
            out.append((path, "items"))
        for i, item in enumerate(value):
            if item is None:
                out.append((f"{path}[{i}]", "required"))
            else:
                out += violations(s["member"]["shape"], item, f"{path}[{i}]")
        return out
    if t == "map":
        if not isinstance(value, dict):
            return [(path, "type")]
        if len(value) < s.get("min", 0) or ("max" in s and len(value) > s["max"]):
            out.append((path, "items"))
        for k, v in value.items():
            out += [(path, "key-" + kind) for _p, kind in violations(s["key"]["shape"], k, path)]
            if v is None:
                out.append((f"{path}[{k}]", "required"))
            else:
                out += violations(s["value"]["shape"], v, f"{path}[{k}]")
        return out
    if t == "structure":
        if not isinstance(value, dict):
            return [(path, "type")]
        members = s["members"]
        if is_union(s):
            present = [m for m in members if value.get(m) is not None]
            if len(present) != 1:
                out.append((path, "union"))
        for m in s.get("required", []):
            if value.get(m) is None:
                out.append((join(path, m), "required"))
        for m, v in value.items():
            if m in members and v is not None:
                out += violations(members[m]["shape"], v, join(path, m))
        return out
    raise ValueError(f"unsupported shape type {t} ({shape_name})")


# --------------------------------------------------------------------------------------------
# Synthesis of valid values (every member filled in, first union member)


def synth(shape_name: str, depth: int = 0) -> Any:
    if shape_name in EXAMPLES:
        return copy.deepcopy(EXAMPLES[shape_name])
    s = shape(shape_name)
    t = s["type"]
    if depth > 12:
        raise RecursionError(shape_name)
    if t == "string":
        if "enum" in s:
            return s["enum"][0]
        if "pattern" in s:
            raise KeyError(f"EXAMPLES needs a value for patterned string shape {shape_name}")
        n = max(s.get("min", 1), min(8, s.get("max", 8)))
        return ("example-" * 10)[:n] if n <= 80 else "x" * n
    if t in ("integer", "long"):
        lo, hi = s.get("min"), s.get("max")
        if lo is not None:
            return lo
        if hi is not None:
            return hi
        return 1
    if t == "boolean":
        return True
    if t == "list":
        return [synth(s["member"]["shape"], depth + 1) for _ in range(max(1, s.get("min", 1)))]
    if t == "map":
        k = synth(s["key"]["shape"], depth + 1)
        return {k: synth(s["value"]["shape"], depth + 1)}
    if t == "structure":
        members = s["members"]
        if is_union(s):
            m = next(iter(members))
            return {m: synth(members[m]["shape"], depth + 1)}
        return {m: synth(spec["shape"], depth + 1) for m, spec in members.items()}
    raise ValueError(t)


def fill(shape_name: str, value: Any, depth: int = 0) -> Any:
    """`value` with every absent optional member synthesized (recursively; unions untouched)."""
    s = shape(shape_name)
    t = s["type"]
    if t == "structure" and isinstance(value, dict):
        members = s["members"]
        out = {}
        if is_union(s):
            for m, v in value.items():
                out[m] = fill(members[m]["shape"], v, depth + 1) if m in members else v
            return out
        for m, spec in members.items():
            if spec.get("location"):
                continue
            if m in value:
                out[m] = fill(spec["shape"], value[m], depth + 1)
            else:
                out[m] = synth(spec["shape"], depth + 1)
        for m, v in value.items():
            out.setdefault(m, v)
        return out
    if t == "list" and isinstance(value, list):
        return [fill(s["member"]["shape"], v, depth + 1) for v in value]
    if t == "map" and isinstance(value, dict):
        return {k: fill(s["value"]["shape"], v, depth + 1) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Mutations


@dataclass
class Mut:
    value: Any
    field: str
    kind: str
    desc: str
    boto_ok: bool = True  # botocore (validation off) can still serialize it
    prefix: bool = False  # fieldList may name the field or something under it


def _string_length_cases(s: dict, v: str, path: str) -> Iterator[Mut]:
    pat = s.get("pattern")
    lo, hi = s.get("min"), s.get("max")
    if lo is not None and lo >= 1:
        n = lo - 1
        cands = [v[:n], "a" * n, "1" * n, "/mnt/"[:n]]
        pick = next((c for c in cands if len(c) == n and (not pat or fullmatch(pat, c))), "a" * n)
        yield Mut(pick, path, "length", f"len{n}<min{lo}")
    if hi is not None:
        n = hi + 1
        pick = None
        for filler in ("a", "0", "_", "x1"):
            for c in (v + filler * n, v[:1] + filler * n + v[1:], filler * n + v):
                c = c[:n] if len(c) > n and (not pat or fullmatch(pat, c[:n])) else c
                if len(c) == n and (not pat or fullmatch(pat, c)):
                    pick = c
                    break
            if pick:
                break
        yield Mut(pick or "a" * n, path, "length", f"len{n}>max{hi}")


def _string_pattern_cases(s: dict, v: str, path: str, uri: bool = False) -> Iterator[Mut]:
    pat = s["pattern"]
    lo, hi = s.get("min", 0), s.get("max", 10**9)
    cands = [
        ("suffix", v + "!"),  # valid prefix: only an anchored match rejects it
        ("prefix", "!" + v),  # valid suffix: only an anchored match rejects it
        ("newline", v + "\n"),  # Python/PCRE `$` trap
        ("too-long-for-pattern", v + "a" * 60),  # bounded repetition ({0,47} etc.)
        ("hyphen", "a-b"),
        ("suffix-space", v + " x"),
        ("empty", ""),
    ]
    seen = set()
    n = 0
    for desc, c in cands:
        if c in seen or fullmatch(pat, c) or not (lo <= len(c) <= hi):
            continue
        if uri and (c == "" or c in (".", "..")):
            continue
        seen.add(c)
        yield Mut(c, path, "pattern", desc)
        n += 1
        if n >= 5:
            break


def _string_enum_cases(s: dict, v: str, path: str) -> Iterator[Mut]:
    enum = s["enum"]
    cands = [("bogus", "BOGUS_VALUE"), ("lowercase", v.lower()), ("trailing-space", v + " ")]
    for desc, c in cands:
        if c not in enum:
            yield Mut(c, path, "enum", desc)


def string_cases(s: dict, v: str, path: str, uri: bool = False) -> Iterator[Mut]:
    yield from _string_length_cases(s, v, path) if not uri else (
        m for m in _string_length_cases(s, v, path) if m.value not in ("", ".", "..")
    )
    if "pattern" in s:
        yield from _string_pattern_cases(s, v, path, uri)
    if "enum" in s:
        yield from _string_enum_cases(s, v, path)


def mutations(shape_name: str, value: Any, path: str) -> Iterator[Mut]:
    s = shape(shape_name)
    t = s["type"]
    if t == "string":
        yield Mut(123, path, "type", "number-for-string", boto_ok=False)
        yield from string_cases(s, value, path)
    elif t in ("integer", "long"):
        if "min" in s:
            yield Mut(s["min"] - 1, path, "range", f"below-min{s['min']}")
        if "max" in s:
            yield Mut(s["max"] + 1, path, "range", f"above-max{s['max']}")
        yield Mut(str(value), path, "type", "string-for-integer", boto_ok=False)
        yield Mut(value + 0.5, path, "type", "float-for-integer", boto_ok=False)
        yield Mut(10**20, path, "type", "integer-overflow", boto_ok=False)
    elif t == "boolean":
        yield Mut("true", path, "type", "string-for-boolean", boto_ok=False)
        yield Mut(1, path, "type", "number-for-boolean", boto_ok=False)
    elif t == "list":
        yield Mut("x", path, "type", "string-for-list", boto_ok=False)
        yield Mut({}, path, "type", "object-for-list", boto_ok=False)
        item = value[0] if value else synth(s["member"]["shape"])
        lo = s.get("min", 0)
        if lo >= 1:
            yield Mut([item] * (lo - 1), path, "items", f"{lo - 1}-items<min{lo}")
        if "max" in s:
            yield Mut([item] * (s["max"] + 1), path, "items", f"{s['max'] + 1}-items>max")
        for m in mutations(s["member"]["shape"], item, f"{path}[0]"):
            rest = value[1:] if value else []
            yield Mut([m.value] + rest, m.field, m.kind, m.desc, m.boto_ok, m.prefix)
    elif t == "map":
        yield Mut("x", path, "type", "string-for-map", boto_ok=False)
        yield Mut([], path, "type", "array-for-map", boto_ok=False)
        if not value:
            value = synth(shape_name)
        k0, v0 = next(iter(value.items()))
        lo = s.get("min", 0)
        if lo >= 1:
            yield Mut({}, path, "items", f"0-entries<min{lo}")
        if "max" in s:
            big = {f"k{i}": v0 for i in range(s["max"] + 1)}
            yield Mut(big, path, "items", f"{s['max'] + 1}-entries>max")
        key_shape = shape(s["key"]["shape"])
        for m in string_cases(key_shape, k0, path):
            if m.value in value:
                continue
            new = {m.value if k == k0 else k: v for k, v in value.items()}
            yield Mut(new, path, "key-" + m.kind, "key-" + m.desc, True, prefix=True)
        for m in mutations(s["value"]["shape"], v0, f"{path}[{k0}]"):
            new = dict(value)
            new[k0] = m.value
            yield Mut(new, m.field, m.kind, m.desc, m.boto_ok, m.prefix)
    elif t == "structure":
        members = s["members"]
        yield Mut("x", path, "type", "string-for-object", boto_ok=False)
        yield Mut([], path, "type", "array-for-object", boto_ok=False)
        if is_union(s):
            yield Mut({}, path, "union", "no-member", prefix=True)
            current = next(iter(value)) if value else next(iter(members))
            others = [m for m in members if m != current]
            if others:
                two = {current: value.get(current) or synth(members[current]["shape"])}
                two[others[0]] = synth(members[others[0]]["shape"])
                yield Mut(two, path, "union", f"two-members-{current}+{others[0]}", prefix=True)
            for m, spec in members.items():
                sub = value.get(m) if value.get(m) is not None else synth(spec["shape"])
                for mm in mutations(spec["shape"], sub, join(path, m)):
                    yield Mut({m: mm.value}, mm.field, mm.kind, mm.desc, mm.boto_ok, mm.prefix)
        else:
            yield from struct_member_mutations(shape_name, value, path)
    else:
        raise ValueError(t)


def struct_member_mutations(
    shape_name: str, value: dict, path: str, body_only: bool = False
) -> Iterator[Mut]:
    s = shape(shape_name)
    required = set(s.get("required", []))
    for m, spec in s["members"].items():
        if body_only and spec.get("location"):
            continue
        sub = value.get(m) if value.get(m) is not None else synth(spec["shape"])
        for mm in mutations(spec["shape"], sub, join(path, m)):
            new = dict(value)
            new[m] = mm.value
            yield Mut(new, mm.field, mm.kind, mm.desc, mm.boto_ok, mm.prefix)
        if m in required:
            new = {k: v for k, v in value.items() if k != m}
            yield Mut(new, join(path, m), "required", "missing")
            if not path:
                new = dict(value)
                new[m] = None
                yield Mut(new, join(path, m), "required", "null", boto_ok=False)


# --------------------------------------------------------------------------------------------
# Operations under test


@dataclass
class Case:
    op: str
    desc: str
    field: str
    kind: str
    body: Optional[dict]
    path_params: dict
    query: list
    boto_ok: bool = True
    prefix: bool = False
    alt_fields: tuple = ()
    target: str = "body"  # body | uri | query
    id: str = ""


@dataclass
class OpSpec:
    op: str
    body: Optional[dict] = None
    path_params: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    fresh: tuple = ()  # members replaced with fresh values at send time (names, clientToken)

    @property
    def http(self) -> dict:
        return OPERATIONS[self.op]["http"]

    @property
    def input_shape(self) -> str:
        return OPERATIONS[self.op]["input"]["shape"]


def _runtime_base() -> dict:
    # Imported lazily so that this module runs without boto3 (python model_cases.py).
    sys.path.insert(0, str(HERE))
    import support  # noqa: E402

    req = support.runtime_request("support_agent", "code", tags={"team": "support"})
    req["clientToken"] = EXAMPLES["ClientToken"]
    return req


def _browser_base() -> dict:
    import support

    req = support.browser_request("web_tools", tags={"team": "web"})
    req["clientToken"] = EXAMPLES["ClientToken"]
    return req


def _ci_base() -> dict:
    import support

    req = support.code_interpreter_request("data_tools", tags={"team": "data"}, mode="VPC")
    req["clientToken"] = EXAMPLES["ClientToken"]
    return req


def _update_base() -> dict:
    import support

    req = support.update_request(support.runtime_request("x", "container"))
    req["metadataConfiguration"] = {"requireMMDSV2": True}
    req["clientToken"] = EXAMPLES["ClientToken"]
    return req


def body_specs() -> list[OpSpec]:
    token = EXAMPLES["ClientToken"]
    return [
        OpSpec("CreateAgentRuntime", _runtime_base(), fresh=("agentRuntimeName", "clientToken")),
        OpSpec(
            "UpdateAgentRuntime",
            _update_base(),
            path_params={"agentRuntimeId": RUNTIME_ID},
            fresh=("clientToken",),
        ),
        OpSpec(
            "CreateAgentRuntimeEndpoint",
            {
                "name": "canary",
                "agentRuntimeVersion": "1",
                "description": "Canary traffic",
                "clientToken": token,
                "tags": {"stage": "canary"},
            },
            path_params={"agentRuntimeId": RUNTIME_ID},
            fresh=("name", "clientToken"),
        ),
        OpSpec(
            "UpdateAgentRuntimeEndpoint",
            {"agentRuntimeVersion": "1", "description": "Pinned", "clientToken": token},
            path_params={"agentRuntimeId": RUNTIME_ID, "endpointName": ENDPOINT_NAME},
            fresh=("clientToken",),
        ),
        OpSpec("CreateBrowser", _browser_base(), fresh=("name", "clientToken")),
        OpSpec("CreateCodeInterpreter", _ci_base(), fresh=("name", "clientToken")),
        OpSpec(
            "CreateBrowserProfile",
            {
                "name": "shopping_profile",
                "description": "Logged-in shopping session",
                "clientToken": token,
                "tags": {"team": "web"},
            },
            fresh=("name", "clientToken"),
        ),
        OpSpec(
            "TagResource",
            {"tags": {"owner": "e2e", "cost-center": "1234"}},
            path_params={"resourceArn": RUNTIME_ARN},
        ),
        OpSpec("ListBrowserProfiles", {"name": "shopping_profile"}, query={"maxResults": "10"}),
    ]


def uri_query_specs() -> list[OpSpec]:
    token = EXAMPLES["ClientToken"]
    return [
        OpSpec("GetAgentRuntime", None, {"agentRuntimeId": RUNTIME_ID}, {"version": "1"}),
        OpSpec(
            "DeleteAgentRuntime",
            None,
            {"agentRuntimeId": GHOST_RUNTIME_ID},
            {"clientToken": token},
            fresh=("clientToken",),
        ),
        OpSpec("ListAgentRuntimes", None, {}, {"maxResults": "10"}),
        OpSpec("ListAgentRuntimeVersions", None, {"agentRuntimeId": RUNTIME_ID}, {"maxResults": "5"}),
        OpSpec("ListAgentRuntimeEndpoints", None, {"agentRuntimeId": RUNTIME_ID}, {"maxResults": "5"}),
        OpSpec(
            "GetAgentRuntimeEndpoint",
            None,
            {"agentRuntimeId": RUNTIME_ID, "endpointName": ENDPOINT_NAME},
        ),
        OpSpec(
            "DeleteAgentRuntimeEndpoint",
            None,
            {"agentRuntimeId": GHOST_RUNTIME_ID, "endpointName": "ghost"},
            {"clientToken": token},
            fresh=("clientToken",),
        ),
        OpSpec("GetBrowser", None, {"browserId": "aws.browser.v1"}),
        OpSpec(
            "DeleteBrowser",
            None,
            {"browserId": GHOST_BROWSER_ID},
            {"clientToken": token},
            fresh=("clientToken",),
        ),
        OpSpec("ListBrowsers", None, {}, {"maxResults": "10", "type": "SYSTEM"}),
        OpSpec("GetCodeInterpreter", None, {"codeInterpreterId": "aws.codeinterpreter.v1"}),
        OpSpec(
            "DeleteCodeInterpreter",
            None,
            {"codeInterpreterId": GHOST_CI_ID},
            {"clientToken": token},
            fresh=("clientToken",),
        ),
        OpSpec("ListCodeInterpreters", None, {}, {"maxResults": "10", "type": "SYSTEM"}),
        OpSpec("GetBrowserProfile", None, {"profileId": GHOST_PROFILE_ID}),
        OpSpec(
            "DeleteBrowserProfile",
            None,
            {"profileId": GHOST_PROFILE_ID},
            {"clientToken": token},
            fresh=("clientToken",),
        ),
        OpSpec("ListTagsForResource", None, {"resourceArn": RUNTIME_ARN}),
        OpSpec("UntagResource", None, {"resourceArn": RUNTIME_ARN}, {"tagKeys": ["nothere"]}),
    ]


def _member_by_location(op: str) -> dict[tuple[str, str], tuple[str, dict]]:
    """(location, locationName) -> (member name, member spec) for uri/querystring members."""
    s = shape(OPERATIONS[op]["input"]["shape"])
    out = {}
    for m, spec in s["members"].items():
        loc = spec.get("location")
        if loc in ("uri", "querystring"):
            out[(loc, spec.get("locationName", m))] = (m, spec)
    return out


def _example_for_uri(op_spec: OpSpec, member: str, loc_name: str, loc: str, shape_name: str):
    if loc == "uri":
        v = op_spec.path_params.get(loc_name)
    else:
        v = op_spec.query.get(loc_name)
    if v is None or (isinstance(v, str) and v.startswith("<")):
        v = synth(shape_name)
    if isinstance(v, list):
        v = v[0]
    return v


def uri_query_cases(op_spec: OpSpec) -> Iterator[Case]:
    op = op_spec.op
    for (loc, loc_name), (member, spec) in _member_by_location(op).items():
        sname = spec["shape"]
        s = shape(sname)
        alt = (loc_name,) if loc_name != member else ()
        base_v = _example_for_uri(op_spec, member, loc_name, loc, sname)
        muts: list[Mut] = []
        if s["type"] == "string":
            muts = list(string_cases(s, base_v, member, uri=(loc == "uri")))
        elif s["type"] == "integer":
            for desc, v in (
                ("zero", "0"), ("above-max", str(s.get("max", 100) + 1)), ("negative", "-1"),
                ("not-a-number", "abc"), ("float", "1.5"), ("overflow", "99999999999999999999"),
            ):  # fmt: skip
                boto = desc in ("zero", "above-max", "negative")
                muts.append(
                    Mut(int(v) if boto else v, member, "range" if boto else "type", desc, boto)
                )
        elif s["type"] == "list":
            item_shape = shape(s["member"]["shape"])
            for m in string_cases(item_shape, "nothere", f"{member}[0]"):
                if m.value == "":
                    continue
                muts.append(Mut([m.value], m.field, m.kind, m.desc))
            if "max" in s:
                muts.append(
                    Mut([f"k{i}" for i in range(s["max"] + 1)], member, "items", "too-many")
                )
        for m in muts:
            path_params = dict(op_spec.path_params)
            query = dict(op_spec.query)
            if loc == "uri":
                path_params[loc_name] = str(m.value)
            else:
                query[loc_name] = m.value if isinstance(m.value, list) else str(m.value)
            yield Case(
                op, m.desc, m.field, m.kind, op_spec.body, path_params,
                _query_list(query), boto_ok=m.boto_ok, prefix=m.prefix,
                alt_fields=alt, target=loc if loc == "uri" else "query",
            )  # fmt: skip
        required = spec_is_required(op, member)
        if required and loc == "querystring":
            query = {k: v for k, v in op_spec.query.items() if k != loc_name}
            yield Case(
                op, "missing", member, "required", op_spec.body, dict(op_spec.path_params),
                _query_list(query), boto_ok=True, alt_fields=alt, target="query",
            )  # fmt: skip


def spec_is_required(op: str, member: str) -> bool:
    return member in shape(OPERATIONS[op]["input"]["shape"]).get("required", [])


def _query_list(query: dict) -> list:
    out = []
    for k, v in query.items():
        if isinstance(v, list):
            out += [(k, x) for x in v]
        else:
            out.append((k, v))
    return out


def body_cases(op_spec: OpSpec) -> Iterator[Case]:
    sname = op_spec.input_shape
    base = op_spec.body
    for m in struct_member_mutations(sname, base, "", body_only=True):
        yield Case(
            op_spec.op, m.desc, m.field, m.kind, m.value, dict(op_spec.path_params),
            _query_list(op_spec.query), boto_ok=m.boto_ok, prefix=m.prefix,
        )  # fmt: skip


def maximal_body(op_spec: OpSpec) -> dict:
    return fill(op_spec.input_shape, op_spec.body)


# --------------------------------------------------------------------------------------------
# Self-check and the public entry point


def _input_value(case: Case) -> dict:
    """The case as one JSON-ish input value for the oracle (uri/query members included)."""
    op = case.op
    s = shape(OPERATIONS[op]["input"]["shape"])
    val = dict(case.body or {})
    locs = _member_by_location(op)
    qd: dict = {}
    for k, v in case.query:
        qd.setdefault(k, []).append(v)
    for (loc, loc_name), (member, spec) in locs.items():
        mshape = shape(spec["shape"])
        if loc == "uri":
            v = case.path_params.get(loc_name)
            if isinstance(v, str) and v.startswith("<"):
                v = synth(spec["shape"])
            val[member] = v
        else:
            vs = qd.get(loc_name)
            if vs is None:
                continue
            if mshape["type"] == "list":
                val[member] = vs
            elif mshape["type"] == "integer":
                try:
                    val[member] = int(vs[0]) if isinstance(vs[0], str) else vs[0]
                except ValueError:
                    val[member] = vs[0]  # stays a string: a type violation
            else:
                val[member] = vs[0]
    _ = s
    return val


def _flagged(case: Case) -> bool:
    found = violations(OPERATIONS[case.op]["input"]["shape"], _input_value(case), "")
    wanted = (case.field,) + tuple(case.alt_fields)
    for path, _kind in found:
        if path in wanted:
            return True
        if case.prefix and any(path.startswith(w + ".") or path.startswith(w + "[") for w in wanted):
            return True
    return False


def _update_case_kept(c: Case) -> bool:
    """UpdateAgentRuntime shares every nested shape with CreateAgentRuntime (walked in full
    there): keep its top-level and first-level cases and everything under the Update-only
    metadataConfiguration."""
    depth = c.field.count(".") + c.field.count("[")
    return depth <= 1 or c.field.startswith("metadataConfiguration")


def _sanitize(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]+<>=:]", "_", s)


_CACHE: Optional[list[Case]] = None


def all_cases() -> list[Case]:
    global _CACHE
    if _CACHE is not None:
        return _CACHE
    cases: list[Case] = []
    for spec in body_specs() + uri_query_specs():
        for body in (spec.body, maximal_body(spec) if spec.body else None):
            probe = Case(spec.op, "base", "", "", body, spec.path_params, _query_list(spec.query))
            found = violations(spec.input_shape, _input_value(probe), "")
            assert not found, f"{spec.op}: the base request is invalid: {found}"
    for spec in body_specs():
        for c in body_cases(spec):
            if spec.op == "UpdateAgentRuntime" and not _update_case_kept(c):
                continue
            c.fresh = spec.fresh  # type: ignore[attr-defined]
            cases.append(c)
    for spec in uri_query_specs():
        for c in uri_query_cases(spec):
            c.fresh = spec.fresh  # type: ignore[attr-defined]
            cases.append(c)
    bad = [c for c in cases if not _flagged(c)]
    if bad:
        lines = [f"{c.op} {c.field} {c.kind} {c.desc}" for c in bad[:20]]
        raise AssertionError("generator produced valid 'bad' cases:\n" + "\n".join(lines))
    ids: Counter = Counter()
    for c in cases:
        base = _sanitize(f"{c.op}:{c.field}:{c.kind}:{c.desc}")[:180]
        ids[base] += 1
        c.id = base if ids[base] == 1 else f"{base}#{ids[base]}"
    _CACHE = cases
    return cases


def specs_by_op() -> dict[str, OpSpec]:
    return {s.op: s for s in body_specs() + uri_query_specs()}


def main(argv: list[str]) -> int:
    cases = all_cases()
    by_op = Counter(c.op for c in cases)
    by_kind = Counter(c.kind for c in cases)
    print(f"{len(cases)} cases ({sum(c.boto_ok for c in cases)} also sendable through boto3)")
    for op, n in sorted(by_op.items()):
        print(f"  {op:30} {n}")
    print("by kind: " + ", ".join(f"{k}={n}" for k, n in sorted(by_kind.items())))
    if "-v" in argv:
        for c in cases:
            shown = {k: v for k, v in (c.body or {}).items()}
            print(f"{c.id}\n    field={c.field} target={c.target} query={c.query} "
                  f"path={c.path_params}\n    body={json.dumps(shown)[:300]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
