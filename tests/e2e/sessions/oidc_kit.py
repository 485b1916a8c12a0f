"""A real OpenID provider for the JWT authorizer tests: `oidc-provider` (npm) on loopback.

`tests/e2e/oidc/` holds the launcher (`provider.mjs`) and the pinned `package.json` +
`package-lock.json`; `npm ci` installs them once into a cache directory keyed by the lockfile
(`$HANGAR_E2E_CACHE` or `$TMPDIR/hangar-e2e-oidc/<hash>`). Tokens are obtained over HTTP from
the provider's token endpoint (client_credentials + a resource indicator = the audience).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

OIDC_DIR = Path(__file__).resolve().parent.parent / "oidc"


def install_dir() -> Path:
    """node_modules for the launcher, installed with `npm ci` once per lockfile."""
    lock = (OIDC_DIR / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (OIDC_DIR / "package.json").read_bytes()).hexdigest()[:20]
    root = Path(os.environ.get("HANGAR_E2E_CACHE") or Path(tempfile.gettempdir()) / "hangar-e2e-oidc")
    target = root / digest
    if (target / ".installed").exists():
        return target
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the OIDC provider of the JWT tests")
    tmp = root / f"{digest}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("package.json", "package-lock.json", "provider.mjs"):
        shutil.copyfile(OIDC_DIR / name, tmp / name)
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=tmp,
        check=True,
        timeout=600,
    )
    (tmp / ".installed").write_text("ok")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


class OidcProvider:
    """One provider process; `stop()` / `start()` keep its port and keys (outage tests)."""

    def __init__(self, work: Path, clients: list[dict], scopes: list[str]) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.state = self.work / "state.json"
        self.config = self.work / "clients.json"
        self.config.write_text(json.dumps({"clients": clients, "scopes": scopes}))
        self.proc: Optional[subprocess.Popen] = None
        self.issuer = ""
        self.port = 0
        self.starts = 0

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self, timeout: float = 30.0) -> "OidcProvider":
        installed = install_dir()
        shutil.copyfile(OIDC_DIR / "provider.mjs", installed / "provider.mjs")
        self.starts += 1
        log = open(self.work / f"provider-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            ["node", str(installed / "provider.mjs"), "--port", str(self.port),
             "--state", str(self.state), "--config", str(self.config)],
            cwd=installed, stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
        line = self.proc.stdout.readline().decode()
        if not line:
            raise RuntimeError(f"oidc-provider did not start: {(self.work / f'provider-{self.starts}.log').read_text()}")
        info = json.loads(line)
        self.issuer, self.port = info["issuer"], info["port"]
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.get_json(self.discovery_url)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @staticmethod
    def get_json(url: str) -> dict:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def _post(self, path: str, data: dict, form: bool = False) -> dict:
        if form:
            body = urllib.parse.urlencode(data).encode()
            ctype = "application/x-www-form-urlencoded"
        else:
            body, ctype = json.dumps(data).encode(), "application/json"
        req = urllib.request.Request(
            f"{self.issuer}{path}", data=body, method="POST", headers={"content-type": ctype}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"POST {path}: {e.code} {e.read()[:500]!r}") from e

    def token(self, client_id: str, secret: str, resource: str, scope: str) -> str:
        """An access token from the provider's token endpoint (a JWT, since a resource
        indicator is given)."""
        return self._post(
            "/token",
            {"grant_type": "client_credentials", "client_id": client_id,
             "client_secret": secret, "resource": resource, "scope": scope},
            form=True,
        )["access_token"]  # fmt: skip

    def sign(self, claims: dict, header: Optional[dict] = None) -> str:
        """Arbitrary claims signed with the provider's current key (test route)."""
        return self._post("/_test/sign", {"claims": claims, "header": header or {}})["token"]

    def rotate(self, keep_old: bool) -> str:
        return self._post("/_test/rotate", {"keep_old": keep_old})["kid"]

    def jwks(self) -> dict:
        return self.get_json(self.get_json(self.discovery_url)["jwks_uri"])
