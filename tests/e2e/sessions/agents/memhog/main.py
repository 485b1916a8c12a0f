"""memhog: allocates memory until the sandbox's memory limit kills it.

{"action": "hog", "step_mib": 8, "max_mib": 512} touches `step_mib` more MiB per step and reports
every step on stderr ("memhog allocated N MiB rss R MiB anon A MiB"). `max_mib` is a safety stop
so that a server without a memory limit cannot take the host down: reaching it returns
{"survived": true}, which the test treats as a failure. {"action": "small"} allocates nothing.
"""

import os
import sys
import time

from bedrock_agentcore.runtime import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


def _status_mib(field):
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _rss_mib():
    return _status_mib("VmRSS")


def _anon_mib():
    # Anonymous memory is always charged to the sandbox's own memory cgroup; VmRSS also counts
    # mapped files whose pages may be charged to whoever read them first.
    return _status_mib("RssAnon")


@app.entrypoint
def invoke(payload, context):
    action = payload.get("action", "small")
    if action == "small":
        return {"agent": "memhog", "action": "small", "rss_mib": _rss_mib(), "pid": os.getpid()}
    step = int(payload.get("step_mib", 8))
    cap = int(payload.get("max_mib", 512))
    blocks = []
    total = 0
    print(f"memhog start rss {_rss_mib()} MiB", file=sys.stderr, flush=True)
    while total < cap:
        blocks.append(b"\x5a" * (step << 20))  # bytes * n fills (touches) every page
        total += step
        print(
            f"memhog allocated {total} MiB rss {_rss_mib()} MiB anon {_anon_mib()} MiB",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(0.01)
    return {"agent": "memhog", "survived": True, "allocated_mib": total, "rss_mib": _rss_mib()}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
