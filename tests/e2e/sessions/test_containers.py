"""Container artifacts: OCI images pulled from a real registry and run per session, no Docker.

A real `docker-registry` (CNCF distribution) runs on loopback; images are built here (layers
written entry by entry, configs and manifests as JSON) and pushed over the distribution API. The
control plane only accepts ECR-style URIs, so the server under test maps the ECR host to the
local registry (`--registry-map ecr=http://127.0.0.1:PORT`), as a laptop user would.

Agents: a static C program (images/static_agent.c) speaking the container contract, and the
`BedrockAgentCoreApp` echo agent on a Python root filesystem.
"""

from __future__ import annotations

import errno
import json
import re
import uuid

import pytest

import oci_kit as oci
import session_kit as kit


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def image_cache(pytestconfig):
    return kit.default_cache_root(pytestconfig) / "images"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    kit.require_session_support()
    reg = oci.Registry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def pusher(registry):
    return oci.RegistryClient(registry)


@pytest.fixture(scope="module")
def oci_server(module_servers, registry):
    return module_servers.start("oci", ["--registry-map", f"ecr=http://{registry.host}"])


@pytest.fixture(scope="module")
def cdeploy(oci_server):
    d = kit.Deployer(oci_server, None)
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def static_repo(pusher, image_cache):
    """`static` with tags v1 and v2 (same layer, different config)."""
    layers = oci.static_image_layers(image_cache)
    images = {}
    for tag, var in (("v1", "one"), ("v2", "two")):
        img = oci.Image(
            layers,
            entrypoint=["/agent"],
            cmd=["--tag", tag],
            env=["PATH=/bin:/", f"IMG_VAR={var}", "IMG_OVERRIDE=from-image"],
            working_dir="/home/runner",
            user="4242:4343",
        )
        pusher.push_image("agents/static", tag, img)
        images[tag] = img
    return images


def container(uri: str) -> dict:
    return oci.container_artifact(uri)


def failure_reason(d: kit.Deployer, uri: str) -> str:
    rt = d.create(None, wait="CREATE_FAILED", artifact=container(uri))
    return d.cp.get_agent_runtime(agentRuntimeId=rt.rid).get("failureReason", "")


# --------------------------------------------------------------------------------------------
# The static agent


def test_static_image_ready_invoke_and_image_config(cdeploy, static_repo):
    rt = cdeploy.create(
        None,
        artifact=container(oci.ecr_uri("agents/static", "v1")),
        env={"RT_VAR": "from-runtime", "IMG_OVERRIDE": "from-runtime"},
    )
    sid = kit.new_session_id("static")
    got = cdeploy.invoke(rt.arn, sid, {"prompt": "hi"})
    assert got["agent"] == "static"
    assert json.loads(got["body"]) == {"prompt": "hi"}
    # Entrypoint + Cmd, WorkingDir, User (inside the sandbox's user namespace).
    assert got["argv"] == ["/agent", "--tag", "v1"]
    assert got["cwd"] == "/home/runner"
    assert (got["uid"], got["gid"], got["euid"]) == (4242, 4343, 4242)
    env = got["env"]
    assert env["IMG_VAR"] == "one", "the image's Env"
    assert env["PATH"] == "/bin:/"
    assert env["RT_VAR"] == "from-runtime", "the runtime's environmentVariables"
    assert env["IMG_OVERRIDE"] == "from-runtime", "runtime variables win over the image's"
    assert env["HOME"] == "/home/runner", "HOME from the image's /etc/passwd entry for the user"
    assert env["AWS_REGION"] == kit.REGION
    assert env["AGENTCORE_RUNTIME_URL"].startswith("http://")


def test_static_image_streams(cdeploy, static_repo):
    rt = cdeploy.create(None, artifact=container(oci.ecr_uri("agents/static", "v1")))
    resp = cdeploy.invoke_raw(rt.arn, kit.new_session_id("stream"), {"stream": True})
    assert resp["statusCode"] == 200
    assert resp["contentType"].startswith("text/event-stream")
    events = kit.read_sse(resp["response"])
    assert [e[1]["index"] for e in events] == [0, 1, 2, 3, 4]
    # Events arrive as produced (100 ms apart), not all at the end.
    assert events[-1][0] - events[0][0] > 0.25, [e[0] for e in events]


def test_isolation_as_for_code_artifacts(cdeploy, static_repo):
    rt = cdeploy.create(None, artifact=container(oci.ecr_uri("agents/static", "v1")))
    a = cdeploy.invoke(rt.arn, kit.new_session_id("iso-a"), {})
    b = cdeploy.invoke(rt.arn, kit.new_session_id("iso-b"), {})
    for got in (a, b):
        inside = int(got["uid_map"].split()[0])
        assert inside == 4242, got["uid_map"]
        assert got["cap_eff"].split()[-1] == "0000000000000000", got["cap_eff"]
        assert got["root_write_errno"] in (errno.EROFS, errno.EACCES), "image root read-only"
        assert got["tmp_write_ok"], "private writable /tmp"
        assert not got["sees_host_python"], "nothing of the host's file system"
        assert got["visible_processes"] < 10, "own PID namespace"
        assert got["hostname"] == "sandbox"
    # On the host, every agent process runs as an unprivileged uid, one per session.
    host_uids = set()
    for proc in kit.Path("/proc").iterdir():
        try:
            if (proc / "cmdline").read_bytes() != b"/agent\0--tag\0v1\0":
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        assert uid >= 1000, f"agent process {proc.name} runs as host uid {uid}"
        host_uids.add(uid)
    assert len(host_uids) >= 2, host_uids


def test_memory_limit_applies_to_container_sessions(module_servers, registry, static_repo):
    srv = module_servers.start(
        "oci-limited", ["--registry-map", f"ecr=http://{registry.host}", "--session-memory-mib", "64"]
    )
    d = kit.Deployer(srv, None)
    rt = d.create(None, artifact=container(oci.ecr_uri("agents/static", "v1")))
    bystander, hog = kit.new_session_id("by"), kit.new_session_id("hog")
    assert d.invoke(rt.arn, bystander, {})["agent"] == "static"
    e = kit.client_error(d.invoke_raw, rt.arn, hog, {"hog": True})
    assert kit.error_info(e)[:2] == ("RuntimeClientError", 424), e.response
    steps = [
        int(line.split()[2])
        for line in kit.session_logs(d.url, rt.rid, hog)["stderr"].splitlines()
        if line.startswith("static_agent allocated")
    ]
    assert steps and max(steps) <= 64, steps[-3:]
    assert d.invoke(rt.arn, bystander, {})["agent"] == "static", "the bystander carries on"
    assert d.invoke(rt.arn, kit.new_session_id("after"), {})["agent"] == "static"
    d.cleanup()


def test_update_to_new_tag_and_pinned_endpoint_keeps_old_image(cdeploy, static_repo):
    rt = cdeploy.create(None, artifact=container(oci.ecr_uri("agents/static", "v1")))
    cdeploy.cp.create_agent_runtime_endpoint(
        agentRuntimeId=rt.rid, name="pinned", agentRuntimeVersion="1"
    )
    cdeploy.wait_endpoint(rt.rid, "pinned")
    v = cdeploy.update(rt, None, artifact=container(oci.ecr_uri("agents/static", "v2")))
    assert v == "2"
    new = cdeploy.invoke(rt.arn, kit.new_session_id("dflt"), {})
    old = cdeploy.invoke(rt.arn, kit.new_session_id("pin"), {}, qualifier="pinned")
    assert new["env"]["IMG_VAR"] == "two" and new["argv"][-1] == "v2"
    assert old["env"]["IMG_VAR"] == "one" and old["argv"][-1] == "v1"


def test_digest_reference_and_multi_arch_index(cdeploy, pusher, static_repo, image_cache):
    img = static_repo["v1"]
    rt = cdeploy.create(
        None, artifact=container(oci.ecr_uri("agents/static", digest=img.digest))
    )
    assert cdeploy.invoke(rt.arn, kit.new_session_id("dig"), {})["agent"] == "static"
    # An index with an arm64 and an amd64 image: the host's platform is chosen.
    foreign = "arm64" if kit.platform.machine() == "x86_64" else "amd64"
    native = "amd64" if foreign == "arm64" else "arm64"
    layers = oci.static_image_layers(image_cache)
    arm = oci.Image(layers, entrypoint=["/agent"], cmd=["--arch", foreign],
                    architecture=foreign, env=[f"IMG_VAR={foreign}"])  # fmt: skip
    amd = oci.Image(layers, entrypoint=["/agent"], cmd=["--arch", native],
                    architecture=native, env=[f"IMG_VAR={native}"])  # fmt: skip
    pusher.push_index("agents/multi", "latest", [(foreign, arm), (native, amd)])
    rt = cdeploy.create(None, artifact=container(oci.ecr_uri("agents/multi", "latest")))
    got = cdeploy.invoke(rt.arn, kit.new_session_id("multi"), {})
    assert got["env"]["IMG_VAR"] == native


def test_agent_failing_at_start_gives_424_with_its_stderr(cdeploy, pusher, image_cache):
    img = oci.Image(oci.static_image_layers(image_cache), entrypoint=["/agent"], cmd=["--fail"])
    pusher.push_image("agents/failing", "v1", img)
    rt = cdeploy.create(None, artifact=container(oci.ecr_uri("agents/failing", "v1")))
    e = kit.client_error(cdeploy.invoke_raw, rt.arn, kit.new_session_id("fail"), {})
    code, status, message = kit.error_info(e)
    assert (code, status) == ("RuntimeClientError", 424), (code, status, message)
    assert "failing on purpose" in message, message


# --------------------------------------------------------------------------------------------
# Failures: CREATE_FAILED / UPDATE_FAILED with a precise failureReason


def test_not_found(cdeploy, static_repo):
    reason = failure_reason(cdeploy, oci.ecr_uri("agents/nothing-here", "v1"))
    assert "was not found" in reason and "agents/nothing-here" in reason, reason
    reason = failure_reason(cdeploy, oci.ecr_uri("agents/static", "no-such-tag"))
    assert "was not found" in reason and "no-such-tag" in reason, reason


def test_update_to_a_missing_tag_is_update_failed(cdeploy, static_repo):
    rt = cdeploy.create(None, artifact=container(oci.ecr_uri("agents/static", "v1")))
    cdeploy.update(
        rt, None, wait="UPDATE_FAILED", artifact=container(oci.ecr_uri("agents/static", "gone"))
    )
    got = cdeploy.cp.get_agent_runtime(agentRuntimeId=rt.rid)
    assert "was not found" in got.get("failureReason", ""), got


def test_digest_mismatch(cdeploy, pusher, registry, image_cache):
    layers = oci.static_image_layers(image_cache, marker=uuid.uuid4().hex)
    img = oci.Image(layers, entrypoint=["/agent"])
    pusher.push_image("agents/corrupt", "v1", img)
    # The registry serves what is on its disk: flip bytes of the layer (same length).
    blob = registry.blob_file(oci.sha256(layers[0]))
    data = bytearray(blob.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    blob.write_bytes(bytes(data))
    reason = failure_reason(cdeploy, oci.ecr_uri("agents/corrupt", "v1"))
    assert "Digest mismatch" in reason and oci.sha256(layers[0]) in reason, reason
    # A reference pinning a digest the registry's manifest does not hash to.
    wrong = "sha256:" + "0" * 64
    reason = failure_reason(cdeploy, oci.ecr_uri("agents/static", digest=wrong))
    assert "not found" in reason or "Digest mismatch" in reason, reason


@pytest.mark.parametrize(
    "name",
    ["../escape", "app/../../escape", "/etc/escape", "link/escape"],
    ids=["dotdot", "nested-dotdot", "absolute", "through-symlink"],
)
def test_layer_escapes_are_refused(cdeploy, pusher, image_cache, name):
    entries = [oci.Entry("agent", oci.static_agent(image_cache), 0o755)]
    if name.startswith("link/"):
        entries.append(oci.Entry("link", kind=oci.tarfile.SYMTYPE, link="/tmp"))
    entries.append(oci.Entry(name, b"owned"))
    bad = oci.layer(entries)
    repo = f"agents/escape-{uuid.uuid4().hex[:8]}"
    pusher.push_image(repo, "v1", oci.Image([bad], entrypoint=["/agent"]))
    reason = failure_reason(cdeploy, oci.ecr_uri(repo, "v1"))
    assert "was refused" in reason, reason
    assert name.split("/")[0] in reason or "symbolic link" in reason, reason


def test_foreign_architecture_without_emulator(cdeploy, pusher, image_cache):
    foreign = "arm64" if kit.platform.machine() == "x86_64" else "amd64"
    qemu = {"arm64": "aarch64", "amd64": "x86_64"}[foreign]
    img = oci.Image(
        oci.static_image_layers(image_cache, marker="arch"), entrypoint=["/agent"],
        architecture=foreign,
    )  # fmt: skip
    pusher.push_image("agents/foreign", "v1", img)
    binfmt = kit.Path(f"/proc/sys/fs/binfmt_misc/qemu-{qemu}")
    if binfmt.exists() and binfmt.read_text().startswith("enabled"):
        cdeploy.create(None, artifact=container(oci.ecr_uri("agents/foreign", "v1")))
        return  # an emulator is registered: the version is READY
    reason = failure_reason(cdeploy, oci.ecr_uri("agents/foreign", "v1"))
    assert f"linux/{foreign}" in reason and "qemu-user" in reason, reason
    assert "binfmt" in reason and "--platform" in reason, reason


def test_too_large_image(module_servers, registry, static_repo):
    srv = module_servers.start(
        "oci-small", ["--registry-map", f"ecr=http://{registry.host}", "--image-max-bytes", "100000"]
    )
    reason = failure_reason(kit.Deployer(srv, None), oci.ecr_uri("agents/static", "v1"))
    assert "too large" in reason and "2 GB" in reason, reason


def test_image_without_program_fails_at_create(cdeploy, pusher, image_cache):
    img = oci.Image(oci.static_image_layers(image_cache), cmd=["not-there"])
    pusher.push_image("agents/noprog", "v1", img)
    reason = failure_reason(cdeploy, oci.ecr_uri("agents/noprog", "v1"))
    assert "not-there" in reason and "PATH" in reason, reason


def test_https_mapped_registry_is_spoken_to_with_tls(module_servers, registry):
    # An https:// target gets TLS: the plain-HTTP registry cannot answer it, and the reason names
    # the https origin (the mapping is honoured, not silently downgraded).
    srv = module_servers.start("oci-https", ["--registry-map", f"ecr=https://{registry.host}"])
    d = kit.Deployer(srv, None)
    reason = failure_reason(d, oci.ecr_uri("agents/static", "v1"))
    assert "unreachable" in reason and f"https://{registry.host}" in reason, reason
    assert "--registry-map" not in reason, reason


# --------------------------------------------------------------------------------------------
# Private registry: bearer tokens, credentials from a docker-style config.json


@pytest.fixture(scope="module")
def private(tmp_path_factory, image_cache):
    work = tmp_path_factory.mktemp("private-registry")
    token = oci.TokenServer(work, {"agent-puller": "s3cret"})
    reg = oci.Registry(work, token=token).start()
    client = oci.RegistryClient(reg, "agent-puller", "s3cret")
    img = oci.Image(oci.static_image_layers(image_cache), entrypoint=["/agent"],
                    env=["IMG_VAR=private"])  # fmt: skip
    client.push_image("team/private", "v1", img)
    yield reg, token, work
    reg.stop()
    token.stop()


def _docker_config(path, host: str, user: str, password: str) -> str:
    import base64

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return str(path)


def test_private_registry_with_bearer_auth(module_servers, private):
    reg, token, work = private
    config = _docker_config(work / "good.json", oci.ECR_HOST, "agent-puller", "s3cret")
    srv = module_servers.start(
        "oci-private", ["--registry-map", f"ecr=http://{reg.host}", "--registry-config", config]
    )
    d = kit.Deployer(srv, None)
    rt = d.create(None, artifact=container(oci.ecr_uri("team/private", "v1")))
    got = d.invoke(rt.arn, kit.new_session_id("priv"), {})
    assert got["env"]["IMG_VAR"] == "private"
    assert ("agent-puller", 200) in token.requests
    d.cleanup()


def test_private_registry_without_or_with_wrong_credentials(module_servers, private):
    reg, token, work = private
    anon = module_servers.start("oci-anon", ["--registry-map", f"ecr=http://{reg.host}"])
    reason = failure_reason(kit.Deployer(anon, None), oci.ecr_uri("team/private", "v1"))
    assert "denied" in reason and "none are configured" in reason, reason
    config = _docker_config(work / "bad.json", reg.host, "agent-puller", "wrong")
    bad = module_servers.start(
        "oci-badcreds", ["--registry-map", f"ecr=http://{reg.host}", "--registry-config", config]
    )
    reason = failure_reason(kit.Deployer(bad, None), oci.ecr_uri("team/private", "v1"))
    assert "refused the credentials" in reason and "agent-puller" in reason, reason


# --------------------------------------------------------------------------------------------
# A BedrockAgentCoreApp agent on a Python root filesystem


@pytest.fixture(scope="module")
def python_image(pusher, image_cache, agent_builder):
    root = oci.python_root_layer(image_cache, agent_builder.site_dir())
    app = oci.app_layer(agent_builder.zip_path("echo"))
    img = oci.Image(
        [root, app],
        entrypoint=["python3"],
        cmd=["main.py"],
        env=["PATH=/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED=1", "IMG_VAR=python"],
        working_dir="/app",
        user="agent",
    )
    pusher.push_image("agents/python-echo", "v1", img)
    return img


def test_python_agent_image(cdeploy, python_image):
    rt = cdeploy.create(
        None, artifact=container(oci.ecr_uri("agents/python-echo", "v1")),
        env={"ECHO_FROM_RUNTIME": "yes"},
    )  # fmt: skip
    sid = kit.new_session_id("pyimg")
    got = cdeploy.invoke(rt.arn, sid, {"prompt": "hello"})
    assert got["agent"] == "echo" and got["payload"] == {"prompt": "hello"}
    assert got["session_id"] == sid
    assert got["cwd"] == "/app" and got["script"] == "/app/main.py"
    assert got["executable"].startswith("/usr/bin/python3")
    assert got["uid"] == 1000, "User 'agent' from the image's /etc/passwd"
    assert got["env"] == {"ECHO_FROM_RUNTIME": "yes"}
    assert "IMG_VAR" in got["env_names"]
    assert got["platform_env"]["HOME"] == "/home/agent"
    assert kit.CANARY_VAR not in got["env_names"]
    assert re.match(r"^\d+\.\d+", ".".join(map(str, got["python"])))


# --------------------------------------------------------------------------------------------
# Garbage collection


def _image_dirs(server, digest: str) -> list:
    """The unpacked root of `digest` wherever this server keeps its image store (its data dir,
    or /var/cache/hangar when the data dir is not searchable by session uids)."""
    hexd = digest.split(":", 1)[1]
    found = list(kit.Path(server.data_dir).glob(f"images/images/{hexd}"))
    found += list(kit.Path("/var/cache/hangar").glob(f"*.images/images/{hexd}"))
    return found


def test_images_no_version_references_are_collected(module_servers, registry, pusher, image_cache):
    srv = module_servers.start(
        "oci-gc",
        ["--registry-map", f"ecr=http://{registry.host}",
         "--image-gc-interval-secs", "1", "--image-gc-grace-secs", "0"],
    )  # fmt: skip
    d = kit.Deployer(srv, None)
    keep = oci.Image(oci.static_image_layers(image_cache, marker="gc-keep"), entrypoint=["/agent"])
    drop = oci.Image(oci.static_image_layers(image_cache, marker="gc-drop"), entrypoint=["/agent"])
    pusher.push_image("agents/gc", "keep", keep)
    pusher.push_image("agents/gc", "drop", drop)
    kept = d.create(None, artifact=container(oci.ecr_uri("agents/gc", "keep")))
    dropped = d.create(None, artifact=container(oci.ecr_uri("agents/gc", "drop")))
    # Two runtimes on one image share one unpacked root.
    d.create(None, artifact=container(oci.ecr_uri("agents/gc", "keep")))
    assert len(_image_dirs(srv, keep.digest)) == 1
    assert len(_image_dirs(srv, drop.digest)) == 1
    d.cp.delete_agent_runtime(agentRuntimeId=dropped.rid)
    kit.support.wait_until(
        lambda: _image_dirs(srv, drop.digest), lambda dirs: not dirs, timeout=30,
        what="the deleted runtime's image removed",
    )  # fmt: skip
    assert len(_image_dirs(srv, keep.digest)) == 1, "an image still referenced stays"
    got = d.invoke(kept.arn, kit.new_session_id("gc"), {})
    assert got["agent"] == "static"
    d.cleanup()


def test_version_keeps_its_image_across_a_restart_when_the_tag_moves(
    module_servers, registry, pusher, image_cache
):
    layers = oci.static_image_layers(image_cache)

    def push(var: str) -> oci.Image:
        img = oci.Image(layers, entrypoint=["/agent"], env=[f"IMG_VAR={var}"])
        pusher.push_image("agents/moving", "v1", img)
        return img

    push("first")
    srv = module_servers.start("oci-restart", ["--registry-map", f"ecr=http://{registry.host}"])
    d = kit.Deployer(srv, None)
    rt = d.create(None, artifact=container(oci.ecr_uri("agents/moving", "v1")))
    assert d.invoke(rt.arn, kit.new_session_id("before"), {})["env"]["IMG_VAR"] == "first"
    d.cleanup()
    push("second")  # the tag now names another image
    srv.stop()
    srv.start()
    d = kit.Deployer(srv, None)
    got = d.invoke(rt.arn, kit.new_session_id("after"), {})
    assert got["env"]["IMG_VAR"] == "first", "the version keeps the image it was given"
    rt2 = d.create(None, artifact=container(oci.ecr_uri("agents/moving", "v1")))
    assert d.invoke(rt2.arn, kit.new_session_id("new"), {})["env"]["IMG_VAR"] == "second"
    d.cleanup()
