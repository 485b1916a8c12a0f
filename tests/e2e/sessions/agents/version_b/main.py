"""version_b: agent B of the version-routing test (same shape as version_a, different code).

Answers {"agent": "B", "count": n}: the count shows which sandbox (and so which version's
process) a session is bound to.
"""

import os
import threading
import uuid

from bedrock_agentcore.runtime import BedrockAgentCoreApp

AGENT = "B"
BOOT_ID = uuid.uuid4().hex

app = BedrockAgentCoreApp()
_lock = threading.Lock()
_count = 0


@app.entrypoint
def invoke(payload, context):
    global _count
    with _lock:
        _count += 1
        count = _count
    return {"agent": AGENT, "count": count, "boot_id": BOOT_ID, "session_id": context.session_id}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
