"""The agent bench/sessions deploys (as main.py of its code zip) and also starts bare.

The smallest real AgentCore agent: the bedrock-agentcore SDK's BedrockAgentCoreApp (Starlette
on uvicorn) with one entrypoint that answers at once, so the figures are the platform's and
the SDK's, not a model's. It listens on $PORT when set (the starter toolkit's local-mode
convention, used for the bare runs) and on the contract's 8080 otherwise (in Hangar's sandbox).
"""

import os

from bedrock_agentcore.runtime import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    return {"ok": True, "echo": payload, "session_id": context.session_id}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
