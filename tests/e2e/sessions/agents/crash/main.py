"""crash: a correct artifact whose program dies while importing.

The runtime becomes READY (the zip is fine); every invocation must fail with 424
RuntimeClientError carrying the tail of this program's stderr (the ModuleNotFoundError).
"""

import sys

print("crash agent: importing its dependencies", file=sys.stderr, flush=True)

import nonexistent_module_xyz  # noqa: E402,F401  (the point of this agent)

from bedrock_agentcore.runtime import BedrockAgentCoreApp  # noqa: E402

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"agent": "crash", "unreachable": True}


if __name__ == "__main__":
    app.run()
