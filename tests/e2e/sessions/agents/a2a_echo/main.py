"""a2a_echo: an A2A server built with `a2a-sdk` and the `bedrock-agentcore` A2A helper
(`serve_a2a`: JSON-RPC on 0.0.0.0:9000 `/`, the agent card at `/.well-known/agent-card.json`,
its URL taken from `AGENTCORE_RUNTIME_URL`, `GET /ping`).

`message/send` answers one message, `echo: <text> (pid <pid>)`. A text starting with `stream`
becomes a task that reports three `working` status updates 0.3 s apart before completing, so
`message/stream` shows events arriving one by one. `A2A_PORT` moves it (custom port).
"""

import asyncio
import os

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentSkill, TaskState
from a2a.utils import new_agent_text_message, new_task
from bedrock_agentcore.runtime.a2a import serve_a2a


class EchoExecutor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        if not text.startswith("stream"):
            await event_queue.enqueue_event(new_agent_text_message(f"echo: {text} (pid {os.getpid()})"))
            return
        task = context.current_task or new_task(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        for i in range(3):
            await updater.update_status(
                TaskState.working,
                new_agent_text_message(f"step {i}", task.context_id, task.id),
            )
            await asyncio.sleep(0.3)
        await updater.add_artifact([{"kind": "text", "text": f"done: {text}"}], name="result")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


CARD = AgentCard(
    name="hangar-e2e-a2a-echo",
    description="Echoes what it is sent",
    url="http://localhost:9000/",
    version="1.0.0",
    default_input_modes=["text"],
    default_output_modes=["text"],
    capabilities=AgentCapabilities(streaming=True),
    skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
)

if __name__ == "__main__":
    serve_a2a(EchoExecutor(), CARD, host="0.0.0.0")
