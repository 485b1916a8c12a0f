"""Browsers, code interpreters (built-in and custom) and browser profiles."""

from __future__ import annotations

import datetime

import pytest

from support import (
    BROWSER_BUILTIN,
    BROWSER_BUILTIN_ARN,
    BROWSER_CONFIG_MEMBERS,
    CODE_INTERPRETER_BUILTIN,
    CODE_INTERPRETER_BUILTIN_ARN,
    CODE_INTERPRETER_CONFIG_MEMBERS,
    assert_id,
    assert_members_equal,
    browser_arn,
    browser_ids,
    browser_request,
    code_interpreter_arn,
    code_interpreter_ids,
    code_interpreter_request,
    expect_error,
    list_all,
    profile_arn,
    profile_ids,
    runtime_request,
    status_of,
    uniq,
    wait_gone,
    wait_status,
)


# --------------------------------------------------------------------------------------------
# Built-ins


def test_builtin_browser(client):
    b = client.get_browser(browserId=BROWSER_BUILTIN)
    assert b["browserId"] == BROWSER_BUILTIN
    assert b["browserArn"] == BROWSER_BUILTIN_ARN
    assert b["status"] == "READY"
    assert isinstance(b["name"], str) and b["name"]
    assert b["networkConfiguration"]["networkMode"] in ("PUBLIC", "VPC")
    assert isinstance(b["createdAt"], datetime.datetime)
    system = list_all(client, "list_browsers", "browserSummaries", type="SYSTEM")
    assert [s["browserId"] for s in system] == [BROWSER_BUILTIN]
    assert system[0]["browserArn"] == BROWSER_BUILTIN_ARN
    assert system[0]["status"] == "READY"
    assert BROWSER_BUILTIN not in browser_ids(client, "CUSTOM")


def test_builtin_code_interpreter(client):
    c = client.get_code_interpreter(codeInterpreterId=CODE_INTERPRETER_BUILTIN)
    assert c["codeInterpreterId"] == CODE_INTERPRETER_BUILTIN
    assert c["codeInterpreterArn"] == CODE_INTERPRETER_BUILTIN_ARN
    assert c["status"] == "READY"
    assert c["networkConfiguration"]["networkMode"] in ("PUBLIC", "SANDBOX", "VPC")
    system = list_all(client, "list_code_interpreters", "codeInterpreterSummaries", type="SYSTEM")
    assert [s["codeInterpreterId"] for s in system] == [CODE_INTERPRETER_BUILTIN]
    assert system[0]["codeInterpreterArn"] == CODE_INTERPRETER_BUILTIN_ARN
    assert CODE_INTERPRETER_BUILTIN not in code_interpreter_ids(client, "CUSTOM")


def test_builtins_cannot_be_deleted(client):
    expect_error(client.delete_browser, "AccessDeniedException", 403, browserId=BROWSER_BUILTIN)
    expect_error(
        client.delete_code_interpreter, "AccessDeniedException", 403,
        codeInterpreterId=CODE_INTERPRETER_BUILTIN,
    )  # fmt: skip
    assert client.get_browser(browserId=BROWSER_BUILTIN)["status"] == "READY"
    c = client.get_code_interpreter(codeInterpreterId=CODE_INTERPRETER_BUILTIN)
    assert c["status"] == "READY"


# --------------------------------------------------------------------------------------------
# Custom browsers


@pytest.mark.parametrize("full", [True, False], ids=["full", "minimal"])
def test_browser_lifecycle(client, full):
    name = uniq("br")
    req = browser_request(name, tags={"team": "web"}, full=full)
    c = client.create_browser(**req)
    assert status_of(c) == 202
    assert c["status"] == "CREATING"
    bid = c["browserId"]
    assert_id(bid, name)
    assert c["browserArn"] == browser_arn(bid)
    assert isinstance(c["createdAt"], datetime.datetime)

    got = wait_status(lambda: client.get_browser(browserId=bid))
    assert got["browserId"] == bid
    assert got["browserArn"] == browser_arn(bid)
    assert got["createdAt"] == c["createdAt"]
    assert got["lastUpdatedAt"] >= got["createdAt"]
    assert_members_equal(got, req, BROWSER_CONFIG_MEMBERS)

    assert bid in browser_ids(client, "CUSTOM")
    assert bid not in browser_ids(client, "SYSTEM")
    summary = [
        s for s in list_all(client, "list_browsers", "browserSummaries", type="CUSTOM")
        if s["browserId"] == bid
    ]  # fmt: skip
    assert len(summary) == 1
    assert summary[0]["browserArn"] == browser_arn(bid)
    assert summary[0]["name"] == name
    assert summary[0]["status"] == "READY"
    assert summary[0].get("description") == req.get("description")

    assert client.list_tags_for_resource(resourceArn=browser_arn(bid))["tags"] == {"team": "web"}

    d = client.delete_browser(browserId=bid)
    assert status_of(d) == 202
    assert d["browserId"] == bid
    assert d["status"] == "DELETING"
    assert isinstance(d["lastUpdatedAt"], datetime.datetime)
    wait_gone(lambda: client.get_browser(browserId=bid))
    assert bid not in browser_ids(client, "CUSTOM")
    expect_error(client.delete_browser, "ResourceNotFoundException", 404, browserId=bid)


def test_browser_duplicate_name(client):
    name = uniq("br")
    client.create_browser(**browser_request(name, full=False))
    expect_error(client.create_browser, "ConflictException", 409, **browser_request(name))
    assert len([b for b in browser_ids(client) if b.startswith(name + "-")]) == 1


def test_names_are_unique_per_kind_only(client):
    """One name may be used by a runtime, a browser, a code interpreter and a profile."""
    name = uniq("shared")
    b = client.create_browser(**browser_request(name, full=False))
    ci = client.create_code_interpreter(**code_interpreter_request(name, full=False))
    p = client.create_browser_profile(name=name)
    rt = client.create_agent_runtime(**runtime_request(name, "minimal"))
    for rid in (b["browserId"], ci["codeInterpreterId"], p["profileId"], rt["agentRuntimeId"]):
        assert_id(rid, name)


# --------------------------------------------------------------------------------------------
# Custom code interpreters


@pytest.mark.parametrize("mode", ["SANDBOX", "PUBLIC", "VPC"])
def test_code_interpreter_lifecycle(client, mode):
    name = uniq(f"ci_{mode.lower()}")
    req = code_interpreter_request(name, tags={"team": "data"}, mode=mode, full=(mode != "PUBLIC"))
    c = client.create_code_interpreter(**req)
    assert status_of(c) == 202
    assert c["status"] == "CREATING"
    cid = c["codeInterpreterId"]
    assert_id(cid, name)
    assert c["codeInterpreterArn"] == code_interpreter_arn(cid)

    got = wait_status(lambda: client.get_code_interpreter(codeInterpreterId=cid))
    assert got["codeInterpreterArn"] == code_interpreter_arn(cid)
    assert_members_equal(got, req, CODE_INTERPRETER_CONFIG_MEMBERS)
    assert got["createdAt"] == c["createdAt"]

    assert cid in code_interpreter_ids(client, "CUSTOM")
    assert cid not in code_interpreter_ids(client, "SYSTEM")
    tags = client.list_tags_for_resource(resourceArn=code_interpreter_arn(cid))["tags"]
    assert tags == {"team": "data"}

    d = client.delete_code_interpreter(codeInterpreterId=cid)
    assert status_of(d) == 202
    assert (d["codeInterpreterId"], d["status"]) == (cid, "DELETING")
    wait_gone(lambda: client.get_code_interpreter(codeInterpreterId=cid))
    assert cid not in code_interpreter_ids(client, "CUSTOM")


def test_code_interpreter_duplicate_name(client):
    name = uniq("ci")
    client.create_code_interpreter(**code_interpreter_request(name, full=False))
    expect_error(
        client.create_code_interpreter, "ConflictException", 409,
        **code_interpreter_request(name, full=False),
    )  # fmt: skip


def test_unknown_tools_are_404(client):
    expect_error(client.get_browser, "ResourceNotFoundException", 404, browserId="ghost-AAAAAAAAAA")
    expect_error(
        client.get_code_interpreter, "ResourceNotFoundException", 404,
        codeInterpreterId="ghost-AAAAAAAAAA",
    )  # fmt: skip
    expect_error(
        client.delete_code_interpreter, "ResourceNotFoundException", 404,
        codeInterpreterId="ghost-AAAAAAAAAA",
    )  # fmt: skip
    expect_error(
        client.get_browser_profile, "ResourceNotFoundException", 404, profileId="ghost-AAAAAAAAAA"
    )
    expect_error(
        client.delete_browser_profile, "ResourceNotFoundException", 404,
        profileId="ghost-AAAAAAAAAA",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Browser profiles


def test_browser_profile_lifecycle(client):
    name = uniq("prof")
    c = client.create_browser_profile(
        name=name, description="Signed-in shopping session", tags={"team": "web"}
    )
    assert status_of(c) == 200  # modeled responseCode 200 (not 202)
    assert c["status"] == "READY"  # profile statuses: READY | DELETING | DELETED | SAVING
    pid = c["profileId"]
    assert_id(pid, name)
    assert c["profileArn"] == profile_arn(pid)
    assert isinstance(c["createdAt"], datetime.datetime)

    got = client.get_browser_profile(profileId=pid)
    assert got["profileId"] == pid
    assert got["profileArn"] == profile_arn(pid)
    assert got["name"] == name
    assert got["description"] == "Signed-in shopping session"
    assert got["status"] == "READY"
    assert got["createdAt"] == c["createdAt"]
    assert got["lastUpdatedAt"] >= got["createdAt"]
    assert "lastSavedAt" not in got

    assert pid in profile_ids(client)
    filtered = client.list_browser_profiles(name=name)["profileSummaries"]
    assert [p["profileId"] for p in filtered] == [pid]
    assert filtered[0]["profileArn"] == profile_arn(pid)
    assert filtered[0]["name"] == name
    assert client.list_browser_profiles(name=uniq("nobody"))["profileSummaries"] == []

    tags = client.list_tags_for_resource(resourceArn=profile_arn(pid))["tags"]
    assert tags == {"team": "web"}

    expect_error(client.create_browser_profile, "ConflictException", 409, name=name)

    d = client.delete_browser_profile(profileId=pid)
    assert status_of(d) == 200
    assert d["profileId"] == pid
    assert d["profileArn"] == profile_arn(pid)
    # DeleteBrowserProfile is modeled 200 (synchronous), and the profile status enum has DELETED
    assert d["status"] in ("DELETING", "DELETED")
    wait_gone(lambda: client.get_browser_profile(profileId=pid))
    assert pid not in profile_ids(client)
