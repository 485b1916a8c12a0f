"""Container images without Docker, for the container-artifact tests.

- `Registry`: Debian's `docker-registry` (the CNCF distribution server) as a child process on a
  free loopback port, anonymous, or with token auth (`TokenServer`, below, signs the JWTs the
  registry verifies against a certificate made for the run).
- `RegistryClient`: pushes blobs and manifests over the distribution API (answering Basic and
  Bearer challenges as a client must).
- `layer()` / `Image`: OCI layers (gzip tarballs, written entry by entry, hostile names included)
  and image configs + manifests, built in the test.
- `static_agent()`: the C agent in images/static_agent.c, built with `cc -static` (cached).
- `python_root_layer()`: a Python root filesystem for `BedrockAgentCoreApp` agents: Debian's own
  python3.11 from this host, its standard library and exactly the shared libraries it and its
  extension modules link (from `ldd`), cached between runs keyed by those files.
"""

from __future__ import annotations

import base64
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable, Optional

import requests

HERE = Path(__file__).resolve().parent
STATIC_AGENT_SRC = HERE / "images" / "static_agent.c"
REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Token service (for the private registry)


class TokenServer:
    """The token service of a private registry: `GET /token?service=&scope=` with HTTP Basic
    credentials answers a JWT (ES256, certificate in `x5c`) granting the scope's actions."""

    SERVICE = "hangar-test-registry"
    ISSUER = "hangar-test-issuer"

    def __init__(self, work: Path, users: dict[str, str]) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        import datetime as dt

        self.users = users
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hangar test token signer")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = work / "token-cert.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        self.requests: list[tuple[str, int]] = []  # (user or "", status)
        self.port = free_port()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                status, body = outer._answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _answer(self, path: str, authorization: Optional[str]) -> tuple[int, dict]:
        from urllib.parse import parse_qs, urlparse

        user = ""
        if authorization and authorization.startswith("Basic "):
            u, _, p = base64.b64decode(authorization[6:]).decode().partition(":")
            if self.users.get(u) != p:
                self.requests.append((u, 401))
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
            user = u
        if not user:
            self.requests.append(("", 401))
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "credentials required"}]}
        q = parse_qs(urlparse(path).query)
        access = []
        for scope in q.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        self.requests.append((user, 200))
        return 200, {"token": self.sign(user, access), "expires_in": 300}

    def sign(self, user: str, access: list) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(b: bytes) -> str:
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {
            "iss": self.ISSUER, "sub": user, "aud": self.SERVICE, "exp": now + 300,
            "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------
# Registry


class Registry:
    """`docker-registry serve CONFIG` on 127.0.0.1:<free port>, stopped by its own PID."""

    def __init__(self, work: Path, token: Optional[TokenServer] = None) -> None:
        self.work = Path(work)
        self.data = self.work / "data"
        self.token = token
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 30.0) -> "Registry":
        if not Path(REGISTRY_BIN).exists():
            raise RuntimeError("docker-registry not installed (Debian package docker-registry)")
        self.data.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.data}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: {self.host}",
        ]
        if self.token is not None:
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token.realm}",
                f"    service: {self.token.SERVICE}",
                f"    issuer: {self.token.ISSUER}",
                f"    rootcertbundle: {self.token.cert_path}",
            ]
        config = self.work / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        self.log = open(self.work / "registry.log", "wb")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited: {(self.work / 'registry.log').read_text()[-2000:]}"
                )
            try:
                r = requests.get(f"{self.url}/v2/", timeout=2)
                if r.status_code in (200, 401):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer /v2/")

    def blob_file(self, repo_digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes."""
        hexd = repo_digest.split(":", 1)[1]
        return self.data / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class RegistryClient:
    """Push side of the distribution API, answering 401 challenges (Basic or Bearer)."""

    def __init__(self, registry: Registry, user: Optional[str] = None, password: str = "") -> None:
        self.base = registry.url
        self.auth = (user, password) if user else None
        self.s = requests.Session()
        self.tokens: dict[str, str] = {}

    def _req(self, method: str, url: str, repo: str, **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if repo in self.tokens:
            headers["Authorization"] = self.tokens[repo]
        r = self.s.request(method, url, headers=headers, timeout=60, **kw)
        if r.status_code == 401:
            challenge = r.headers.get("Www-Authenticate", "")
            if challenge.startswith("Bearer "):
                params = dict(
                    p.split("=", 1) for p in challenge[7:].replace('"', "").split(",") if "=" in p
                )
                t = self.s.get(
                    params["realm"],
                    params={"service": params.get("service", ""),
                            "scope": f"repository:{repo}:pull,push"},
                    auth=self.auth, timeout=30,
                )  # fmt: skip
                t.raise_for_status()
                self.tokens[repo] = "Bearer " + t.json()["token"]
            elif self.auth:
                self.tokens[repo] = "Basic " + base64.b64encode(
                    f"{self.auth[0]}:{self.auth[1]}".encode()
                ).decode()
            headers["Authorization"] = self.tokens[repo]
            r = self.s.request(method, url, headers=headers, timeout=60, **kw)
        return r

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        r = self._req("HEAD", f"{self.base}/v2/{repo}/blobs/{digest}", repo)
        if r.status_code == 200:
            return digest
        r = self._req("POST", f"{self.base}/v2/{repo}/blobs/uploads/", repo)
        assert r.status_code == 202, (r.status_code, r.text)
        loc = r.headers["Location"]
        if loc.startswith("/"):
            loc = self.base + loc
        sep = "&" if "?" in loc else "?"
        r = self._req(
            "PUT", f"{loc}{sep}digest={digest}", repo, data=data,
            headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip
        assert r.status_code == 201, (r.status_code, r.text)
        return digest

    def push_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        r = self._req(
            "PUT", f"{self.base}/v2/{repo}/manifests/{ref}", repo, data=body,
            headers={"Content-Type": media_type},
        )  # fmt: skip
        assert r.status_code == 201, (r.status_code, r.text)
        return sha256(body)

    def push_image(self, repo: str, tag: str, image: "Image") -> str:
        """Pushes layers, config and manifest; returns the manifest digest."""
        for data in image.layers:
            self.push_blob(repo, data)
        self.push_blob(repo, image.config_bytes())
        return self.push_manifest(repo, tag, image.manifest_bytes(), OCI_MANIFEST)

    def push_index(self, repo: str, tag: str, entries: list[tuple[str, "Image"]]) -> str:
        """Pushes each image (by digest) and an index naming them with their platforms."""
        manifests = []
        for _, img in entries:
            body = img.manifest_bytes()
            for data in img.layers:
                self.push_blob(repo, data)
            self.push_blob(repo, img.config_bytes())
            d = self.push_manifest(repo, sha256(body), body, OCI_MANIFEST)
            manifests.append({
                "mediaType": OCI_MANIFEST, "digest": d, "size": len(body),
                "platform": {"architecture": img.architecture, "os": "linux"},
            })  # fmt: skip
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        ).encode()
        return self.push_manifest(repo, tag, index, OCI_INDEX)


# ---------------------------------------------------------------------------------------------
# Images


@dataclass
class Entry:
    """One tar entry. `name` is written verbatim (hostile names are the point of some tests)."""

    name: str
    data: bytes = b""
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    link: str = ""


def layer(entries: Iterable[Entry], level: int = 6) -> bytes:
    """A gzip-compressed tar of `entries`, in order; deterministic (mtime 0)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.kind
            info.mode = e.mode
            info.mtime = 0
            info.linkname = e.link
            info.size = len(e.data) if e.kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(e.data) if e.kind == tarfile.REGTYPE else None)
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


def tree_layer(root: Path, prefix: str = "", level: int = 1) -> bytes:
    """A gzip tar of a host directory tree under `prefix` (symlinks kept, modes kept)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                p = Path(dirpath) / name
                arc = (Path(prefix) / p.relative_to(root)).as_posix()
                info = tf.gettarinfo(str(p), arcname=arc)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                # mtimes kept: the byte-code in __pycache__ is validated against them.
                if info.isreg():
                    with open(p, "rb") as f:
                        tf.addfile(info, f)
                else:
                    tf.addfile(info)
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


@dataclass
class Image:
    layers: list[bytes]
    entrypoint: Optional[list[str]] = None
    cmd: Optional[list[str]] = None
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    architecture: str = "amd64"

    def config_bytes(self) -> bytes:
        config: dict = {"Env": self.env}
        if self.entrypoint is not None:
            config["Entrypoint"] = self.entrypoint
        if self.cmd is not None:
            config["Cmd"] = self.cmd
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        if self.user:
            config["User"] = self.user
        return json.dumps({
            "architecture": self.architecture, "os": "linux", "config": config,
            "rootfs": {"type": "layers",
                       "diff_ids": [sha256(gzip.decompress(b)) for b in self.layers]},
        }, sort_keys=True).encode()  # fmt: skip

    def manifest_bytes(self) -> bytes:
        c = self.config_bytes()
        return json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(c), "size": len(c)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(b), "size": len(b)}
                       for b in self.layers],
        }).encode()  # fmt: skip

    @property
    def digest(self) -> str:
        return sha256(self.manifest_bytes())


def ecr_uri(repo: str, tag: Optional[str] = None, digest: Optional[str] = None) -> str:
    """An ECR-style reference (what the control plane's model accepts); the servers under test
    map the ECR host to the local registry."""
    uri = f"{ECR_HOST}/{repo}"
    if tag:
        uri += f":{tag}"
    if digest:
        uri += f"@{digest}"
    return uri


def container_artifact(uri: str) -> dict:
    return {"containerConfiguration": {"containerUri": uri}}


# ---------------------------------------------------------------------------------------------
# Agents inside images


def _locked_build(cache: Path, key: str, build) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / key
    with open(cache / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not final.exists():
            partial = cache / f"{key}.partial-{os.getpid()}"
            build(partial)
            os.replace(partial, final)
    return final


def static_agent(cache: Path) -> bytes:
    """The static C agent's binary (built once per source)."""
    src = STATIC_AGENT_SRC.read_bytes()
    key = "static-agent-" + hashlib.sha256(src).hexdigest()[:16]

    def build(out: Path) -> None:
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no C compiler (Debian package gcc) to build the static agent")
        subprocess.run(
            [cc, "-static", "-O2", "-o", str(out), str(STATIC_AGENT_SRC)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    return _locked_build(cache, key, build).read_bytes()


def static_image_layers(cache: Path, marker: str = "") -> list[bytes]:
    """/agent, /etc/passwd (user `runner` 4242) and an empty /home/runner; `marker` makes a distinct
    layer when a test needs one of its own."""
    entries = [
        Entry("agent", static_agent(cache), 0o755),
        Entry("etc/", kind=tarfile.DIRTYPE, mode=0o755),
        Entry("etc/passwd", b"root:x:0:0:root:/root:/agent\nrunner:x:4242:4343::/home/runner:/agent\n"),
        Entry("etc/group", b"root:x:0:\nrunners:x:4343:\n"),
        Entry("home/", kind=tarfile.DIRTYPE, mode=0o755),
        Entry("home/runner/", kind=tarfile.DIRTYPE, mode=0o755),
        Entry("tmp/", kind=tarfile.DIRTYPE, mode=0o1777),
    ]
    if marker:
        entries.append(Entry("marker", marker.encode()))
    return [layer(entries)]


PYTHON = "/usr/bin/python3.11"
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data"}


def _needed_libs(paths: list[str]) -> set[str]:
    libs: set[str] = set()
    for p in paths:
        out = subprocess.run(["ldd", p], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            for tok in parts:
                if tok.startswith("/"):
                    libs.add(tok)
    return libs


def python_root_layer(cache: Path, site: Optional[Path] = None) -> bytes:
    """A gzip layer holding a Python 3.11 root filesystem (merged /usr layout), cached. The
    shared libraries the extension modules under `site` (vendored dependencies) link come too."""
    if not Path(PYTHON).exists():
        raise RuntimeError(f"{PYTHON} is missing (Debian package python3.11)")
    stdlib = Path("/usr/lib/python3.11")
    dynload = sorted(str(p) for p in (stdlib / "lib-dynload").glob("*.so"))
    if site is not None:
        dynload += sorted(str(p) for p in Path(site).rglob("*.so"))
    h = hashlib.sha256(b"python-root-2")
    for p in [PYTHON, *dynload]:
        st = os.stat(p)
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    key = "python-root-" + h.hexdigest()[:16] + ".tar.gz"

    def build(out: Path) -> None:
        stage = out.with_suffix(".d")
        shutil.rmtree(stage, ignore_errors=True)
        root = stage / "root"

        def copy(src: str) -> None:
            s = Path(src)
            dest = root / s.relative_to("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if s.is_symlink():
                target = os.readlink(s)
                if not dest.exists() and not dest.is_symlink():
                    os.symlink(target, dest)
                copy(str((s.parent / target).resolve()) if not target.startswith("/") else target)
            elif s.is_file() and not dest.exists():
                shutil.copy2(s, dest)

        for top, to in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                        ("sbin", "usr/sbin")):  # fmt: skip
            (root / to).mkdir(parents=True, exist_ok=True)
            os.symlink(to, root / top)
        copy(PYTHON)
        os.symlink("python3.11", root / "usr/bin/python3")
        for lib in _needed_libs([PYTHON, *dynload]):
            if site is not None and lib.startswith(str(site)):
                continue  # the agent's own libraries travel in its app layer
            # ldd names libraries by their /lib or /lib64 paths: keep them under /usr.
            real = lib
            for top in ("/lib64/", "/lib/"):
                if lib.startswith(top):
                    real = "/usr" + lib
            copy(real if Path(real).exists() else lib)
        (root / "usr/lib/python3.11").mkdir(parents=True, exist_ok=True)
        for item in stdlib.iterdir():
            if item.name in _STDLIB_SKIP or item.name.startswith("config-"):
                continue
            dest = root / "usr/lib/python3.11" / item.name
            if item.is_symlink():
                os.symlink(os.readlink(item), dest)
            elif item.is_dir():
                shutil.copytree(item, dest, symlinks=True)
            else:
                shutil.copy2(item, dest)
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc/passwd").write_text(
            "root:x:0:0:root:/root:/bin/false\nagent:x:1000:1000::/home/agent:/bin/false\n"
        )
        (root / "etc/group").write_text("root:x:0:\nagent:x:1000:\n")
        (root / "tmp").mkdir(mode=0o1777)
        (root / "home/agent").mkdir(parents=True)
        out.write_bytes(tree_layer(root))
        shutil.rmtree(stage, ignore_errors=True)

    return _locked_build(cache, key, build).read_bytes()


def app_layer(agent_zip: Path, prefix: str = "app") -> bytes:
    """The agent's zip (code + vendored dependencies) unpacked under /<prefix>, as a layer."""
    import tempfile

    import session_kit as kit

    with tempfile.TemporaryDirectory() as d:
        kit.extract_zip(agent_zip, Path(d) / "x")
        return tree_layer(Path(d) / "x", prefix)
