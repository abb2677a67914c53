"""LiveKit's server API client for Python (PyPI `livekit-api`, which sends protobuf) against our
dev server, driven one call at a time by tests/server_api_clients.rs.

Usage: python server_api.py --url http://HOST:PORT
Reads one JSON request per line on stdin:
    {"op": "list_rooms", "auth": {"key": K, "secret": S} | {"token": JWT}, "args": {...}}
and answers each with one JSON line on stdout:
    {"ok": <the answer in protobuf's JSON mapping>} or {"error": {"code", "status", "message"}}
The SDK signs its own tokens, with the grants it thinks each call needs, when given a key and
secret; a token is sent as it is.
"""

import argparse
import asyncio
import json
import sys

from google.protobuf.json_format import MessageToDict
from livekit import api


async def perform(lk, op, a):
    if op == "list_rooms":
        return await lk.room.list_rooms(api.ListRoomsRequest(names=a.get("names", [])))
    if op == "list_participants":
        return await lk.room.list_participants(api.ListParticipantsRequest(room=a["room"]))
    if op == "remove_participant":
        request = api.RoomParticipantIdentity(room=a["room"], identity=a["identity"])
        return await lk.room.remove_participant(request)
    if op == "update_participant":
        request = api.UpdateParticipantRequest(
            room=a["room"],
            identity=a["identity"],
            name=a.get("name", ""),
            metadata=a.get("metadata", ""),
            attributes=a.get("attributes", {}),
        )
        return await lk.room.update_participant(request)
    if op == "delete_room":
        return await lk.room.delete_room(api.DeleteRoomRequest(room=a["room"]))
    if op == "create_dispatch":
        request = api.CreateAgentDispatchRequest(
            room=a["room"], agent_name=a.get("agent_name", ""), metadata=a.get("metadata", "")
        )
        return await lk.agent_dispatch.create_dispatch(request)
    if op == "list_dispatch":
        dispatches = await lk.agent_dispatch.list_dispatch(a["room"])
        return {"agentDispatches": [MessageToDict(d) for d in dispatches]}
    if op == "delete_dispatch":
        return await lk.agent_dispatch.delete_dispatch(a["dispatch_id"], a["room"])
    raise SystemExit(f"unknown op {op}")


async def answer(url, request):
    auth = request["auth"]
    if "token" in auth:
        lk = api.LiveKitAPI.with_token(auth["token"], url)
    else:
        lk = api.LiveKitAPI(url, auth["key"], auth["secret"])
    try:
        result = await perform(lk, request["op"], request.get("args", {}))
        if not isinstance(result, dict):
            result = MessageToDict(result)
        return {"ok": result}
    except api.ServerError as e:
        return {"error": {"code": e.code, "status": e.status, "message": e.message}}
    finally:
        await lk.aclose()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        print(json.dumps(await answer(args.url, json.loads(line))), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
