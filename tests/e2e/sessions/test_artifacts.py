"""Code artifacts: a runtime version is READY only once its zip was fetched and unpacked, and
CREATE_FAILED / UPDATE_FAILED with a precise failureReason when it cannot be (object or bucket
missing, not a zip, no interpreter for the runtime). Artifacts come from the S3-compatible store
(--s3-endpoint) or from a local directory standing in for buckets (--s3-dir)."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

import session_kit as kit


def absent_runtime():
    """A code runtime whose interpreter this host lacks (PYTHON_3_14 first), or None."""
    for runtime in ("PYTHON_3_14", "PYTHON_3_13", "PYTHON_3_12", "PYTHON_3_10"):
        version = "3." + runtime.rsplit("_", 1)[1]
        exe = f"python{version}"
        if not shutil.which(exe) and not os.path.exists(f"/usr/bin/{exe}"):
            return runtime, exe
    return None


ABSENT = absent_runtime()
needs_absent_runtime = pytest.mark.skipif(
    ABSENT is None, reason="every code runtime's interpreter is installed on this host"
)


def bad_artifact(kind: str, artifacts: kit.S3Artifacts, builder: kit.AgentBuilder):
    """(agentRuntimeArtifact, words the failureReason must contain) for one kind of bad input."""
    tag = uuid.uuid4().hex[:10]
    if kind == "missing_object":
        key = f"agents/missing/{tag}/deployment.zip"
        return kit.code_artifact(artifacts.bucket, key), [key]
    if kind == "missing_bucket":
        bucket = f"hangar-e2e-no-such-bucket-{tag}"
        return kit.code_artifact(bucket, "agents/echo/deployment.zip"), [bucket]
    if kind == "not_a_zip":
        key = artifacts.put_raw(f"agents/bad/{tag}/notes.zip", b"this is not a zip archive\n")
        return kit.code_artifact(artifacts.bucket, key), ["zip"]
    if kind == "truncated_zip":
        data = builder.zip_bytes("echo")
        key = artifacts.put_raw(f"agents/bad/{tag}/truncated.zip", data[: len(data) // 2])
        return kit.code_artifact(artifacts.bucket, key), ["zip"]
    if kind == "interpreter_missing":
        runtime, exe = ABSENT
        key = artifacts.key_for("echo")
        return kit.code_artifact(artifacts.bucket, key, runtime=runtime), [runtime, exe]
    raise ValueError(kind)


def assert_reason(resp: dict, status: str, words: list) -> None:
    assert resp["status"] == status, kit.strip_meta(resp)
    reason = resp.get("failureReason")
    assert isinstance(reason, str) and reason.strip(), f"no failureReason: {kit.strip_meta(resp)}"
    low = reason.lower()
    if words and words[0] in ("PYTHON_3_14", "PYTHON_3_13", "PYTHON_3_12", "PYTHON_3_10"):
        assert any(w.lower() in low for w in words), f"{words} not in failureReason {reason!r}"
    else:
        for w in words:
            assert w.lower() in low, f"{w!r} not in failureReason {reason!r}"


def test_ready_only_after_fetch_and_the_unpacked_copy_is_used(deploy, artifacts, agent_builder):
    # A private copy of the echo zip, deleted from the store once the runtime is READY.
    key = artifacts.put_raw(
        f"agents/private/{uuid.uuid4().hex}/deployment.zip", agent_builder.zip_bytes("echo")
    )
    rt = deploy.create(None, artifact=kit.code_artifact(artifacts.bucket, key), wait="")
    got = deploy.wait_runtime(rt.rid, "READY")
    assert got["agentRuntimeArtifact"] == rt.request["agentRuntimeArtifact"]
    assert not got.get("failureReason"), kit.strip_meta(got)
    artifacts.s3.delete(artifacts.bucket, key)

    out = deploy.invoke(rt.arn, kit.new_session_id("fetched"), {"ping": 1})
    assert out["agent"] == "echo" and out["payload"] == {"ping": 1}


@pytest.mark.parametrize(
    "kind",
    [
        "missing_object",
        "missing_bucket",
        "not_a_zip",
        "truncated_zip",
        pytest.param("interpreter_missing", marks=needs_absent_runtime),
    ],
)
def test_create_failed_with_reason(deploy, artifacts, agent_builder, kind):
    artifact, words = bad_artifact(kind, artifacts, agent_builder)
    rt = deploy.create(None, artifact=artifact, wait="")
    resp = deploy.wait_runtime(rt.rid, "CREATE_FAILED")
    assert_reason(resp, "CREATE_FAILED", words)
    v1 = deploy.cp.get_agent_runtime(agentRuntimeId=rt.rid, agentRuntimeVersion="1")
    assert v1["status"] == "CREATE_FAILED"


@pytest.mark.parametrize(
    "kind",
    [
        "missing_object",
        "not_a_zip",
        pytest.param("interpreter_missing", marks=needs_absent_runtime),
    ],
)
def test_update_failed_with_reason_and_version_1_keeps_serving(
    deploy, artifacts, agent_builder, kind
):
    rt = deploy.create("echo")
    before = kit.new_session_id("pre-update")
    assert deploy.invoke(rt.arn, before, {"n": 1})["agent"] == "echo"

    artifact, words = bad_artifact(kind, artifacts, agent_builder)
    version = deploy.update(rt, None, artifact=artifact, wait="")
    assert version == "2"
    resp = deploy.wait_runtime(rt.rid, "UPDATE_FAILED")
    assert_reason(resp, "UPDATE_FAILED", words)
    v2 = deploy.cp.get_agent_runtime(agentRuntimeId=rt.rid, agentRuntimeVersion="2")
    assert_reason(v2, "UPDATE_FAILED", words)

    # DEFAULT's live version stays 1: old and new sessions still run the echo agent.
    assert deploy.invoke(rt.arn, before, {"n": 2})["payload"] == {"n": 2}
    after = kit.new_session_id("post-update")
    assert deploy.invoke(rt.arn, after, {"n": 3})["agent"] == "echo"
    listed = kit.find_session(deploy.url, rt.rid, after)
    assert listed is not None and str(listed["version"]) == "1", listed


def test_artifacts_from_a_local_directory(extra_servers, agent_builder, tmp_path):
    buckets = tmp_path / "buckets"
    key = "agents/echo/deployment.zip"
    path = buckets / "local-bucket" / key
    path.parent.mkdir(parents=True)
    shutil.copyfile(agent_builder.zip_path("echo"), path)

    srv = extra_servers.start("s3dir", ["--s3-dir", str(buckets)])
    d = kit.Deployer(srv, None)
    rt = d.create(None, artifact=kit.code_artifact("local-bucket", key))
    out = d.invoke(rt.arn, kit.new_session_id("s3dir"), {"from": "dir"})
    assert out["agent"] == "echo" and out["payload"] == {"from": "dir"}
    assert out["cwd"] == "/var/task"

    missing = "agents/nothing/here.zip"
    bad = d.create(None, artifact=kit.code_artifact("local-bucket", missing), wait="")
    assert_reason(d.wait_runtime(bad.rid, "CREATE_FAILED"), "CREATE_FAILED", [missing])
    d.stop(rt.arn, out["session_id"])


def test_data_dir_inside_a_private_directory(s3, artifacts, tmp_path):
    """A data dir below a 0700 directory, like the default ~/.local/share/hangar of a user whose
    home is private (root's is): the unpacked code must still reach the sandbox's /var/task."""
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    srv = kit.SessionHangar(
        private / ".local" / "share" / "hangar",
        tmp_path / "logs",
        ["--s3-endpoint", s3.url],
        kit.s3_env(),
        label="private-data-dir",
    )
    try:
        kit.start_session_server(srv)
        d = kit.Deployer(srv, artifacts)
        rt = d.create("echo")
        sid = kit.new_session_id("private")
        out = d.invoke(rt.arn, sid, {"home": "private"})
        assert out["payload"] == {"home": "private"} and out["cwd"] == "/var/task"
        d.stop(rt.arn, sid)
    finally:
        srv.stop()
