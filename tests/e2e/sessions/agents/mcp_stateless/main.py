"""mcp_stateless: an MCP server built with the MCP SDK's FastMCP, stateless Streamable HTTP (the
AgentCore default, `stateless_http=True`) on 0.0.0.0:8000/mcp.

Tools: `add` (arithmetic round trip), `whoami` (the process and the session headers this request
reached the server with, to check routing and the platform-generated `Mcp-Session-Id`),
`countdown` (logs progress notifications before answering, so the answer is an SSE stream of
several events). `MCP_PORT` / `MCP_PATH` move it (custom `protocolConfiguration.port`/`path`).
"""

import asyncio
import os

from mcp.server.fastmcp import Context, FastMCP

mcp = FastMCP(
    "hangar-e2e-stateless",
    host="0.0.0.0",
    port=int(os.environ.get("MCP_PORT", "8000")),
    streamable_http_path=os.environ.get("MCP_PATH", "/mcp"),
    stateless_http=True,
)


@mcp.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@mcp.tool()
def whoami(ctx: Context) -> dict:
    """The process serving this call and the session headers it arrived with."""
    headers = ctx.request_context.request.headers
    return {
        "pid": os.getpid(),
        "mcp_session_id": headers.get("mcp-session-id"),
        "runtime_session_id": headers.get("x-amzn-bedrock-agentcore-runtime-session-id"),
    }


@mcp.tool()
async def countdown(n: int, ctx: Context) -> str:
    """Reports n progress messages, 0.2 s apart, then answers."""
    for i in range(n, 0, -1):
        await ctx.info(f"tick {i}")
        await asyncio.sleep(0.2)
    return "liftoff"


if __name__ == "__main__":
    mcp.run(transport="streamable-http")
