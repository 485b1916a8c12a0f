"""The agent's /ws WebSocket through Hangar, and which request headers reach the agent.

WebSocket: `GET /runtimes/{arn}/ws` with SigV4 in the headers (as the SDK's
`generate_ws_connection` does) or presigned in the query (`generate_presigned_url`), routed by
the session id like `/invocations`. Headers: the contract's set plus the runtime's
`requestHeaderConfiguration.requestHeaderAllowlist`; everything else the caller sends stays out.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse

import pytest
import session_kit as kit
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

websockets = pytest.importorskip("websockets")

CREDENTIALS = Credentials("AKIDEXAMPLE", "x")


def ws_url(server_url: str, arn: str) -> str:
    return f"{server_url}/runtimes/{urllib.parse.quote(arn, safe='')}/ws"


def signed_headers(url: str, session_id: str) -> dict:
    request = AWSRequest(method="GET", url=url, headers={})
    SigV4Auth(CREDENTIALS, "bedrock-agentcore", "us-east-1").add_auth(request)
    headers = dict(request.headers)
    headers[kit.SESSION_HEADER] = session_id
    return headers


def presigned(url: str, session_id: str) -> str:
    query = urllib.parse.urlencode({kit.SESSION_HEADER: session_id})
    request = AWSRequest(method="GET", url=f"{url}?{query}", headers={})
    SigV4QueryAuth(CREDENTIALS, "bedrock-agentcore", "us-east-1", expires=300).add_auth(request)
    return request.url


async def exchange(url: str, messages: list[str], headers: dict | None = None) -> list[str]:
    replies = []
    async with websockets.connect(url.replace("http://", "ws://", 1), additional_headers=headers) as ws:
        for m in messages:
            await ws.send(m)
            replies.append(await asyncio.wait_for(ws.recv(), 30))
    return replies


def test_websocket_with_signed_headers_reaches_the_session(deploy, sessions_server):
    rt = deploy.create("echo")
    sid = kit.new_session_id("ws")
    url = ws_url(sessions_server.url, rt.arn)
    replies = asyncio.run(exchange(url, ["one", "two"], signed_headers(url, sid)))
    assert replies == [f"{sid}:one", f"{sid}:two"]
    # The WebSocket and /invocations share the session's sandbox.
    got = deploy.invoke(rt.arn, sid, {"prompt": "same sandbox?"})
    assert got["session_id"] == sid
    live = [s for s in kit.live_sessions(sessions_server.url) if s["runtimeSessionId"] == sid]
    assert len(live) == 1, live


def test_websocket_with_presigned_url(deploy, sessions_server):
    rt = deploy.create("echo")
    sid = kit.new_session_id("wsq")
    url = presigned(ws_url(sessions_server.url, rt.arn), sid)
    assert asyncio.run(exchange(url, ["hi"])) == [f"{sid}:hi"]


def test_websocket_refuses_unsigned_and_unknown_runtimes(deploy, sessions_server):
    rt = deploy.create("echo")
    url = ws_url(sessions_server.url, rt.arn)
    with pytest.raises(websockets.exceptions.InvalidStatus) as unsigned:
        asyncio.run(exchange(url, ["x"], {kit.SESSION_HEADER: kit.new_session_id("u")}))
    assert unsigned.value.response.status_code == 403
    missing = ws_url(sessions_server.url, rt.arn.replace(rt.rid, "nosuch-0123456789"))
    with pytest.raises(websockets.exceptions.InvalidStatus) as unknown:
        asyncio.run(exchange(missing, ["x"], signed_headers(missing, kit.new_session_id("n"))))
    assert unknown.value.response.status_code == 404


def test_only_allowlisted_headers_reach_the_agent(deploy):
    allowed = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant"
    rt = deploy.create(
        "echo",
        extra={"requestHeaderConfiguration": {"requestHeaderAllowlist": [allowed]}},
    )
    extra_headers = {
        allowed: "acme",
        "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Other": "not-listed",
    }

    def add_headers(request, **_):
        for k, v in extra_headers.items():
            request.headers[k] = v

    client = kit.data_client(deploy.server.url)
    client.meta.events.register("before-sign.bedrock-agentcore.InvokeAgentRuntime", add_headers)
    resp = deploy.invoke_raw(
        rt.arn, kit.new_session_id("hdr"), json.dumps({"p": 1}).encode(), client=client
    )
    got = json.loads(resp["response"].read())
    assert got["custom_headers"] == {allowed.lower(): "acme"}, got["custom_headers"]
    # The caller's SigV4 Authorization header is Hangar's, never the agent's.
    assert got["authorization_header"] is None
