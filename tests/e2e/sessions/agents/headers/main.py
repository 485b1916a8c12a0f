"""headers: returns every request header it received, names lowercased, values verbatim.

Used to prove which headers reach an agent: the runtime's request header allowlist, the
contract's fixed set and the platform's own (session id, request id, WorkloadAccessToken) —
and nothing else the caller sent.
"""

import json
import os

from bedrock_agentcore.runtime import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    raw = context.request.headers.raw if context.request is not None else []
    headers = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return {"agent": "headers", "headers": headers, "session_id": context.session_id}


@app.websocket
async def websocket(ws, context):
    # The headers of the WebSocket upgrade as the agent got them, then one echo per message.
    await ws.accept()
    headers = {}
    for name, value in ws.headers.raw:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    await ws.send_text(json.dumps(headers))
    while True:
        await ws.send_text(await ws.receive_text())


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
