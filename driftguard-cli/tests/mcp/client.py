#!/usr/bin/env python3
"""DriftGuard's MCP server driven by a real MCP client: the official Python SDK (`mcp` on PyPI).

    client.py stdio ENV OBJECT -- COMMAND [ARGS...]   # starts `driftguard mcp` itself
    client.py http ENV OBJECT URL TOKEN               # a running `driftguard serve`

Initializes a session, lists the tools, calls each of them (and a few with bad arguments),
lists and reads the resources, lists and gets the prompt; over HTTP, also checks that a
missing or wrong bearer token is refused. Prints one JSON document with what it saw, for the
Rust test (driftguard-cli/tests/mcp.rs) to judge. With MCP_TRANSCRIPT=FILE, writes every
JSON-RPC message exchanged (client to server `->`, server to client `<-`) to FILE.
"""

import json
import os
import sys

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class Tap:
    """Forwards the transport's streams and records every JSON-RPC message."""

    def __init__(self):
        self.log = []

    async def wrap(self, tg, read, write):
        in_send, in_recv = anyio.create_memory_object_stream(100)
        out_send, out_recv = anyio.create_memory_object_stream(100)

        async def pump_in():
            async with in_send:
                async for m in read:
                    if not isinstance(m, Exception):
                        self.log.append({"dir": "<-", "message": dump(m.message)})
                    await in_send.send(m)

        async def pump_out():
            async with out_recv:
                async for m in out_recv:
                    self.log.append({"dir": "->", "message": dump(m.message)})
                    await write.send(m)

        tg.start_soon(pump_in)
        tg.start_soon(pump_out)
        return in_recv, out_send


def tool_result(r):
    text = [c.text for c in r.content if getattr(c, "type", "") == "text"]
    return {
        "isError": bool(r.is_error),
        "structured": r.structured_content,
        "text": text,
    }


async def protocol_error(coro):
    try:
        r = await coro
    except MCPError as e:
        return {"code": e.code, "message": e.message}
    return {"unexpected_success": dump(r)}


async def exercise(session, env, obj):
    out = {}
    init = await session.initialize()
    out["initialize"] = {
        "protocolVersion": init.protocol_version,
        "serverInfo": dump(init.server_info),
        "capabilities": dump(init.capabilities),
        "instructions": init.instructions,
    }
    tools = await session.list_tools()
    out["tools"] = {
        t.name: {
            "description": t.description,
            "inputSchema": dump(t.input_schema) if hasattr(t.input_schema, "model_dump") else t.input_schema,
            "outputSchema": (dump(t.output_schema) if hasattr(t.output_schema, "model_dump") else t.output_schema),
            "annotations": dump(t.annotations) if t.annotations else None,
        }
        for t in tools.tools
    }

    calls = {}

    async def call(key, name, args):
        calls[key] = tool_result(await session.call_tool(name, args))
        return calls[key]

    await call("list_environments", "list_environments", {})
    await call("scan_now", "scan_now", {"environment": env})
    drifts = await call("list_drifts", "list_drifts", {"environment": env, "sort": "object"})
    items = (drifts["structured"] or {}).get("items", [])
    mine = [d for d in items if d["object"]["reference"].lower().endswith(obj.split("/", 1)[1].lower())]
    episode = (mine or items or [{"episode": "none"}])[0]["episode"]
    out["episode"] = episode
    await call("list_drifts_high", "list_drifts", {"environment": env, "severity": "high", "limit": 5})
    await call("explain_drift", "explain_drift", {"episode": episode})
    await call("explain_drift_by_object", "explain_drift", {"environment": env, "object": obj})
    await call("object_history", "object_history", {"environment": env, "object": obj, "limit": 10})
    await call("suggest_remediation", "suggest_remediation", {"episode": episode})
    await call("suggest_remediation_adopt", "suggest_remediation", {"episode": episode, "action": "adopt"})
    # things that do not exist: tool results marked as errors
    await call("explain_unknown_episode", "explain_drift", {"episode": "no-such-episode"})
    await call("scan_unknown_environment", "scan_now", {"environment": "no-such-env"})
    out["calls"] = calls

    # bad arguments: protocol errors
    out["errors"] = {
        "bad_severity": await protocol_error(
            session.call_tool("list_drifts", {"environment": env, "severity": "extreme"})),
        "unknown_argument": await protocol_error(
            session.call_tool("list_drifts", {"colour": "red"})),
        "missing_argument": await protocol_error(session.call_tool("scan_now", {})),
        "wrong_type": await protocol_error(
            session.call_tool("object_history", {"environment": env, "object": obj, "limit": "many"})),
        "zero_limit": await protocol_error(
            session.call_tool("list_drifts", {"limit": 0})),
        "bad_action": await protocol_error(
            session.call_tool("suggest_remediation", {"episode": episode, "action": "apply"})),
        "explain_without_target": await protocol_error(session.call_tool("explain_drift", {})),
        "unknown_tool": await protocol_error(session.call_tool("drop_database", {})),
    }

    resources = await session.list_resources()
    templates = await session.list_resource_templates()
    report_uri = f"driftguard://environments/{env}/report"
    report = await session.read_resource(report_uri)
    drift = await session.read_resource(f"driftguard://drifts/{episode}")
    out["resources"] = {
        "list": [dump(r) for r in resources.resources],
        "templates": [dump(t) for t in templates.resource_templates],
        "report": json.loads(report.contents[0].text),
        "report_mime": report.contents[0].mime_type,
        "drift": json.loads(drift.contents[0].text),
        "unknown": await protocol_error(session.read_resource("driftguard://nothing/here")),
    }

    prompts = await session.list_prompts()
    prompt = await session.get_prompt("triage_open_drifts", {"environment": env})
    out["prompts"] = {
        "list": [dump(p) for p in prompts.prompts],
        "triage": dump(prompt),
        "unknown_environment": await protocol_error(
            session.get_prompt("triage_open_drifts", {"environment": "no-such-env"})),
    }
    return out


async def over_stdio(env, obj, command):
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    tap = Tap()
    async with stdio_client(params) as (read, write):
        async with anyio.create_task_group() as tg:
            read, write = await tap.wrap(tg, read, write)
            async with ClientSession(read, write) as session:
                out = await exercise(session, env, obj)
            tg.cancel_scope.cancel()
    out["transport"] = "stdio"
    return out, tap.log


async def scan_as(url, env, token):
    """scan_now with a token that may only read: the tool's result (an error is expected)."""
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                r = await session.call_tool("scan_now", {"environment": env})
                return {"is_error": bool(r.is_error),
                        "text": " ".join(c.text for c in r.content if hasattr(c, "text"))[:500]}


async def over_http(env, obj, url, token, read_only=None):
    tap = Tap()
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with anyio.create_task_group() as tg:
                read, write = await tap.wrap(tg, read, write)
                async with ClientSession(read, write) as session:
                    out = await exercise(session, env, obj)
                tg.cancel_scope.cancel()
    out["transport"] = "http"

    # the same authentication as the API: no token or a wrong one is refused
    init = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "auth-check", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient() as raw:
        none = await raw.post(url, json=init, headers=headers)
        wrong = await raw.post(url, json=init, headers={**headers, "Authorization": "Bearer wrong-token"})
    refused = None
    try:
        bad = create_mcp_http_client(headers={"Authorization": "Bearer wrong-token"})
        async with bad:
            with anyio.fail_after(20):
                async with streamable_http_client(url, http_client=bad) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
    except BaseException as e:  # the SDK raises an exception group
        refused = repr(e)[:300]
    out["auth"] = {
        "no_token": {"status": none.status_code, "body": none.text[:300],
                     "www_authenticate": none.headers.get("www-authenticate")},
        "wrong_token": {"status": wrong.status_code, "body": wrong.text[:300]},
        "sdk_with_wrong_token": refused,
    }
    if read_only:
        out["scan_as_read_only"] = await scan_as(url, env, read_only)
    return out, tap.log


def main():
    mode, env, obj = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "stdio":
        rest = sys.argv[4:]
        if rest and rest[0] == "--":
            rest = rest[1:]
        out, log = anyio.run(over_stdio, env, obj, rest)
    elif mode == "http":
        out, log = anyio.run(over_http, env, obj, *sys.argv[4:7])
    else:
        sys.exit(f"unknown mode {mode}")
    path = os.environ.get("MCP_TRANSCRIPT")
    if path:
        with open(path, "w") as f:
            json.dump(log, f, indent=1)
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
