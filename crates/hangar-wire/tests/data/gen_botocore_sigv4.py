"""Regenerate botocore_sigv4.json: real botocore-signed requests used as SigV4 test vectors.

Run with any Python that has boto3 installed:  python gen_botocore_sigv4.py > botocore_sigv4.json
No network is used: a `before-send` hook records each request and aborts it.
"""

import json
import sys

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLESESSIONTOKEN/+=="
REGION = "us-west-2"
ENDPOINT = "http://127.0.0.1:9999"
ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/demo_agent-AbCdEf1234"

captured = []


class Captured(Exception):
    pass


def make_hook(name, secret):
    def hook(request, **_):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        captured.append(
            {
                "name": name,
                "method": request.method,
                "url": request.url,
                "headers": [[k, v.decode() if isinstance(v, bytes) else v] for k, v in request.headers.items()],
                "body": body.decode("utf-8"),
                "secret_access_key": secret,
                "region": REGION,
                "service": "bedrock-agentcore",
            }
        )
        raise Captured()

    return hook


def client(service, name, token=None):
    c = boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
    )
    c.meta.events.register("before-send", make_hook(name, SECRET))
    return c


def call(service, name, method, token=None, **kwargs):
    c = client(service, name, token)
    try:
        getattr(c, method)(**kwargs)
    except Captured:
        pass


call("bedrock-agentcore-control", "create_agent_runtime", "create_agent_runtime",
     agentRuntimeName="demo_agent",
     agentRuntimeArtifact={"containerConfiguration": {"containerUri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/demo:latest"}},
     roleArn="arn:aws:iam::123456789012:role/demo", networkConfiguration={"networkMode": "PUBLIC"},
     clientToken="a" * 40)
call("bedrock-agentcore-control", "get_agent_runtime_version", "get_agent_runtime",
     agentRuntimeId="demo_agent-AbCdEf1234", agentRuntimeVersion="2")
call("bedrock-agentcore-control", "list_agent_runtimes", "list_agent_runtimes", maxResults=5, nextToken="tok+/=en")
call("bedrock-agentcore-control", "delete_agent_runtime", "delete_agent_runtime",
     agentRuntimeId="demo_agent-AbCdEf1234", clientToken="b" * 40)
call("bedrock-agentcore-control", "tag_resource", "tag_resource", resourceArn=ARN, tags={"env": "dev", "team": "a b"})
call("bedrock-agentcore-control", "untag_resource", "untag_resource", resourceArn=ARN, tagKeys=["env", "team", "a b/c"])
call("bedrock-agentcore-control", "list_tags_session_token", "list_tags_for_resource", token=TOKEN, resourceArn=ARN)
call("bedrock-agentcore", "invoke_agent_runtime", "invoke_agent_runtime",
     agentRuntimeArn=ARN, qualifier="DEFAULT", runtimeSessionId="s" * 40, payload=b'{"prompt":"hi"}')

# A presigned (query-string) GET, as WebSocket clients send it.
creds = botocore.credentials.Credentials(AKID, SECRET)
req = botocore.awsrequest.AWSRequest(
    method="GET",
    url=ENDPOINT + "/runtimes/" + ARN.replace(":", "%3A").replace("/", "%2F") + "/ws?qualifier=DEFAULT",
    headers={},
)
botocore.auth.SigV4QueryAuth(creds, "bedrock-agentcore", REGION, expires=300).add_auth(req)
prepared = req.prepare()
captured.append(
    {
        "name": "presigned_ws",
        "method": prepared.method,
        "url": prepared.url,
        "headers": [[k, v.decode() if isinstance(v, bytes) else v] for k, v in prepared.headers.items()],
        "body": "",
        "secret_access_key": SECRET,
        "region": REGION,
        "service": "bedrock-agentcore",
    }
)

json.dump({"access_key_id": AKID, "requests": captured}, sys.stdout, indent=1)
sys.stdout.write("\n")
