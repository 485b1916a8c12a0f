"""The MCP server bench/sessions deploys (as mcp_main.py of the same code zip, on an MCP
runtime) and also starts bare: the MCP SDK's FastMCP, stateless Streamable HTTP as AgentCore
recommends, with one tool that answers at once, so the figures are the platform's and the SDK's.
It listens on $MCP_PORT when set (the bare runs) and on the contract's 8000 otherwise;
MCP_JSON_RESPONSE=1 makes it answer plain JSON instead of SSE (`bench/sessions --mcp-json`).
"""

import os

from mcp.server.fastmcp import FastMCP

mcp = FastMCP(
    "bench",
    host="0.0.0.0",
    port=int(os.environ.get("MCP_PORT", "8000")),
    stateless_http=True,
    json_response=os.environ.get("MCP_JSON_RESPONSE") == "1",
)


@mcp.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


if __name__ == "__main__":
    mcp.run(transport="streamable-http")
