"""busy: starts a background task on request; while it runs, /ping answers HealthyBusy.

{"action": "start", "seconds": 90} starts an `@app.async_task` coroutine and returns at once;
{"action": "status"} reports the SDK's own view (ping status, active task count). The boot id
tells the test whether it still talks to the same process.
"""

import asyncio
import os
import time
import uuid

from bedrock_agentcore.runtime import BedrockAgentCoreApp

BOOT_ID = uuid.uuid4().hex
STARTED_AT = time.time()

app = BedrockAgentCoreApp()
_tasks = set()  # strong references: the loop keeps only weak ones
_started = []


@app.async_task
async def background_job(seconds):
    await asyncio.sleep(seconds)


@app.entrypoint
async def invoke(payload, context):
    action = payload.get("action", "status")
    if action == "start":
        seconds = float(payload.get("seconds", 90))
        task = asyncio.get_running_loop().create_task(background_job(seconds))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
        _started.append({"seconds": seconds, "at": time.time()})
        # Let the task register itself (add_async_task) before answering, so /ping is already
        # HealthyBusy when the caller gets the response.
        for _ in range(100):
            if app.get_async_task_info()["active_count"]:
                break
            await asyncio.sleep(0.01)
    elif action != "status":
        return {"error": f"unknown action {action!r}"}
    return {
        "agent": "busy",
        "boot_id": BOOT_ID,
        "started_at": STARTED_AT,
        "ping": app.get_current_ping_status().value,
        "active_tasks": app.get_async_task_info()["active_count"],
        "jobs_started": _started,
        "session_id": context.session_id,
    }


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
