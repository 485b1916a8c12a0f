"""MCP, A2A and AG-UI runtimes through Hangar, with clients and servers nobody here wrote.

Servers: the MCP SDK's FastMCP (stateless and stateful Streamable HTTP), `a2a-sdk` behind the
`bedrock-agentcore` A2A helper, an AG-UI agent on the `bedrock-agentcore` AG-UI helper, each
vendored into a code artifact. Clients: the MCP SDK's Streamable HTTP client and the A2A SDK's
client pointed at Hangar's invocation URL (requests signed with SigV4, as AWS's samples do),
boto3's `invoke_agent_runtime` / `get_agent_card`, and a WebSocket client. Plus what must be
refused: the wrong protocol for a request, an unknown MCP session, an oversize payload, an agent
answering garbage, a WebSocket closed mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid

import pytest

import protocol_kit as pk
import session_kit as kit
import support
from support import expect_error

mcp_client = pytest.importorskip("mcp")
websockets = pytest.importorskip("websockets")

from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

MCP = {"protocolConfiguration": {"serverProtocol": "MCP"}}
A2A = {"protocolConfiguration": {"serverProtocol": "A2A"}}
AGUI = {"protocolConfiguration": {"serverProtocol": "AGUI"}}


def tool_json(result) -> dict:
    assert not result.isError, result
    if result.structuredContent is not None:
        sc = result.structuredContent
        return sc.get("result", sc) if isinstance(sc, dict) and set(sc) == {"result"} else sc
    return json.loads(result.content[0].text)


async def mcp_session_run(url: str, body):
    """Runs `body(session, get_session_id)` in an initialized MCP client session."""
    async with pk.signed_client() as http:
        async with streamable_http_client(url, http_client=http) as (read, write, get_id):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await body(session, get_id)


# ---------------------------------------------------------------------------------------------
# MCP


def test_mcp_stateless_round_trips_with_the_sdk_client(deploy, sessions_server):
    rt = deploy.create("mcp_stateless", extra=MCP)
    url = pk.invocation_url(sessions_server.url, rt.arn)
    logs: list = []

    async def body(session, get_id):
        tools = await session.list_tools()
        added = await session.call_tool("add", {"a": 2, "b": 40})
        first = await session.call_tool("whoami", {})
        second = await session.call_tool("whoami", {})
        countdown = await session.call_tool("countdown", {"n": 3})
        return tools, added, first, second, countdown, get_id()

    async def run():
        async def on_log(params):
            logs.append((time.time(), params.data))

        async with pk.signed_client() as http:
            async with streamable_http_client(url, http_client=http) as (read, write, get_id):
                async with ClientSession(read, write, logging_callback=on_log) as session:
                    await session.initialize()
                    return await body(session, get_id)

    tools, added, first, second, countdown, mcp_id = asyncio.run(run())
    pk.track(deploy, rt.arn, mcp_id)
    assert {t.name for t in tools.tools} >= {"add", "whoami", "countdown"}
    assert tool_json(added) == 42
    # Stateless server: the platform generated the session id, handed it to the server and to
    # the client, and routes by it.
    assert mcp_id and len(mcp_id) >= 33, mcp_id
    who1, who2 = tool_json(first), tool_json(second)
    assert who1["mcp_session_id"] == mcp_id and who1["runtime_session_id"] == mcp_id, who1
    assert who1["pid"] == who2["pid"], "both calls reached the same sandbox"
    assert [s["runtimeSessionId"] for s in pk.sessions_of(sessions_server.url, rt.rid)] == [mcp_id]
    # The SSE answer streamed: the progress notifications came 0.2 s apart, before the result.
    assert countdown.content[0].text == "liftoff"
    assert [d for _, d in logs] == ["tick 3", "tick 2", "tick 1"], logs
    assert logs[-1][0] - logs[0][0] >= 0.3, logs


def test_mcp_stateful_server_ids_are_honoured_and_sticky(deploy, sessions_server):
    rt = deploy.create("mcp_stateful", extra=MCP)
    url = pk.invocation_url(sessions_server.url, rt.arn)

    async def bumps(session, get_id):
        counts = [tool_json(await session.call_tool("bump", {})) for _ in range(3)]
        return counts, get_id()

    async def both():
        return await asyncio.gather(mcp_session_run(url, bumps), mcp_session_run(url, bumps))

    (a, a_id), (b, b_id) = asyncio.run(both())
    # The server's own ids (uuid hex, 32 characters: not ids the platform would make) reach the
    # clients and route every later request back to the process that issued them.
    for counts, mcp_id in ((a, a_id), (b, b_id)):
        assert len(mcp_id) == 32 and "-" not in mcp_id, mcp_id
        assert [c["count"] for c in counts] == [1, 2, 3], counts
        assert {c["mcp_session_id"] for c in counts} == {mcp_id}
        assert len({c["pid"] for c in counts}) == 1
    assert a_id != b_id
    live = pk.sessions_of(sessions_server.url, rt.rid)
    assert len(live) == 2, live  # one sandbox per MCP session
    for s in live:
        pk.track(deploy, rt.arn, s["runtimeSessionId"])


def test_mcp_unknown_session_is_an_aws_error_and_the_server_goes_on(deploy, sessions_server):
    rt = deploy.create("mcp_stateful", extra=MCP)
    url = pk.invocation_url(sessions_server.url, rt.arn)
    unknown = uuid.uuid4().hex

    async def call_unknown():
        async with pk.signed_client() as http:
            return await http.post(
                url,
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                    "Mcp-Session-Id": unknown,
                },
                content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            )

    resp = asyncio.run(call_unknown())
    assert resp.status_code == 424, resp.text
    assert resp.headers["x-amzn-ErrorType"].startswith("RuntimeClientError"), resp.headers
    assert "x-amzn-RequestId" in resp.headers
    assert "404" in resp.json()["message"], resp.text
    for s in pk.sessions_of(sessions_server.url, rt.rid):
        pk.track(deploy, rt.arn, s["runtimeSessionId"])

    async def bump(session, get_id):
        return tool_json(await session.call_tool("bump", {})), get_id()

    got, mcp_id = asyncio.run(mcp_session_run(url, bump))
    assert got["count"] == 1 and got["mcp_session_id"] == mcp_id
    for s in pk.sessions_of(sessions_server.url, rt.rid):
        pk.track(deploy, rt.arn, s["runtimeSessionId"])


def test_mcp_through_boto3_carries_the_mcp_headers(deploy, sessions_server):
    rt = deploy.create("mcp_stateless", extra=MCP)
    sid = kit.new_session_id("mcpb")
    accept = "application/json, text/event-stream"
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "boto3", "version": "1"},
        },
    }
    first = deploy.invoke_raw(rt.arn, sid, init, accept=accept)
    first_body = first["response"].read().decode()
    assert first["statusCode"] == 200, first_body
    # No Mcp-Session-Id yet: the runtime session is the MCP session, and the client learns it.
    assert first["mcpSessionId"] == sid, first
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    resp = deploy.dp.invoke_agent_runtime(
        agentRuntimeArn=rt.arn,
        runtimeSessionId=kit.new_session_id("other"),  # what the SDK fills in: the MCP id wins
        mcpSessionId=sid,
        mcpProtocolVersion="2025-06-18",
        mcpMethod="tools/call",
        mcpName="whoami",
        contentType="application/json",
        accept=accept,
        payload=json.dumps(call).encode(),
    )
    assert resp["contentType"].startswith("text/event-stream"), resp["contentType"]
    assert resp["mcpSessionId"] == sid
    events = [d for _, d in kit.read_sse(resp["response"])]
    result = events[-1]["result"]
    who = result.get("structuredContent") or json.loads(result["content"][0]["text"])
    assert who["mcp_session_id"] == sid and who["runtime_session_id"] == sid, who
    assert [s["runtimeSessionId"] for s in pk.sessions_of(sessions_server.url, rt.rid)] == [sid]


def test_mcp_custom_port_and_path(deploy, sessions_server):
    config = {"protocolConfiguration": {"serverProtocol": "MCP", "port": 9100, "path": "/custom/mcp"}}
    rt = deploy.create("mcp_stateless", extra=config, env={"MCP_PORT": "9100", "MCP_PATH": "/custom/mcp"})
    url = pk.invocation_url(sessions_server.url, rt.arn)

    async def add(session, get_id):
        return tool_json(await session.call_tool("add", {"a": 1, "b": 2})), get_id()

    got, mcp_id = asyncio.run(mcp_session_run(url, add))
    pk.track(deploy, rt.arn, mcp_id)
    assert got == 3


# ---------------------------------------------------------------------------------------------
# A2A


def a2a_client(card: dict, sid: str, streaming: bool):
    from a2a.client import ClientConfig, ClientFactory
    from a2a.types import AgentCard

    http = pk.signed_client({kit.SESSION_HEADER: sid})
    client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(
        AgentCard.model_validate(card)
    )
    return client, http


def user_message(text: str):
    from a2a.types import Message, Part, Role, TextPart

    return Message(role=Role.user, parts=[Part(root=TextPart(text=text))], message_id=uuid.uuid4().hex)


def test_a2a_agent_card_message_send_and_streaming(deploy, sessions_server):
    rt = deploy.create("a2a_echo", extra=A2A)
    sid = kit.new_session_id("a2a")
    pk.track(deploy, rt.arn, sid)
    resp = deploy.dp.get_agent_card(agentRuntimeArn=rt.arn, runtimeSessionId=sid)
    assert resp["runtimeSessionId"] == sid
    card = resp["agentCard"]
    assert card["name"] == "hangar-e2e-a2a-echo" and card["capabilities"]["streaming"] is True, card
    # The helper advertises AGENTCORE_RUNTIME_URL: this server's invocation URL of the runtime.
    assert card["url"] == f"{sessions_server.url}{pk.runtime_path(rt.arn)}/invocations/", card["url"]

    async def run():
        from a2a.types import Message, TaskState

        client, http = a2a_client(card, sid, streaming=False)
        async with http:
            answers = [e async for e in client.send_message(user_message("hello"))]
        client, http = a2a_client(card, sid, streaming=True)
        updates = []
        async with http:
            async for event in client.send_message(user_message("stream please")):
                task, update = event
                updates.append((time.time(), task.status.state, update))
        return answers, updates, Message, TaskState

    answers, updates, Message, TaskState = asyncio.run(run())
    assert len(answers) == 1 and isinstance(answers[0], Message), answers
    text = answers[0].parts[0].root.text
    assert text.startswith("echo: hello (pid "), text
    states = [s for _, s, _ in updates]
    assert states.count(TaskState.working) >= 3 and states[-1] == TaskState.completed, states
    working = [t for t, s, _ in updates if s == TaskState.working]
    assert working[-1] - working[0] >= 0.4, "status updates arrived as they were made"
    # Everything, card included, ran in the one session the header named.
    assert [s["runtimeSessionId"] for s in pk.sessions_of(sessions_server.url, rt.rid)] == [sid]


def test_a2a_json_rpc_through_boto3_on_a_custom_port(deploy, sessions_server):
    config = {"protocolConfiguration": {"serverProtocol": "A2A", "port": 9500}}
    rt = deploy.create("a2a_echo", extra=config, env={"A2A_PORT": "9500"})
    sid = kit.new_session_id("a2ab")
    request = {
        "jsonrpc": "2.0",
        "id": "req-001",
        "method": "message/send",
        "params": {"message": {"role": "user", "parts": [{"kind": "text", "text": "hi"}], "messageId": "m-1"}},
    }
    got = deploy.invoke(rt.arn, sid, request)
    assert got["id"] == "req-001" and got["result"]["parts"][0]["text"].startswith("echo: hi"), got
    card = deploy.dp.get_agent_card(agentRuntimeArn=rt.arn, runtimeSessionId=sid)["agentCard"]
    assert card["name"] == "hangar-e2e-a2a-echo"


# ---------------------------------------------------------------------------------------------
# AG-UI and WebSockets


def run_input(text: str) -> dict:
    return {
        "threadId": "t-1",
        "runId": "r-1",
        "messages": [{"id": "m-1", "role": "user", "content": text}],
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": {},
    }


def test_agui_events_arrive_incrementally_over_sse(deploy, sessions_server):
    rt = deploy.create("agui_events", extra=AGUI)
    sid = kit.new_session_id("agui")
    resp = deploy.invoke_raw(rt.arn, sid, run_input("one two three"), accept="text/event-stream")
    assert resp["contentType"].startswith("text/event-stream"), resp["contentType"]
    events = kit.read_sse(resp["response"])
    types = [e["type"] for _, e in events]
    assert types[:2] == ["RUN_STARTED", "TEXT_MESSAGE_START"], types
    assert types[-2:] == ["TEXT_MESSAGE_END", "RUN_FINISHED"], types
    deltas = [e["delta"] for _, e in events if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert deltas[:3] == ["one", "two", "three"] and deltas[3].startswith("pid="), deltas
    content_times = [t for t, e in events if e["type"] == "TEXT_MESSAGE_CONTENT"]
    assert content_times[-1] - content_times[0] >= 0.6, "events were passed on as produced"


def ws_event(text: str) -> dict:
    """One AG-UI event of a WebSocket frame (the helper frames each as its SSE encoding)."""
    text = text.strip()
    return json.loads(text[len("data:") :] if text.startswith("data:") else text)


def ws_url(server_url: str, arn: str) -> str:
    return f"{server_url}{pk.runtime_path(arn)}/ws".replace("http://", "ws://", 1)


def ws_headers(url: str, sid: str) -> dict:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="GET", url=url.replace("ws://", "http://", 1), headers={})
    SigV4Auth(pk.CREDENTIALS, "bedrock-agentcore", support.REGION).add_auth(request)
    headers = dict(request.headers)
    headers[kit.SESSION_HEADER] = sid
    return headers


def test_agui_over_websocket_and_a_close_mid_stream(deploy, sessions_server):
    rt = deploy.create("agui_events", extra=AGUI)
    sid = kit.new_session_id("aguiws")
    pk.track(deploy, rt.arn, sid)
    url = ws_url(sessions_server.url, rt.arn)

    async def full_run():
        got = []
        async with websockets.connect(url, additional_headers=ws_headers(url, sid)) as ws:
            await ws.send(json.dumps(run_input("alpha beta")))
            try:
                while True:
                    got.append((time.time(), ws_event(await asyncio.wait_for(ws.recv(), 30))))
            except websockets.exceptions.ConnectionClosedOK:
                pass
        return got

    async def abandon():
        ws = await websockets.connect(url, additional_headers=ws_headers(url, sid))
        await ws.send(json.dumps(run_input("a b c d e f g h")))
        first = ws_event(await asyncio.wait_for(ws.recv(), 30))
        ws.transport.abort()  # gone without a close frame, mid-stream
        return first

    events = asyncio.run(full_run())
    types = [e["type"] for _, e in events]
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED", types
    assert [e["delta"] for _, e in events if e["type"] == "TEXT_MESSAGE_CONTENT"][:2] == ["alpha", "beta"]
    assert events[-1][0] - events[0][0] >= 0.6
    assert asyncio.run(abandon())["type"] == "RUN_STARTED"
    # The session and the server keep working after the abandoned stream.
    again = asyncio.run(full_run())
    assert again[-1][1]["type"] == "RUN_FINISHED"
    resp = deploy.invoke_raw(rt.arn, sid, run_input("still here"), accept="text/event-stream")
    assert kit.read_sse(resp["response"])[-1][1]["type"] == "RUN_FINISHED"


def test_agui_on_a_custom_port_over_sse_and_websocket(deploy, sessions_server):
    config = {"protocolConfiguration": {"serverProtocol": "AGUI", "port": 9300}}
    rt = deploy.create("agui_events", extra=config, env={"PORT": "9300"})
    sid = kit.new_session_id("aguiport")
    resp = deploy.invoke_raw(rt.arn, sid, run_input("custom port"), accept="text/event-stream")
    assert kit.read_sse(resp["response"])[-1][1]["type"] == "RUN_FINISHED"
    url = ws_url(sessions_server.url, rt.arn)

    async def ws_run():
        async with websockets.connect(url, additional_headers=ws_headers(url, sid)) as ws:
            await ws.send(json.dumps(run_input("ws")))
            return [ws_event(m) async for m in ws]

    assert asyncio.run(ws_run())[-1]["type"] == "RUN_FINISHED"


# ---------------------------------------------------------------------------------------------
# Wrong protocol, bad agents, oversize payloads


def test_wrong_protocol_requests_are_validation_errors(deploy, sessions_server):
    http_rt = deploy.create("echo")
    err = expect_error(
        deploy.dp.get_agent_card, "ValidationException", 400, agentRuntimeArn=http_rt.arn
    )
    assert "A2A" in kit.error_info(err)[2] and "HTTP" in kit.error_info(err)[2]
    mcp_rt = deploy.create("mcp_stateless", extra=MCP)
    url = ws_url(sessions_server.url, mcp_rt.arn)

    async def connect():
        async with websockets.connect(url, additional_headers=ws_headers(url, kit.new_session_id("w"))):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(connect())
    assert refused.value.response.status_code == 400
    assert refused.value.response.headers["x-amzn-ErrorType"].startswith("ValidationException")
    # Nothing was started for the refused requests.
    assert pk.sessions_of(sessions_server.url, http_rt.rid) == []
    assert pk.sessions_of(sessions_server.url, mcp_rt.rid) == []


def test_an_agent_answering_garbage_is_a_runtime_client_error(deploy, sessions_server):
    rt = deploy.create("garbage")
    sid = kit.new_session_id("garbage")
    for _ in range(2):  # the session survives the first bad answer
        err = expect_error(deploy.invoke_raw, "RuntimeClientError", 424, rt.arn, sid, {"x": 1})
        assert "could not be reached" in kit.error_info(err)[2] or "answered" in kit.error_info(err)[2]
    assert [s["runtimeSessionId"] for s in pk.sessions_of(sessions_server.url, rt.rid)] == [sid]
    card_rt = deploy.create("garbage", extra=A2A, env={"PORT": "9000"})
    card_sid = kit.new_session_id("garbage-card")
    pk.track(deploy, card_rt.arn, card_sid)
    err = expect_error(
        deploy.dp.get_agent_card,
        "RuntimeClientError",
        424,
        agentRuntimeArn=card_rt.arn,
        runtimeSessionId=card_sid,
    )
    assert "not a JSON object" in kit.error_info(err)[2]
    # Other runtimes are unaffected.
    echo = deploy.create("echo")
    assert deploy.invoke(echo.arn, kit.new_session_id("after"), {"ok": True})["payload"] == {"ok": True}


def test_an_oversize_payload_is_refused_before_reaching_the_agent(deploy, sessions_server):
    rt = deploy.create("mcp_stateless", extra=MCP)
    sid = kit.new_session_id("big")
    big = b"x" * 100_000_001
    err = expect_error(deploy.invoke_raw, "ValidationException", 400, rt.arn, sid, big)
    assert "exceeds" in kit.error_info(err)[2]
    assert pk.sessions_of(sessions_server.url, rt.rid) == []
    status, health = kit.hangar_json(sessions_server.url, "/_hangar/health")
    assert status == 200 and health["status"] == "ok"
