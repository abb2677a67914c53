// LiveKit's Node SDK (@livekit/rtc-node, on LiveKit's Rust core and libwebrtc) against our dev
// server, with a loopback participant in the room: join, publish speech from a WAV file, be told
// the track has a subscriber (track_subscribed), hear the speech come back (energy over time,
// not silence) and exchange a data message.
//
// Usage: node tests/sdk/node/check.mjs --url ws://HOST:PORT --token JWT --wav FILE --peer IDENTITY
// Prints one JSON line with the measurements; exits 1 on a failed check.

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import {
  AudioFrame,
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
  dispose,
} from '@livekit/rtc-node';

const LISTEN_MS = 6000;
const STEP_TIMEOUT_MS = 20_000;
const RUN_LIMIT_MS = 90_000;
const WINDOW_MS = 50;

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    token: { type: 'string' },
    wav: { type: 'string' },
    peer: { type: 'string' },
  },
});
for (const name of ['url', 'token', 'wav', 'peer']) {
  if (!args[name]) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
}

/** 16-bit PCM samples, rate and channels of a WAV file (its `fmt ` and `data` chunks). */
async function readWav(path) {
  const bytes = await readFile(path);
  let offset = 12;
  let format;
  while (offset + 8 <= bytes.length) {
    const id = bytes.toString('ascii', offset, offset + 4);
    const size = bytes.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      format = { channels: bytes.readUInt16LE(body + 2), rate: bytes.readUInt32LE(body + 4), bits: bytes.readUInt16LE(body + 14) };
    } else if (id === 'data') {
      if (!format || format.bits !== 16) throw new Error(`${path}: 16-bit PCM expected`);
      const samples = new Int16Array(bytes.buffer.slice(bytes.byteOffset + body, bytes.byteOffset + body + size));
      return { samples, ...format };
    }
    offset = body + size + (size % 2);
  }
  throw new Error(`${path}: no data chunk`);
}

const within = (promise, ms, what) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))]);

/** Plays the WAV in a loop, 10 ms per frame; captureFrame paces it to real time. */
async function feed(source, wav, stopped) {
  const step = (wav.rate / 100) * wav.channels;
  while (!stopped.value) {
    for (let start = 0; start + step <= wav.samples.length && !stopped.value; start += step) {
      const chunk = wav.samples.slice(start, start + step);
      await source.captureFrame(new AudioFrame(chunk, wav.rate, wav.channels, step / wav.channels));
    }
  }
}

/** Levels (dBFS) of 50 ms windows of what the track plays, from its first frame on. */
async function listen(track, ms) {
  const stream = new AudioStream(track, 48000, 1);
  const reader = stream.getReader();
  const levels = [];
  const window = (48000 * WINDOW_MS) / 1000;
  let energy = 0;
  let count = 0;
  let started;
  try {
    for (;;) {
      const { value: frame, done } = await reader.read();
      if (done) break;
      started ??= Date.now();
      for (const sample of frame.data) {
        energy += (sample / 32768) ** 2;
        count += 1;
        if (count === window) {
          const rms = Math.sqrt(energy / count);
          levels.push(rms > 0 ? 20 * Math.log10(rms) : -120);
          energy = 0;
          count = 0;
        }
      }
      if (Date.now() - started >= ms) break;
    }
  } finally {
    reader.releaseLock();
    await stream.cancel().catch(() => {});
  }
  return levels;
}

async function check() {
  const wav = await readWav(args.wav);
  const manifest = new URL('./node_modules/@livekit/rtc-node/package.json', import.meta.url);
  const { version } = JSON.parse(await readFile(manifest, 'utf8'));
  const result = { sdk: `@livekit/rtc-node ${version}` };
  const failures = [];
  const room = new Room();
  const peerTrack = new Promise((resolve) => {
    room.on(RoomEvent.TrackSubscribed, (track, _publication, participant) => {
      if (participant.identity === args.peer && track.kind === TrackKind.KIND_AUDIO) resolve(track);
    });
  });
  const dataBack = new Promise((resolve) => {
    room.on(RoomEvent.DataReceived, (payload, participant, _kind, topic) => {
      if (participant?.identity === args.peer) {
        resolve({ from: participant.identity, topic, text: new TextDecoder().decode(payload) });
      }
    });
  });

  const started = Date.now();
  await room.connect(args.url, args.token, { autoSubscribe: true, dynacast: false });
  result.join_ms = Date.now() - started;

  const source = new AudioSource(wav.rate, wav.channels);
  const track = LocalAudioTrack.createAudioTrack('speech', source);
  const options = new TrackPublishOptions({ source: TrackSource.SOURCE_MICROPHONE });
  const publication = await room.localParticipant.publishTrack(track, options);
  const stopped = { value: false };
  const feeder = feed(source, wav, stopped);
  let levels = [];
  try {
    try {
      await within(publication.waitForSubscription(), STEP_TIMEOUT_MS, 'track_subscribed');
      result.track_subscribed = true;
    } catch {
      result.track_subscribed = false;
      failures.push('the server never said the published track has a subscriber (track_subscribed)');
    }
    try {
      const remote = await within(peerTrack, STEP_TIMEOUT_MS, `a track from ${args.peer}`);
      levels = await within(listen(remote, LISTEN_MS), LISTEN_MS + STEP_TIMEOUT_MS, 'audio');
    } catch (error) {
      failures.push(`no audio came from ${args.peer}: ${error.message}`);
    }
    await room.localParticipant.publishData(new TextEncoder().encode('ping from node'), { reliable: true, topic: 'loopback-test' });
    result.received = await within(dataBack, STEP_TIMEOUT_MS, 'data').catch(() => null);
  } finally {
    stopped.value = true;
    await room.disconnect();
    await feeder.catch(() => {});
  }

  const sorted = [...levels].sort((a, b) => a - b);
  const at = (share) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * share))];
  const loud = levels.filter((db) => db > -45).length / Math.max(1, levels.length);
  const spread = sorted.length ? at(0.95) - at(0.05) : 0;
  Object.assign(result, { windows: levels.length, loudFraction: Number(loud.toFixed(3)), dynamicRangeDb: Number(spread.toFixed(1)) });
  if (loud < 0.3) failures.push(`the loopback audio is mostly silent (${(loud * 100).toFixed(0)}% of windows above -45 dBFS)`);
  if (spread < 15) failures.push(`the loopback audio does not vary like speech (${spread.toFixed(1)} dB between quiet and loud windows)`);
  const received = result.received;
  if (!received || received.from !== args.peer || received.topic !== 'loopback-test' || received.text !== 'ping from node') {
    failures.push(`the data message did not come back: ${JSON.stringify(received)}`);
  }
  return { result, failures };
}

const timer = setTimeout(() => {
  console.error(`FAILED: the check took longer than ${RUN_LIMIT_MS} ms`);
  process.exit(1);
}, RUN_LIMIT_MS);
let failures;
try {
  const outcome = await check();
  console.log(JSON.stringify(outcome.result));
  failures = outcome.failures;
} catch (error) {
  failures = [String(error?.stack ?? error)];
} finally {
  clearTimeout(timer);
  await dispose();
}
for (const failure of failures) console.error(`FAILED: ${failure}`);
process.exit(failures.length ? 1 : 0);
