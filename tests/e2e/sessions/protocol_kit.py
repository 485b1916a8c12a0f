"""Helpers of the protocol tests: SigV4 for httpx (the MCP and A2A SDK clients speak httpx; the
requests are signed as AWS's samples sign them, with botocore's SigV4Auth), invocation URLs, and
session tracking so the shared server's sandboxes are stopped after each test."""

from __future__ import annotations

import urllib.parse

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import session_kit as kit
import support

CREDENTIALS = Credentials(support.DEFAULT_KEY, support.DEFAULT_SECRET)
# Hop-by-hop or rewritten-in-transit headers are left out of the signature.
UNSIGNED = {"connection", "accept-encoding", "user-agent", "content-length", "transfer-encoding"}


class SigV4HTTPXAuth(httpx.Auth):
    """Signs every request of an httpx client with SigV4 (`bedrock-agentcore`)."""

    requires_request_body = True

    def auth_flow(self, request: httpx.Request):
        headers = {k: v for k, v in request.headers.items() if k.lower() not in UNSIGNED}
        aws = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        SigV4Auth(CREDENTIALS, "bedrock-agentcore", support.REGION).add_auth(aws)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws.headers:
                request.headers[name] = aws.headers[name]
        yield request


def runtime_path(arn: str) -> str:
    return f"/runtimes/{urllib.parse.quote(arn, safe='')}"


def invocation_url(server_url: str, arn: str, qualifier: str = "DEFAULT") -> str:
    """The MCP endpoint URL of AWS's samples: `.../runtimes/{encoded ARN}/invocations?qualifier=`."""
    return f"{server_url}{runtime_path(arn)}/invocations?qualifier={qualifier}"


def signed_client(headers: dict | None = None, timeout: float = 60.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(auth=SigV4HTTPXAuth(), headers=headers or {}, timeout=timeout)


def track(deploy: kit.Deployer, arn: str, sid: str, qualifier: str = "DEFAULT") -> None:
    """Have the deployer stop this session at the end of the test."""
    if sid and len(sid) >= 33:
        with deploy._touched_lock:
            deploy.touched[(arn, sid)] = qualifier


def sessions_of(server_url: str, rid: str) -> list[dict]:
    return [s for s in kit.live_sessions(server_url) if s["agentRuntimeId"] == rid]
