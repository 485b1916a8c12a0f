"""mcp_stateful: an MCP server built with the MCP SDK's FastMCP in stateful mode
(`stateless_http=False`): it issues its own `Mcp-Session-Id` at `initialize` and refuses
requests naming a session it does not know.

Tools: `bump` (a counter kept per MCP session in this process: only a request routed back to
the same server process sees the count go up), `whoami` (process id and session headers).
"""

import os

from mcp.server.fastmcp import Context, FastMCP

mcp = FastMCP(
    "hangar-e2e-stateful",
    host="0.0.0.0",
    port=int(os.environ.get("MCP_PORT", "8000")),
    streamable_http_path=os.environ.get("MCP_PATH", "/mcp"),
    stateless_http=False,
)

COUNTERS: dict = {}


@mcp.tool()
def bump(ctx: Context) -> dict:
    """Counts calls in this MCP session."""
    sid = ctx.request_context.request.headers.get("mcp-session-id")
    COUNTERS[sid] = COUNTERS.get(sid, 0) + 1
    return {"count": COUNTERS[sid], "pid": os.getpid(), "mcp_session_id": sid}


@mcp.tool()
def whoami(ctx: Context) -> dict:
    """The process serving this call and the session headers it arrived with."""
    headers = ctx.request_context.request.headers
    return {
        "pid": os.getpid(),
        "mcp_session_id": headers.get("mcp-session-id"),
        "runtime_session_id": headers.get("x-amzn-bedrock-agentcore-runtime-session-id"),
    }


if __name__ == "__main__":
    mcp.run(transport="streamable-http")
