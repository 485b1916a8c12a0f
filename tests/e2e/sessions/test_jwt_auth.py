"""Inbound authorization of runtimes with a real OpenID provider (`oidc-provider` on loopback).

A runtime with `authorizerConfiguration.customJWTAuthorizer` takes only bearer tokens, validated
against the provider's discovery document and JWKS; a runtime without one takes only SigV4 (here
in strict mode: `--credentials`). Tokens come from the provider's token endpoint
(client_credentials, the resource indicator is the audience) or, for the edge cases a token
endpoint will not produce (expired, wrong issuer, ...), are signed by the provider's own key
through its test route. Every rejection is also checked in Hangar's log for its reason, so a
test cannot pass because the token failed for some other reason.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import time
import urllib.parse

import pytest
import requests
import session_kit as kit
import support
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from oidc_kit import OidcProvider

websockets = pytest.importorskip("websockets")
from websockets.exceptions import InvalidStatus  # noqa: E402

AUD_A = "https://runtime-a.hangar.test"
AUD_B = "https://runtime-b.hangar.test"
SCOPES = ["agent:invoke", "other:read"]
GOOD_CLAIMS = {"department": "eng", "groups": ["staff", "admins"], "roles": ["invoker"]}
CLIENTS = [
    {"client_id": "client-a", "client_secret": "secret-a", "claims": GOOD_CLAIMS},
    {"client_id": "client-b", "client_secret": "secret-b", "claims": GOOD_CLAIMS},
    {"client_id": "client-sales", "client_secret": "secret-s",
     "claims": {**GOOD_CLAIMS, "department": "sales"}},
    {"client_id": "client-nogroup", "client_secret": "secret-g",
     "claims": {**GOOD_CLAIMS, "groups": ["contractors"]}},
    {"client_id": "client-noroles", "client_secret": "secret-r",
     "claims": {**GOOD_CLAIMS, "roles": ["viewer", "auditor"]}},
]  # fmt: skip
for c in CLIENTS:
    c["scope"] = " ".join(SCOPES)
SECRETS = {c["client_id"]: c["client_secret"] for c in CLIENTS}

ALLOWLIST = [
    "Authorization",
    "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant",
    "X-Tenant-Id",
    # Listed but never forwardable (spec §A.7): restricted, x-amz-*, other x-amzn-*.
    "Cookie",
    "X-Forwarded-For",
    "X-Amz-Foo",
    "X-Amzn-Other",
    "WorkloadAccessToken",
]


def authorizer(discovery_url: str, audience: str) -> dict:
    def rule(name, ty, op, value):
        return {
            "inboundTokenClaimName": name,
            "inboundTokenClaimValueType": ty,
            "authorizingClaimMatchValue": {"claimMatchOperator": op, "claimMatchValue": value},
        }

    return {
        "customJWTAuthorizer": {
            "discoveryUrl": discovery_url,
            "allowedAudience": [audience],
            "allowedClients": ["client-a", "client-sales", "client-nogroup", "client-noroles"],
            "allowedScopes": ["agent:invoke"],
            "customClaims": [
                rule("department", "STRING", "EQUALS", {"matchValueString": "eng"}),
                rule("groups", "STRING_ARRAY", "CONTAINS", {"matchValueString": "staff"}),
                rule("roles", "STRING_ARRAY", "CONTAINS_ANY",
                     {"matchValueStringList": ["invoker", "admin"]}),
            ],
        }
    }  # fmt: skip


@pytest.fixture(scope="module")
def oidc(tmp_path_factory):
    provider = OidcProvider(tmp_path_factory.mktemp("oidc"), CLIENTS, SCOPES)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def server(module_servers, s3, tmp_path_factory):
    creds = tmp_path_factory.mktemp("creds") / "credentials"
    creds.write_text(
        f"[default]\naws_access_key_id = {support.DEFAULT_KEY}\n"
        f"aws_secret_access_key = {support.DEFAULT_SECRET}\n"
    )
    return module_servers.start(
        "jwt",
        extra_args=["--s3-endpoint", s3.url, "--credentials", str(creds),
                    "--jwt-refetch-interval", "1"],
        env=kit.s3_env(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def dep(server, artifacts):
    return kit.Deployer(server, artifacts)


@pytest.fixture(scope="module")
def runtimes(dep, oidc):
    headers = {"requestHeaderConfiguration": {"requestHeaderAllowlist": ALLOWLIST}}
    a = dep.create("headers", wait="", extra={
        "authorizerConfiguration": authorizer(oidc.discovery_url, AUD_A), **headers})
    b = dep.create("headers", wait="", extra={
        "authorizerConfiguration": authorizer(oidc.discovery_url, AUD_B)})
    ws = dep.create("echo", wait="", extra={
        "authorizerConfiguration": authorizer(oidc.discovery_url, AUD_A)})
    iam = dep.create("headers", wait="", extra=headers)
    for rt in (a, b, ws, iam):
        dep.wait_runtime(rt.rid)
    return {"a": a, "b": b, "ws": ws, "iam": iam}  # fmt: skip


def invoke_url(server, arn: str, qualifier: str = "DEFAULT") -> str:
    return f"{server.url}/runtimes/{urllib.parse.quote(arn, safe='')}/invocations?qualifier={qualifier}"


def bearer_invoke(server, arn, token, sid=None, headers=None, payload=b'{"p": 1}'):
    h = {"Content-Type": "application/json", "Accept": "application/json",
         kit.SESSION_HEADER: sid or kit.new_session_id("jwt")}  # fmt: skip
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    return requests.post(invoke_url(server, arn), data=payload, headers=h, timeout=120)


def good_token(oidc, client="client-a", resource=AUD_A, scope="agent:invoke") -> str:
    return oidc.token(client, SECRETS[client], resource, scope)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj) -> str:
    return b64url(json.dumps(obj).encode())


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Log:
    """Hangar's stderr log from a mark on, for the reason a request was rejected."""

    def __init__(self, server) -> None:
        self.server = server
        self.mark = server.stderr_path.stat().st_size

    def wait_for(self, text: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            with open(self.server.stderr_path, "rb") as f:
                f.seek(self.mark)
                tail = f.read().decode(errors="replace")
            if text in tail:
                return tail
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the log since the request:\n{tail[-3000:]}")
            time.sleep(0.05)


def assert_unauthorized(resp, server, log: Log, reason: str, challenge: bool = True):
    assert resp.status_code == 401, (resp.status_code, resp.text[:500])
    assert resp.headers["x-amzn-ErrorType"] == "UnauthorizedException"
    body = resp.json()
    # The same message for every failure: nothing about why the token failed leaks.
    assert body == {"message": "JWT bearer token is invalid or not found for OAuth bearer token based access"}, body
    if challenge:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer resource_metadata="), resp.headers
    assert resp.headers.get("x-amzn-RequestId")
    log.wait_for(reason)


# -------------------------------------------------------------------------------------------
# accepted


def test_valid_token_is_accepted_and_the_allowlist_is_exact(server, runtimes, oidc, dep):
    rt = runtimes["a"]
    token = good_token(oidc)
    sid = kit.new_session_id("ok")
    caller_headers = {
        "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant": "acme",
        "x-tenant-id": "t-42",
        "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Unlisted": "no",
        "X-Junk": "no",
        "Cookie": "session=secret",
        "X-Forwarded-For": "10.0.0.1",
        "X-Amz-Foo": "no",
        "X-Amzn-Other": "no",
        "X-Amzn-Bedrock-AgentCore-Runtime-User-Id": "mallory",
        "WorkloadAccessToken": "forged",
        "User-Agent": "test-client/1.0",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    resp = bearer_invoke(server, rt.arn, token, sid, caller_headers)
    assert resp.status_code == 200, resp.text[:1000]
    assert resp.headers[kit.SESSION_HEADER] == sid
    got = resp.json()["headers"]
    # Exactly: the allowlisted ones, the contract's fixed set (as sent), the platform's own,
    # and this hop's Host / Content-Length.
    assert set(got) == {
        "authorization", "x-amzn-bedrock-agentcore-runtime-custom-tenant", "x-tenant-id",
        "content-type", "accept", "traceparent",
        kit.SESSION_HEADER.lower(), "x-amzn-bedrock-agentcore-runtime-request-id",
        "workloadaccesstoken", "host", "content-length",
    }, sorted(got)  # fmt: skip
    assert got["authorization"] == [f"Bearer {token}"]
    assert got["x-amzn-bedrock-agentcore-runtime-custom-tenant"] == ["acme"]
    assert got["x-tenant-id"] == ["t-42"]
    assert got[kit.SESSION_HEADER.lower()] == [sid]
    assert got["x-amzn-bedrock-agentcore-runtime-request-id"] == [resp.headers["x-amzn-RequestId"]]

    # The workload access token is Hangar's, signed, bound to the workload identity, the user
    # (the token's sub) and the caller (its client).
    wat = got["workloadaccesstoken"][0]
    assert wat != "forged"
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet

    status, jwks = kit.hangar_json(server.url, "/_hangar/workload-identity/jwks.json")
    assert status == 200 and len(jwks["keys"]) == 1, jwks
    decoded = jose_jwt.decode(wat, KeySet.import_key_set(jwks), algorithms=["ES256"])
    workload = dep.cp.get_agent_runtime(agentRuntimeId=rt.rid)["workloadIdentityDetails"][
        "workloadIdentityArn"
    ]
    c = decoded.claims
    assert decoded.header["alg"] == "ES256"
    assert c["aud"] == workload and c["workload_identity_arn"] == workload, c
    assert c["sub"] == claims_of(token)["sub"] == "client-a"
    assert c["caller"] == f"jwt:client-a@{oidc.issuer}"
    assert c["agent_runtime_arn"] == rt.arn
    assert c["iss"] == server.url
    assert 0 < c["exp"] - time.time() <= 15 * 60 + 5
    # Tampering with it breaks the signature.
    head, body, sig = wat.split(".")
    forged = f"{head}.{b64url_json({**c, 'sub': 'admin'})}.{sig}"
    with pytest.raises(Exception):
        jose_jwt.decode(forged, KeySet.import_key_set(jwks), algorithms=["ES256"])


def test_sigv4_runtime_headers_and_workload_token_for_a_user(server, runtimes, dep):
    rt = runtimes["iam"]
    sid = kit.new_session_id("iam")
    sent = {
        "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant": "acme",
        "X-Tenant-Id": "t-1",
        "X-Amzn-Bedrock-AgentCore-Runtime-User-Id": "user-7",
        "WorkloadAccessToken": "forged",
        "X-Junk": "no",
    }

    def add(request, **_):
        for k, v in sent.items():
            request.headers[k] = v

    client = kit.data_client(server.url)
    client.meta.events.register("before-sign.bedrock-agentcore.InvokeAgentRuntime", add)
    got = json.loads(dep.invoke_raw(rt.arn, sid, {"p": 1}, client=client)["response"].read())
    h = got["headers"]
    # Authorization is on the allowlist but this runtime is SigV4: never forwarded.
    assert "authorization" not in h and "x-junk" not in h, sorted(h)
    assert "x-amzn-bedrock-agentcore-runtime-user-id" not in h
    assert h["x-tenant-id"] == ["t-1"]
    wat = h["workloadaccesstoken"][0]
    assert wat != "forged"
    c = claims_of(wat)
    assert c["sub"] == "user-7" and c["caller"] == f"iam:{support.DEFAULT_KEY}", c
    # Plain SigV4 without a user: no workload access token at all.
    got = dep.invoke(rt.arn, kit.new_session_id("iam2"), {"p": 2})
    assert "workloadaccesstoken" not in got["headers"]


# -------------------------------------------------------------------------------------------
# the rejection matrix


def test_rejection_matrix(server, runtimes, oidc):
    rt = runtimes["a"]
    now = int(time.time())
    base = claims_of(good_token(oidc))
    jwks = oidc.jwks()
    kid = jwks["keys"][0]["kid"]

    def signed(**changes):
        claims = {**base, **changes}
        return oidc.sign({k: v for k, v in claims.items() if v is not None})

    good = good_token(oidc)
    head, body, sig = good.split(".")

    # HS256 "signed" with the provider's public key, as PEM and as the raw modulus.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    jwk = jwks["keys"][0]
    n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=="), "big")
    e = int.from_bytes(base64.urlsafe_b64decode(jwk["e"] + "=="), "big")
    pem = (
        RSAPublicNumbers(e, n)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def hs256(secret: bytes) -> str:
        signing_input = f"{b64url_json({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'})}.{body}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    # Another RSA key signing with the provider's kid.
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives import hashes

    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_input = f"{head}.{body}"
    forged_sig = attacker.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())

    flipped = bytearray(base64.urlsafe_b64decode(sig + "=="))
    flipped[20] ^= 0x01

    cases = {
        "expired": (signed(exp=now - 120, iat=now - 420), "the token expired"),
        "not yet valid": (signed(nbf=now + 600), "not valid yet"),
        "issued in the future": (signed(iat=now + 600), "issued in the future"),
        "no exp": (signed(exp=None), "no numeric exp"),
        "wrong issuer": (signed(iss="http://127.0.0.1:1"), "is not the discovery document's issuer"),
        "wrong audience": (good_token(oidc, resource="https://elsewhere.test"), "allowedAudience"),
        "another runtime's audience": (good_token(oidc, resource=AUD_B), "allowedAudience"),
        "wrong client": (good_token(oidc, client="client-b"), 'client_id Some("client-b")'),
        "missing scope": (good_token(oidc, scope="other:read"), "allowedScopes"),
        "EQUALS fails": (good_token(oidc, client="client-sales"), 'rule on "department"'),
        "CONTAINS fails": (good_token(oidc, client="client-nogroup"), 'rule on "groups"'),
        "CONTAINS_ANY fails": (good_token(oidc, client="client-noroles"), 'rule on "roles"'),
        "alg none": (f"{b64url_json({'alg': 'none', 'kid': kid})}.{body}.", "not a compact JWS"),
        "alg none, signature kept": (f"{b64url_json({'alg': 'none', 'kid': kid})}.{body}.{sig}",
                                     "algorithm none is not accepted"),
        "HS256 with the public key (PEM)": (hs256(pem), "algorithm HS256 is not accepted"),
        "HS256 with the public key (modulus)": (hs256(n.to_bytes((n.bit_length() + 7) // 8, "big")),
                                                "algorithm HS256 is not accepted"),
        "unknown kid": (oidc.sign(base, {"kid": "no-such-kid"}), "no key no-such-kid"),
        "no kid": (f"{b64url_json({'alg': 'RS256'})}.{body}.{sig}", "has no kid"),
        "tampered payload": (f"{head}.{b64url_json({**base, 'sub': 'admin'})}.{sig}",
                             "signature does not verify"),
        "tampered signature": (f"{head}.{body}.{b64url(bytes(flipped))}", "signature does not verify"),
        "signed by another key": (f"{signing_input}.{b64url(forged_sig)}", "signature does not verify"),
        "garbage": ("not-a-jwt", "not a compact JWS"),
    }  # fmt: skip
    assert len(cases) >= 20
    # The control: the same provider, runtime and request with the good token pass.
    ok = bearer_invoke(server, rt.arn, good)
    assert ok.status_code == 200, ok.text[:500]
    for name, (token, reason) in cases.items():
        log = Log(server)
        resp = bearer_invoke(server, rt.arn, token)
        try:
            assert_unauthorized(resp, server, log, reason)
            assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
        except AssertionError as e:
            raise AssertionError(f"case {name!r}: {e}") from e


def test_no_token_gets_the_challenge(server, runtimes, oidc):
    rt = runtimes["a"]
    resp = bearer_invoke(server, rt.arn, None)
    assert resp.status_code == 401, resp.text
    assert resp.headers["x-amzn-ErrorType"] == "UnauthorizedException"
    escaped = urllib.parse.quote(rt.arn, safe="")
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="http://127.0.0.1:{server.port}/runtimes/{escaped}'
        f'/invocations/.well-known/oauth-protected-resource?qualifier=DEFAULT"'
    )
    # The challenge's metadata document names the provider to get a token from (no auth).
    url = resp.headers["WWW-Authenticate"].split('"')[1]
    prm = requests.get(url, timeout=30)
    assert prm.status_code == 200, prm.text
    assert prm.json() == {
        "resource": f"http://127.0.0.1:{server.port}/runtimes/{escaped}/invocations?qualifier=DEFAULT",
        "authorization_servers": [oidc.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["agent:invoke"],
    }
    # SigV4 runtimes have none.
    iam = urllib.parse.quote(runtimes["iam"].arn, safe="")
    r = requests.get(f"{server.url}/runtimes/{iam}/invocations/.well-known/oauth-protected-resource", timeout=30)
    assert r.status_code == 404, r.text


def test_sigv4_on_a_jwt_runtime_and_bearer_on_a_sigv4_runtime(server, runtimes, oidc, dep):
    mismatch = "Authorization method mismatch. The agent is configured for a different authorization method than what was used in your request. (OAuth or SigV4)"
    e = kit.client_error(dep.invoke_raw, runtimes["a"].arn, kit.new_session_id("m"), {"p": 1})
    assert kit.error_info(e)[:2] == ("AccessDeniedException", 403), e.response
    assert e.response["Error"]["Message"] == mismatch
    assert "WWW-Authenticate" not in e.response["ResponseMetadata"]["HTTPHeaders"]
    resp = bearer_invoke(server, runtimes["iam"].arn, good_token(oidc))
    assert resp.status_code == 403 and resp.json()["message"] == mismatch, resp.text
    # Unsigned on a SigV4 runtime: 403, no challenge.
    resp = bearer_invoke(server, runtimes["iam"].arn, None)
    assert resp.status_code == 403, resp.text
    assert resp.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert "WWW-Authenticate" not in resp.headers


def test_every_data_plane_route_of_a_jwt_runtime_authenticates(server, runtimes, oidc, dep):
    rt = runtimes["ws"]
    arn_q = urllib.parse.quote(rt.arn, safe="")
    token = good_token(oidc)
    bad = good_token(oidc, client="client-b")
    sid = kit.new_session_id("routes")

    # Invoke, then stop the session with the same token.
    assert bearer_invoke(server, rt.arn, token, sid).status_code == 200
    stop = f"{server.url}/runtimes/{arn_q}/stopruntimesession?qualifier=DEFAULT"
    for t, want in ((None, 401), (bad, 401)):
        h = {kit.SESSION_HEADER: sid, "Content-Type": "application/json"}
        if t:
            h["Authorization"] = f"Bearer {t}"
        r = requests.post(stop, headers=h, data=b"{}", timeout=30)
        assert r.status_code == want, (t is None, r.status_code, r.text)
    r = requests.post(stop, data=b"{}", timeout=30, headers={
        kit.SESSION_HEADER: sid, "Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers[kit.SESSION_HEADER] == sid
    e = kit.client_error(dep.stop, rt.arn, sid)  # SigV4
    assert kit.error_info(e)[:2] == ("AccessDeniedException", 403)

    # Agent card and commands: authentication runs before the operation.
    card = f"{server.url}/runtimes/{arn_q}/invocations/.well-known/agent-card.json"
    commands = f"{server.url}/runtimes/{arn_q}/commands"
    for method, url in (("GET", card), ("POST", commands)):
        r = requests.request(method, url, timeout=30)
        assert r.status_code == 401, (url, r.status_code, r.text)
        r = requests.request(method, url, headers={"Authorization": f"Bearer {bad}"}, timeout=30)
        assert r.status_code == 401, (url, r.status_code, r.text)
        r = requests.request(method, url, timeout=30, data=b'{"command": "true"}',
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
        assert r.status_code not in (401, 403), (url, r.status_code, r.text)

    # WebSocket: bearer header, browser subprotocol; SigV4 (header or presigned) refused.
    ws = f"ws://127.0.0.1:{server.port}/runtimes/{arn_q}/ws"
    wsid = kit.new_session_id("ws")

    async def exchange(url, headers=None, subprotocols=None):
        async with websockets.connect(url, additional_headers=headers, subprotocols=subprotocols) as c:
            await c.send("hi")
            return await asyncio.wait_for(c.recv(), 30)

    got = asyncio.run(exchange(ws, {"Authorization": f"Bearer {token}", kit.SESSION_HEADER: wsid}))
    assert got == f"{wsid}:hi"
    proto = f"base64UrlBearerAuthorization.{b64url(token.encode())}"
    got = asyncio.run(exchange(f"{ws}?{urllib.parse.urlencode({kit.SESSION_HEADER: wsid})}",
                               subprotocols=[proto, "base64UrlBearerAuthorization"]))  # fmt: skip
    assert got == f"{wsid}:hi"
    for headers in ({kit.SESSION_HEADER: wsid}, {"Authorization": f"Bearer {bad}"}):
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(exchange(ws, headers))
        assert refused.value.response.status_code == 401
    creds = Credentials(support.DEFAULT_KEY, support.DEFAULT_SECRET)
    http_ws = ws.replace("ws://", "http://", 1)
    req = AWSRequest(method="GET", url=f"{http_ws}?{urllib.parse.urlencode({kit.SESSION_HEADER: wsid})}")
    SigV4QueryAuth(creds, "bedrock-agentcore", "us-east-1", expires=300).add_auth(req)
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(exchange(req.url.replace("http://", "ws://", 1)))
    assert refused.value.response.status_code == 403


def test_websocket_gets_the_allowlisted_headers_and_a_workload_token(server, runtimes, oidc):
    rt = runtimes["a"]
    token = good_token(oidc)
    sid = kit.new_session_id("wsh")
    url = f"ws://127.0.0.1:{server.port}/runtimes/{urllib.parse.quote(rt.arn, safe='')}/ws"
    sent = {"Authorization": f"Bearer {token}", kit.SESSION_HEADER: sid, "X-Tenant-Id": "t-9",
            "X-Junk": "no", "WorkloadAccessToken": "forged", "Cookie": "a=b", "X-Amz-Foo": "no"}  # fmt: skip

    async def first():
        async with websockets.connect(url, additional_headers=sent) as c:
            headers = json.loads(await asyncio.wait_for(c.recv(), 60))
            await c.send("again")
            return headers, await asyncio.wait_for(c.recv(), 30)

    got, echo = asyncio.run(first())
    assert echo == "again"
    assert got["x-tenant-id"] == ["t-9"], got
    assert got["authorization"] == [f"Bearer {token}"]
    assert got[kit.SESSION_HEADER.lower()] == [sid]
    for dropped in ("x-junk", "cookie", "x-amz-foo"):
        assert dropped not in got, (dropped, sorted(got))
    wat = got["workloadaccesstoken"]
    assert len(wat) == 1 and wat[0] != "forged"
    assert claims_of(wat[0])["sub"] == "client-a"


# -------------------------------------------------------------------------------------------
# strict SigV4 on the invocation path


def test_strict_sigv4_on_invocations(server, runtimes, dep, monkeypatch):
    rt = runtimes["iam"]
    url = invoke_url(server, rt.arn)
    sid = kit.new_session_id("sig")
    payload = b'{"p": 1}'

    def signed(secret=support.DEFAULT_SECRET, when=None, body=payload, headers=None):
        req = AWSRequest(method="POST", url=url, data=body, headers={
            kit.SESSION_HEADER: sid, "Content-Type": "application/json", **(headers or {})})  # fmt: skip
        if when is not None:
            monkeypatch.setattr("botocore.auth.get_current_datetime", lambda *a, **k: when)
        SigV4Auth(Credentials(support.DEFAULT_KEY, secret), "bedrock-agentcore", "us-east-1").add_auth(req)
        monkeypatch.undo()
        return req

    def send(req, body=None, headers=None):
        h = dict(req.headers.items())
        h.update(headers or {})
        return requests.post(req.url, data=req.body if body is None else body, headers=h, timeout=60)

    ok = send(signed())
    assert ok.status_code == 200, ok.text[:500]
    dep.touched[(rt.arn, sid)] = "DEFAULT"
    utc = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    cases = {
        "wrong secret": (send(signed(secret="wrong")), "InvalidSignatureException"),
        "stale date": (send(signed(when=utc - datetime.timedelta(minutes=20))), "InvalidSignatureException"),
        "future date": (send(signed(when=utc + datetime.timedelta(minutes=20))), "InvalidSignatureException"),
        "tampered body": (send(signed(), body=b'{"p": 2}'), "InvalidSignatureException"),
        "tampered signed header": (send(signed(), headers={kit.SESSION_HEADER: kit.new_session_id("x")}),
                                   "InvalidSignatureException"),
        "unsigned": (requests.post(url, data=payload, timeout=60), "MissingAuthenticationTokenException"),
    }  # fmt: skip
    for name, (resp, code) in cases.items():
        assert resp.status_code == 403, (name, resp.status_code, resp.text[:300])
        assert resp.headers["x-amzn-ErrorType"] == code, (name, resp.headers["x-amzn-ErrorType"])

    # Presigned (WebSocket clients): verified too; tampering with a signed parameter fails.
    creds = Credentials(support.DEFAULT_KEY, support.DEFAULT_SECRET)
    ws = f"http://127.0.0.1:{server.port}/runtimes/{urllib.parse.quote(rt.arn, safe='')}/ws"
    wsid = kit.new_session_id("wsq")
    req = AWSRequest(method="GET", url=f"{ws}?{urllib.parse.urlencode({kit.SESSION_HEADER: wsid})}")
    SigV4QueryAuth(creds, "bedrock-agentcore", "us-east-1", expires=300).add_auth(req)

    async def exchange(u):
        async with websockets.connect(u.replace("http://", "ws://", 1)) as c:
            await c.send("x")
            return await asyncio.wait_for(c.recv(), 60)

    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(exchange(req.url.replace(wsid, kit.new_session_id("other"))))
    assert refused.value.response.status_code == 403
    bad = AWSRequest(method="GET", url=req.url.split("?")[0] + f"?{urllib.parse.urlencode({kit.SESSION_HEADER: wsid})}")
    SigV4QueryAuth(Credentials(support.DEFAULT_KEY, "wrong"), "bedrock-agentcore", "us-east-1", expires=300).add_auth(bad)
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(exchange(bad.url))
    assert refused.value.response.status_code == 403


# -------------------------------------------------------------------------------------------
# the provider's keys change, the provider goes away (these tests change the provider: last)


def test_key_rotation_is_picked_up_without_restart(server, runtimes, oidc):
    rt = runtimes["a"]
    old = good_token(oidc)
    assert bearer_invoke(server, rt.arn, old).status_code == 200
    new_kid = oidc.rotate(keep_old=False)
    new = good_token(oidc)
    assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "==")).get("kid") == new_kid
    time.sleep(1.2)  # the server's --jwt-refetch-interval
    resp = bearer_invoke(server, rt.arn, new)
    assert resp.status_code == 200, resp.text
    # The rotated-out key is gone from the JWKS Hangar now holds.
    log = Log(server)
    assert_unauthorized(bearer_invoke(server, rt.arn, old), server, log, "no key")


def test_provider_outage_fails_closed_and_recovers(server, runtimes, oidc):
    rt = runtimes["a"]
    known = good_token(oidc)
    assert bearer_invoke(server, rt.arn, known).status_code == 200
    # A key Hangar has not seen yet, then the provider goes down.
    oidc.rotate(keep_old=True)
    unseen = good_token(oidc)
    oidc.stop()
    try:
        time.sleep(1.2)
        log = Log(server)
        resp = bearer_invoke(server, rt.arn, unseen)
        assert resp.status_code == 503, resp.text
        assert resp.headers["x-amzn-ErrorType"] == "ServiceUnavailableException"
        assert "identity provider" in resp.json()["message"]
        log.wait_for("fetching the identity provider's keys failed")
        # Repeated calls during the outage fail fast, without a fetch each.
        started = time.monotonic()
        for _ in range(5):
            assert bearer_invoke(server, rt.arn, unseen).status_code == 503
        assert time.monotonic() - started < 5
        # Keys already fetched keep working from the cache.
        assert bearer_invoke(server, rt.arn, known).status_code == 200
    finally:
        oidc.start()
    time.sleep(1.2)
    resp = bearer_invoke(server, rt.arn, unseen)
    assert resp.status_code == 200, resp.text
