"""Pagination: maxResults/nextToken, boto3 paginators, bad tokens, consistency under writes.

Runs on a private server so that list contents are exactly known."""

from __future__ import annotations

import random
import string
import threading
import time
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from support import (
    RawClient,
    assert_validation_error,
    browser_request,
    container_artifact,
    expect_error,
    make_client,
    runtime_request,
    uniq,
    wait_status,
)

N = 12  # > default page size 10


class Env:
    pass


@pytest.fixture(scope="module")
def env(module_factory):
    srv = module_factory.start(label="pagination")
    e = Env()
    e.server = srv
    e.client = c = make_client(srv.url)
    e.raw = RawClient(srv.url)
    e.runtimes = [c.create_agent_runtime(**runtime_request(uniq("pg"), "minimal"))["agentRuntimeId"] for _ in range(N)]
    e.browsers = [
        c.create_browser(**browser_request(uniq("pg"), full=False))["browserId"] for _ in range(N)
    ]
    e.cis = [
        c.create_code_interpreter(name=uniq("pg"), networkConfiguration={"networkMode": "SANDBOX"})[
            "codeInterpreterId"
        ]
        for _ in range(N)
    ]
    e.profiles = [c.create_browser_profile(name=uniq("pg"))["profileId"] for _ in range(N)]
    # one runtime with N versions and 10 custom endpoints (+ DEFAULT)
    rid = e.runtimes[0]
    wait_status(lambda: c.get_agent_runtime(agentRuntimeId=rid))
    for i in range(N - 1):
        c.update_agent_runtime(
            agentRuntimeId=rid,
            agentRuntimeArtifact=container_artifact(f"v{i + 2}"),
            roleArn="arn:aws:iam::123456789012:role/AgentCoreRuntimeRole",
        )
        wait_status(lambda: c.get_agent_runtime(agentRuntimeId=rid))
    e.rid = rid
    # 10 custom endpoints per runtime is AgentCore's quota: DEFAULT + 10 = 11 > one page
    e.endpoints = ["DEFAULT"] + [f"ep{i}" for i in range(10)]
    for name in e.endpoints[1:]:
        c.create_agent_runtime_endpoint(agentRuntimeId=rid, name=name, agentRuntimeVersion="1")
    return e


LISTS = {
    # name: (operation, result key, id key, extra args, expected ids attr)
    "runtimes": ("list_agent_runtimes", "agentRuntimes", "agentRuntimeId", {}, "runtimes"),
    "versions": ("list_agent_runtime_versions", "agentRuntimes", "agentRuntimeVersion", "RID", None),
    "endpoints": ("list_agent_runtime_endpoints", "runtimeEndpoints", "name", "RID", "endpoints"),
    "browsers": ("list_browsers", "browserSummaries", "browserId", {"type": "CUSTOM"}, "browsers"),
    "code_interpreters": (
        "list_code_interpreters", "codeInterpreterSummaries", "codeInterpreterId",
        {"type": "CUSTOM"}, "cis",
    ),  # fmt: skip
    "profiles": ("list_browser_profiles", "profileSummaries", "profileId", {}, "profiles"),
}


def _args(env, extra):
    return {"agentRuntimeId": env.rid} if extra == "RID" else dict(extra)


def _expected(env, name):
    attr = LISTS[name][4]
    if attr is None:
        return [str(i) for i in range(1, N + 1)]
    return list(getattr(env, attr))


@pytest.mark.parametrize("name", list(LISTS))
@pytest.mark.parametrize("page_size", [1, 5, 100])
def test_paginator_returns_every_item_once(env, name, page_size):
    op, key, idkey, extra, _ = LISTS[name]
    pages = env.client.get_paginator(op).paginate(
        PaginationConfig={"PageSize": page_size}, **_args(env, extra)
    )
    seen = []
    sizes = []
    for page in pages:
        sizes.append(len(page[key]))
        seen += [item[idkey] for item in page[key]]
    assert Counter(seen) == Counter(_expected(env, name)), (name, seen)
    assert all(s <= page_size for s in sizes), sizes
    expected_pages = -(-len(seen) // page_size)
    assert len(sizes) in (expected_pages, expected_pages + 1), sizes  # +1: empty last page


@pytest.mark.parametrize("name", list(LISTS))
def test_default_page_size_is_10(env, name):
    op, key, _idkey, extra, _ = LISTS[name]
    first = getattr(env.client, op)(**_args(env, extra))
    assert len(first[key]) == 10
    assert first.get("nextToken")
    rest = getattr(env.client, op)(nextToken=first["nextToken"], **_args(env, extra))
    assert len(rest[key]) == len(_expected(env, name)) - 10
    assert not rest.get("nextToken")


@pytest.mark.parametrize("name", list(LISTS))
def test_max_results_100_returns_all_without_token(env, name):
    op, key, _idkey, extra, _ = LISTS[name]
    resp = getattr(env.client, op)(maxResults=100, **_args(env, extra))
    assert len(resp[key]) == len(_expected(env, name))
    assert "nextToken" not in resp


@pytest.mark.parametrize("name", list(LISTS))
@pytest.mark.parametrize("token", ["garbage", "AAAA", "eyJvZmZzZXQiOjk5OTl9", "-_.~%2F"])
def test_bad_next_token_is_validation_error(env, name, token):
    op, _key, _idkey, extra, _ = LISTS[name]
    e = expect_error(
        getattr(env.client, op), "ValidationException", 400, nextToken=token, **_args(env, extra)
    )
    assert e.response["Error"]["Message"]


def test_next_token_is_opaque_and_not_transferable(env):
    """A token from one listing is not accepted by another operation."""
    t = env.client.list_browsers(maxResults=2, type="CUSTOM")["nextToken"]
    assert t and not t.isdigit(), f"token looks like a bare offset: {t!r}"
    try:
        resp = env.client.list_agent_runtimes(maxResults=2, nextToken=t)
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ValidationException"
    else:
        pytest.fail(f"ListAgentRuntimes accepted a ListBrowsers token: {resp}")


@pytest.mark.parametrize("value", ["0", "101", "abc", "-5"])
def test_max_results_out_of_range(env, value):
    resp = env.raw.request("POST", "/runtimes/", query={"maxResults": value})
    assert_validation_error(
        resp, "maxResults", reasons=("FieldValidationFailed", "CannotParse")
    )


def test_type_filter_partitions_browsers(env):
    custom = env.client.list_browsers(maxResults=100, type="CUSTOM")["browserSummaries"]
    system = env.client.list_browsers(maxResults=100, type="SYSTEM")["browserSummaries"]
    assert {b["browserId"] for b in custom} == set(env.browsers)
    assert [b["browserId"] for b in system] == ["aws.browser.v1"]


# --------------------------------------------------------------------------------------------
# Consistency under concurrent writes


def _random_name(prefix: str) -> str:
    # random first letter so new names sort anywhere among the stable ones
    return random.choice(string.ascii_letters) + prefix + uniq("")[2:]


def _churn(stop: threading.Event, create, delete, initial: list, errors: list, max_ops=400):
    pool = list(initial)
    ops = 0
    try:
        while not stop.is_set() and ops < max_ops:
            if pool and random.random() < 0.5:
                victim = pool.pop(random.randrange(len(pool)))
                try:
                    delete(victim)
                except ClientError as e:
                    # not what this test is about (e.g. deleting while still CREATING)
                    if e.response["Error"]["Code"] != "ConflictException":
                        raise
            else:
                pool.append(create())
            ops += 1
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))


@pytest.mark.parametrize("kind", ["runtimes", "browsers"])
def test_pages_consistent_under_concurrent_writes(hangar_factory, kind):
    srv = hangar_factory.start(label=f"churn-{kind}")
    c = make_client(srv.url)
    if kind == "runtimes":
        def create():
            return c.create_agent_runtime(**runtime_request(_random_name("c"), "minimal"))["agentRuntimeId"]

        def delete(i):
            c.delete_agent_runtime(agentRuntimeId=i)

        op, key, idkey, extra = "list_agent_runtimes", "agentRuntimes", "agentRuntimeId", {}
    else:
        def create():
            return c.create_browser(**browser_request(_random_name("c"), full=False))["browserId"]

        def delete(i):
            c.delete_browser(browserId=i)

        op, key, idkey, extra = "list_browsers", "browserSummaries", "browserId", {"type": "CUSTOM"}

    # stable items interleaved with churn items (in creation order and in name order)
    stable, churn_a, churn_b = [], [], []
    for _ in range(15):
        stable.append(create())
        churn_a.append(create())
        churn_b.append(create())

    stop = threading.Event()
    errors: list = []
    threads = [
        threading.Thread(target=_churn, args=(stop, create, delete, churn_a, errors)),
        threading.Thread(target=_churn, args=(stop, create, delete, churn_b, errors)),
    ]
    for t in threads:
        t.start()
    try:
        for _round in range(4):
            seen = []
            token = None
            for _ in range(1000):
                args = dict(extra, maxResults=3)
                if token:
                    args["nextToken"] = token
                page = getattr(c, op)(**args)
                seen += [item[idkey] for item in page[key]]
                token = page.get("nextToken")
                if not token:
                    break
                time.sleep(0.01)
            counts = Counter(seen)
            dupes = {i: n for i, n in counts.items() if n > 1}
            assert not dupes, f"items listed twice: {dupes}"
            missing = [i for i in stable if counts[i] != 1]
            assert not missing, f"stable items not listed exactly once: {missing}"
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
