"""streaming: an async generator, so the SDK answers with Server-Sent Events.

Yields `events` events `delay` seconds apart; each carries the time it was produced so the
client can tell whether events arrive as they are produced or only at the end.
"""

import asyncio
import os
import time

from bedrock_agentcore.runtime import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
async def invoke(payload, context):
    events = int(payload.get("events", 5))
    delay = float(payload.get("delay", 0.5))
    for i in range(events):
        if i:
            await asyncio.sleep(delay)
        yield {
            "index": i,
            "of": events,
            "produced_at": time.time(),
            "session_id": context.session_id,
            "pad": "x" * int(payload.get("pad", 0)),
        }


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
