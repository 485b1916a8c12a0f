"""echo: returns the payload it got, the session id it saw and a selection of its environment.

Used to check the InvokeAgentRuntime -> container request mapping (body verbatim, session header,
request context), `environmentVariables`, the process layout (`/var/task`, interpreter) and that
nothing of Hangar's own environment leaks into the sandbox.
"""

import hashlib
import os
import sys
import time

from bedrock_agentcore.runtime import BedrockAgentCoreApp

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
REQUEST_ID_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"
STARTED_AT = time.time()
PLATFORM_VARS = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "HANGAR_HOST_LOOPBACK",
    "DOCKER_CONTAINER",
    "OTEL_RESOURCE_ATTRIBUTES",
    "AGENTCORE_RUNTIME_URL",
    "HOME",
    "PATH",
    "TMPDIR",
)

app = BedrockAgentCoreApp()


def _sha256(value):
    return None if value is None else hashlib.sha256(value.encode("utf-8")).hexdigest()


@app.entrypoint
def invoke(payload, context):
    headers = context.request.headers if context.request is not None else {}
    marker = payload.get("log_marker") if isinstance(payload, dict) else None
    if marker:
        print(f"echo-stdout {marker}", flush=True)
        print(f"echo-stderr {marker}", file=sys.stderr, flush=True)
    return {
        "agent": "echo",
        "payload": payload,
        "session_id": context.session_id,
        "session_header": headers.get(SESSION_HEADER),
        "request_id_header": headers.get(REQUEST_ID_HEADER),
        "content_type": headers.get("content-type"),
        "custom_headers": {
            k.lower(): v for k, v in headers.items() if k.lower().startswith("x-amzn-bedrock-agentcore-runtime-custom-")
        },
        "authorization_header": headers.get("authorization"),
        "env": {k: v for k, v in os.environ.items() if k.startswith("ECHO_")},
        "env_names": sorted(os.environ),
        "platform_env": {k: os.environ.get(k) for k in PLATFORM_VARS},
        # Values are never echoed for credentials; the tests compare digests.
        "aws_secret_sha256": _sha256(os.environ.get("AWS_SECRET_ACCESS_KEY")),
        "cwd": os.getcwd(),
        "script": os.path.abspath(__file__),
        "executable": sys.executable,
        "python": list(sys.version_info[:3]),
        "argv": sys.argv,
        "pid": os.getpid(),
        "uid": os.getuid(),
        "started_at": STARTED_AT,
    }


@app.websocket
async def websocket(ws, context):
    # One reply per text message: what arrived, and the session it arrived in.
    await ws.accept()
    while True:
        message = await ws.receive_text()
        await ws.send_text(f"{context.session_id}:{message}")


if __name__ == "__main__":
    # PORT is the starter toolkit's local-mode convention; the runtime contract is 8080.
    app.run(port=int(os.environ.get("PORT", "8080")))
