"""Session lifecycle: idleRuntimeSessionTimeout, maxLifetime, HealthyBusy, initialization limit.

The model's minimum for both timeouts is 60 s, so the scenarios run concurrently in threads
inside one test (~100 s). Deselect locally with `-m "not slow"`; the full suite runs it.
Termination "may take up to 15 s" after a limit is reached [runtime contract §B], hence the
grace below.
"""

from __future__ import annotations

import time

import pytest

import session_kit as kit

IDLE = 60
GRACE = 15 + 10  # contract's termination delay + polling/scheduling slack
INIT_LIMIT = 30  # contract §A.1: "initialization completes in 30s"


def sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


@pytest.mark.slow
@pytest.mark.timeout(290)
def test_idle_timeout_max_lifetime_busy_and_slow_start(deploy):
    idle_rt = deploy.create(
        "counter", lifecycle={"idleRuntimeSessionTimeout": IDLE, "maxLifetime": 3600}
    )
    life_rt = deploy.create(
        "counter", lifecycle={"idleRuntimeSessionTimeout": 60, "maxLifetime": 60}
    )
    busy_rt = deploy.create(
        "busy", lifecycle={"idleRuntimeSessionTimeout": IDLE, "maxLifetime": 3600}
    )
    slow_rt = deploy.create("slowstart", env={"SLOWSTART_SECONDS": "45"})
    got = deploy.cp.get_agent_runtime(agentRuntimeId=life_rt.rid)
    assert got["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": 60, "maxLifetime": 60}

    def idle_expiry():
        sid = kit.new_session_id("idle")
        first = deploy.invoke(idle_rt.arn, sid, {})
        last_activity = time.time()
        assert first["count"] == 1
        sleep_until(last_activity + IDLE - 15)
        assert kit.find_session(deploy.url, idle_rt.rid, sid) is not None, "expired early"
        gone_at = kit.wait_session_gone(
            deploy.url, idle_rt.rid, sid, timeout=last_activity + IDLE + GRACE - time.time()
        )
        assert gone_at - last_activity >= IDLE - 2, f"gone after {gone_at - last_activity:.0f}s"
        again = deploy.invoke(idle_rt.arn, sid, {})
        assert again["count"] == 1 and again["boot_id"] != first["boot_id"], "state survived"
        deploy.stop(idle_rt.arn, sid)
        return gone_at - last_activity

    def max_lifetime():
        sid = kit.new_session_id("life")
        start = time.time()
        seen = []  # (seconds since start, count, boot_id)
        failures = []
        while time.time() - start < 60 + GRACE + 10:
            try:
                r = deploy.invoke(life_rt.arn, sid, {})
                seen.append((time.time() - start, r["count"], r["boot_id"]))
            except kit.ClientError as e:  # an invoke racing the termination
                failures.append((time.time() - start, kit.error_info(e)))
            time.sleep(10)
        first_boot = seen[0][2]
        before = [s for s in seen if s[0] < 55]
        assert [s[1] for s in before] == list(range(1, len(before) + 1)), seen
        assert all(s[2] == first_boot for s in before), f"replaced before maxLifetime: {seen}"
        replaced = [s for s in seen if s[2] != first_boot]
        assert replaced, f"activity every 10 s kept the session past maxLifetime 60 s: {seen}"
        assert replaced[0][1] == 1, f"the replacement sandbox did not start fresh: {seen}"
        assert 58 <= replaced[0][0] <= 60 + GRACE + 10, seen
        assert all(55 <= t <= 60 + GRACE + 10 for t, _ in failures), failures
        assert all(status < 500 for _, (_, status, _) in failures), failures
        deploy.stop(life_rt.arn, sid)
        return replaced[0][0]

    def busy_keeps_alive():
        sid = kit.new_session_id("busy")
        control = kit.new_session_id("notbusy")
        started = deploy.invoke(busy_rt.arn, sid, {"action": "start", "seconds": 90})
        t0 = time.time()
        assert started["ping"] == "HealthyBusy" and started["active_tasks"] == 1, started
        quiet = deploy.invoke(busy_rt.arn, control, {"action": "status"})
        assert quiet["ping"] == "Healthy", quiet
        sleep_until(t0 + IDLE + GRACE - 5)
        assert kit.find_session(deploy.url, busy_rt.rid, control) is None, (
            "a Healthy session outlived its idle timeout"
        )
        assert kit.find_session(deploy.url, busy_rt.rid, sid) is not None, (
            "a HealthyBusy session was ended by the idle timeout"
        )
        status = deploy.invoke(busy_rt.arn, sid, {"action": "status"})
        assert status["boot_id"] == started["boot_id"], "the busy session was replaced"
        assert status["ping"] == "HealthyBusy" and status["active_tasks"] == 1, status
        deploy.stop(busy_rt.arn, sid)
        return True

    def slow_start():
        sid = kit.new_session_id("slow")
        t0 = time.monotonic()
        e = kit.client_error(deploy.invoke_raw, slow_rt.arn, sid, {})
        elapsed = time.monotonic() - t0
        code, status, message = kit.error_info(e)
        assert (code, status) == ("RuntimeClientError", 424), e.response
        assert INIT_LIMIT - 5 <= elapsed <= INIT_LIMIT + 20, f"424 after {elapsed:.1f}s"
        assert "slowstart: sleeping" in message, f"stderr tail missing: {message!r}"
        kit.wait_session_gone(deploy.url, slow_rt.rid, sid, timeout=15)
        return elapsed

    kit.run_concurrently(
        {
            "idle_expiry": idle_expiry,
            "max_lifetime": max_lifetime,
            "busy_keeps_alive": busy_keeps_alive,
            "slow_start": slow_start,
        },
        timeout=240,
    )
