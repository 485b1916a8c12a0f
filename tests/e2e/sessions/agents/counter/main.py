"""counter: state in memory and in a file under /tmp.

Every invocation increments an in-memory counter and appends "<count> <session id>" to
/tmp/hangar-counter-state.txt. Within one session both keep growing (the session is sticky to one
sandbox); another session starts at 1 with a file that holds only its own lines (private /tmp);
a stopped or expired session comes back at 1 (fresh sandbox).
"""

import os
import threading
import time
import uuid

from bedrock_agentcore.runtime import BedrockAgentCoreApp

# AGENT_TMP exists only so the agent can be run bare on a developer's host without sharing the
# host's /tmp between runs; in a sandbox it is unset and the state lives in the sandbox's /tmp.
STATE_FILE = os.path.join(os.environ.get("AGENT_TMP", "/tmp"), "hangar-counter-state.txt")
BOOT_ID = uuid.uuid4().hex
STARTED_AT = time.time()

app = BedrockAgentCoreApp()
_lock = threading.Lock()
_count = 0


@app.entrypoint
def invoke(payload, context):
    global _count
    with _lock:
        _count += 1
        count = _count
        with open(STATE_FILE, "a", encoding="utf-8") as f:
            f.write(f"{count} {context.session_id}\n")
        with open(STATE_FILE, encoding="utf-8") as f:
            lines = f.read().splitlines()
    return {
        "agent": "counter",
        "count": count,
        "file_lines": len(lines),
        "file_counts": [int(line.split()[0]) for line in lines],
        "file_sessions": sorted({line.split()[1] for line in lines}),
        "boot_id": BOOT_ID,
        "pid": os.getpid(),
        "started_at": STARTED_AT,
        "session_id": context.session_id,
    }


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
