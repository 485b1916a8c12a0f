"""agui_events: an AG-UI agent built with `ag-ui-protocol` and the `bedrock-agentcore` AG-UI
helper (`AGUIApp`: SSE on `POST /invocations`, the same events over the `/ws` WebSocket,
`GET /ping`, port 8080).

A run emits RUN_STARTED, TEXT_MESSAGE_START, one TEXT_MESSAGE_CONTENT per word of the last user
message 0.3 s apart (so incremental delivery is visible), TEXT_MESSAGE_END, RUN_FINISHED.
"""

import asyncio
import os
import uuid

from ag_ui.core import (
    EventType,
    RunAgentInput,
    RunFinishedEvent,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
)
from bedrock_agentcore.runtime.ag_ui import AGUIApp

app = AGUIApp()


@app.entrypoint
async def run(input_data: RunAgentInput):
    yield RunStartedEvent(type=EventType.RUN_STARTED, thread_id=input_data.thread_id, run_id=input_data.run_id)
    message_id = str(uuid.uuid4())
    yield TextMessageStartEvent(type=EventType.TEXT_MESSAGE_START, message_id=message_id, role="assistant")
    text = input_data.messages[-1].content if input_data.messages else ""
    for word in str(text).split() + [f"pid={os.getpid()}"]:
        yield TextMessageContentEvent(type=EventType.TEXT_MESSAGE_CONTENT, message_id=message_id, delta=word)
        await asyncio.sleep(0.3)
    yield TextMessageEndEvent(type=EventType.TEXT_MESSAGE_END, message_id=message_id)
    yield RunFinishedEvent(type=EventType.RUN_FINISHED, thread_id=input_data.thread_id, run_id=input_data.run_id)


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
