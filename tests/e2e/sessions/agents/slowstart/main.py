"""slowstart: sleeps before it starts serving, longer than the runtime's initialization limit.

The contract gives a new session's program 30 s to answer /ping; this one waits
SLOWSTART_SECONDS (default 45) first, so its first invocation must fail with 424
RuntimeClientError. Run bare with a small SLOWSTART_SECONDS it is an ordinary agent.
"""

import os
import sys
import time

DELAY = float(os.environ.get("SLOWSTART_SECONDS", "45"))
print(f"slowstart: sleeping {DELAY:g} s before serving", file=sys.stderr, flush=True)
time.sleep(DELAY)

from bedrock_agentcore.runtime import BedrockAgentCoreApp  # noqa: E402

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"agent": "slowstart", "delay": DELAY}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
