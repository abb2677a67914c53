// livekit-client (npm, in Debian's Chromium) against our LiveKit dev server, with a loopback
// participant in the room. Chromium's fake microphone plays a speech WAV; the loopback sends the
// audio and any data back. Checks: the server tells the browser its microphone track has a
// subscriber (track_subscribed), the browser subscribes to the loopback's track, what it hears
// is speech (WebAudio energy over time, not silence), and a data message travels each way.
//
// Usage: node tests/browser/loopback.mjs --livekit ws://HOST:PORT --token JWT --wav FILE
//                                        --peer IDENTITY
// Prints one JSON line with the measurements; exits 1 on a failed check.

import { createServer } from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, '../../web/node_modules/livekit-client/dist/livekit-client.umd.js');
const LISTEN_MS = 6000;
const RUN_LIMIT_MS = 90_000;

const { values: args } = parseArgs({
  options: {
    livekit: { type: 'string' },
    token: { type: 'string' },
    wav: { type: 'string' },
    peer: { type: 'string' },
  },
});
for (const name of ['livekit', 'token', 'wav', 'peer']) {
  if (!args[name]) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
}

// The page runs in the browser: join, publish the (fake) microphone, wait for the loopback's
// track, measure its energy, and exchange one data message.
const PAGE = `<!doctype html><meta charset="utf-8"><title>loopback</title>
<script src="/livekit-client.umd.js"></script>
<script>
window.runCheck = async (url, token, peer, listenMs) => {
  const { Room, RoomEvent, Track } = LivekitClient;
  const room = new Room({ adaptiveStream: false, dynacast: false });
  const result = { subscribed: false, localTrackSubscribed: false, received: null, levels: [], events: [] };
  const heard = new Promise((resolve) => room.on(RoomEvent.LocalTrackSubscribed, () => resolve(true)));
  const subscribed = new Promise((resolve) => {
    room.on(RoomEvent.TrackSubscribed, (track, _pub, participant) => {
      result.events.push('subscribed ' + participant.identity + ' ' + track.kind);
      if (track.kind === Track.Kind.Audio && participant.identity === peer) resolve(track);
    });
  });
  const echoed = new Promise((resolve) => {
    room.on(RoomEvent.DataReceived, (payload, participant, _kind, topic) => {
      resolve({ from: participant && participant.identity, topic, text: new TextDecoder().decode(payload) });
    });
  });
  await room.connect(url, token);
  await room.localParticipant.setMicrophoneEnabled(true);
  result.localTrackSubscribed = await Promise.race([heard, new Promise((resolve) => setTimeout(() => resolve(false), 20000))]);
  const track = await Promise.race([subscribed, new Promise((_, reject) => setTimeout(() => reject(new Error('no track from ' + peer)), 20000))]);
  result.subscribed = true;

  const context = new AudioContext();
  await context.resume();
  const source = context.createMediaStreamSource(new MediaStream([track.mediaStreamTrack]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  // Chromium only pulls remote WebRTC audio that is played somewhere; a muted element is enough.
  const element = track.attach();
  element.muted = true;
  document.body.appendChild(element);
  const buffer = new Float32Array(analyser.fftSize);
  const started = performance.now();
  while (performance.now() - started < listenMs) {
    analyser.getFloatTimeDomainData(buffer);
    let sum = 0;
    for (const v of buffer) sum += v * v;
    const rms = Math.sqrt(sum / buffer.length);
    result.levels.push(rms > 0 ? 20 * Math.log10(rms) : -120);
    await new Promise((r) => setTimeout(r, 50));
  }

  await room.localParticipant.publishData(new TextEncoder().encode('ping from the browser'), { reliable: true, topic: 'loopback-test' });
  result.received = await Promise.race([echoed, new Promise((resolve) => setTimeout(() => resolve(null), 10000))]);
  await room.disconnect();
  await context.close();
  return result;
};
</script>`;

const server = createServer(async (request, response) => {
  if (request.url === '/livekit-client.umd.js') {
    response.writeHead(200, { 'content-type': 'text/javascript' });
    response.end(await readFile(bundle));
  } else {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end(PAGE);
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const userDataDir = await mkdtemp(join(tmpdir(), 'voice-agent-loopback-'));
let context;
const failures = [];
const timer = setTimeout(() => {
  console.error('the check took longer than ' + RUN_LIMIT_MS + ' ms');
  process.exit(1);
}, RUN_LIMIT_MS);
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${args.wav}`, '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = await context.newPage();
  const logs = [];
  page.on('console', (message) => logs.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => logs.push(`pageerror: ${error.message}`));
  await page.goto(origin);
  const result = await page.evaluate(([url, token, peer, listenMs]) => window.runCheck(url, token, peer, listenMs), [args.livekit, args.token, args.peer, LISTEN_MS]);

  const levels = result.levels;
  const loud = levels.filter((db) => db > -45).length / levels.length;
  const sorted = [...levels].sort((a, b) => a - b);
  const range = sorted[Math.floor(sorted.length * 0.95)] - sorted[Math.floor(sorted.length * 0.05)];
  const summary = { subscribed: result.subscribed, localTrackSubscribed: result.localTrackSubscribed, windows: levels.length, loudFraction: loud, dynamicRangeDb: range, peakDb: sorted[sorted.length - 1], received: result.received };
  console.log(JSON.stringify(summary));
  if (!result.subscribed) failures.push('the browser did not subscribe to the loopback track');
  if (!result.localTrackSubscribed) failures.push('the server never said the microphone track has a subscriber (track_subscribed)');
  if (loud < 0.3) failures.push(`the loopback audio is mostly silent (${(loud * 100).toFixed(0)}% of windows above -45 dBFS)`);
  if (range < 15) failures.push(`the loopback audio does not vary like speech (${range.toFixed(1)} dB between quiet and loud windows)`);
  if (!result.received || result.received.text !== 'ping from the browser' || result.received.from !== args.peer || result.received.topic !== 'loopback-test') {
    failures.push('the data message did not come back: ' + JSON.stringify(result.received));
  }
  if (failures.length) console.error(logs.join('\n'));
} catch (error) {
  failures.push(String(error && error.stack ? error.stack : error));
} finally {
  clearTimeout(timer);
  if (context) await context.close();
  server.close();
  await rm(userDataDir, { recursive: true, force: true });
}
for (const failure of failures) console.error('FAILED: ' + failure);
process.exit(failures.length ? 1 : 0);
