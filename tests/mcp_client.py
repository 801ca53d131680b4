"""A real MCP client, the official Python SDK (`mcp` from PyPI), against the /mcp door.

Run by tests/mcp.rs with the SDK's venv (scripts/install-mcp-client). Usage:

    mcp_client.py '<plan as JSON>'

The plan: {"url": ..., "token": ..., "calls": [{"name": ..., "arguments": {...}}, ...]}.
Connects over streamable HTTP with `Authorization: Bearer <token>` (the initialize handshake,
so a session), lists the tools, makes the calls in order, and prints one JSON object:
{"server": {...}, "tools": [...], "calls": [{"name", "is_error", "structured", "text"} or
{"name", "error": {"code", "message"}}]}.
"""

import json
import sys

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def main(plan):
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {plan['token']}"},
        timeout=httpx2.Timeout(30.0, read=60.0),
    )
    out = {"calls": []}
    async with http:
        transport = streamable_http_client(plan["url"], http_client=http)
        async with Client(transport, mode="legacy", cache=None) as client:
            out["server"] = dump(await client.session.initialize())
            listed = await client.list_tools()
            out["tools"] = [dump(t) for t in listed.tools]
            for call in plan["calls"]:
                entry = {"name": call["name"]}
                try:
                    result = await client.call_tool(call["name"], call.get("arguments", {}))
                    entry["is_error"] = bool(result.is_error)
                    entry["structured"] = result.structured_content
                    entry["text"] = [c.text for c in result.content if getattr(c, "type", None) == "text"]
                except MCPError as e:
                    entry["error"] = {"code": e.error.code, "message": e.error.message}
                out["calls"].append(entry)
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main, json.loads(sys.argv[1]))
