// LiveKit's server API client for Node (npm `livekit-server-sdk`, which sends JSON) against our
// dev server, driven one call at a time by tests/server_api_clients.rs.
//
// Usage: node server_api.mjs --url http://HOST:PORT
// Reads one JSON request per line on stdin:
//   {"op": "list_rooms", "auth": {"key": K, "secret": S} | {"token": JWT}, "args": {...}}
// and answers each with one JSON line on stdout:
//   {"ok": <the answer in protobuf's JSON mapping>} or {"error": {"code", "status", "message"}}
// The SDK signs its own tokens, with the grants it thinks each call needs, when given a key and
// secret; a token is sent as it is.

import { createInterface } from 'node:readline';
import { AgentDispatchClient, RoomServiceClient, TwirpError } from 'livekit-server-sdk';

const url = process.argv[process.argv.indexOf('--url') + 1];

function clients(auth) {
  const [key, secret, options] = auth.token ? [undefined, undefined, { token: auth.token }] : [auth.key, auth.secret, {}];
  return { rooms: new RoomServiceClient(url, key, secret, options), dispatch: new AgentDispatchClient(url, key, secret, options) };
}

async function perform({ rooms, dispatch }, op, a) {
  switch (op) {
    case 'list_rooms':
      return { rooms: (await rooms.listRooms(a.names)).map((r) => r.toJson()) };
    case 'list_participants':
      return { participants: (await rooms.listParticipants(a.room)).map((p) => p.toJson()) };
    case 'remove_participant':
      await rooms.removeParticipant(a.room, a.identity);
      return {};
    case 'update_participant':
      return (
        await rooms.updateParticipant(a.room, a.identity, { name: a.name, metadata: a.metadata, attributes: a.attributes ?? {} })
      ).toJson();
    case 'delete_room':
      await rooms.deleteRoom(a.room);
      return {};
    case 'create_dispatch':
      return (await dispatch.createDispatch(a.room, a.agent_name ?? '', { metadata: a.metadata })).toJson();
    case 'list_dispatch':
      return { agentDispatches: (await dispatch.listDispatch(a.room)).map((d) => d.toJson()) };
    case 'delete_dispatch':
      await dispatch.deleteDispatch(a.dispatch_id, a.room);
      return {};
    default:
      throw new Error(`unknown op ${op}`);
  }
}

async function answer(request) {
  try {
    return { ok: await perform(clients(request.auth), request.op, request.args ?? {}) };
  } catch (e) {
    if (e instanceof TwirpError) {
      return { error: { code: e.code, status: e.status, message: e.message } };
    }
    throw e;
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  process.stdout.write(`${JSON.stringify(await answer(JSON.parse(line)))}\n`);
}
