// The product on one machine (`agent-worker dev`) as a person uses it: open the page, connect
// with Chromium's fake microphone playing a speech WAV, and check that the dispatched agent
// joins and says it is listening, and that its audio (the loopback session sends our speech
// back) is speech, not silence: audio flows both ways.
//
// Usage: node tests/browser/product.mjs --url http://127.0.0.1:WEB_PORT --wav FILE
// Prints one JSON line with the measurements; exits 1 on a failed check.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const RUN_LIMIT_MS = 90_000;
const LISTEN_MS = 5000;

const { values: args } = parseArgs({ options: { url: { type: 'string' }, wav: { type: 'string' } } });
if (!args.url || !args.wav) {
  console.error('usage: node tests/browser/product.mjs --url URL --wav FILE');
  process.exit(2);
}

const failures = [];
const userDataDir = await mkdtemp(join(tmpdir(), 'voice-agent-product-'));
const timer = setTimeout(() => {
  console.error(`the check took longer than ${RUN_LIMIT_MS} ms`);
  process.exit(1);
}, RUN_LIMIT_MS);
let context;
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
  await page.goto(args.url);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="agent-select"] option').length > 0);
  await page.fill('[data-testid="name-input"]', 'Browser Caller');
  await page.click('[data-testid="connect-button"]');

  await page.waitForFunction(() => window.voiceAgent.state.agentState === 'listening', null, { timeout: 30_000 });
  const stateText = await page.textContent('[data-testid="agent-state"]');

  const levels = await page.evaluate(async (listenMs) => {
    const room = window.voiceAgent.room;
    const agent = [...room.remoteParticipants.values()].find((p) => p.identity.startsWith('agent-'));
    const deadline = performance.now() + 15000;
    let track;
    while (!track && performance.now() < deadline) {
      track = [...agent.audioTrackPublications.values()].map((p) => p.track).find(Boolean);
      if (!track) await new Promise((r) => setTimeout(r, 100));
    }
    if (!track) return null;
    const audio = new AudioContext();
    await audio.resume();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 2048;
    audio.createMediaStreamSource(new MediaStream([track.mediaStreamTrack])).connect(analyser);
    const buffer = new Float32Array(analyser.fftSize);
    const levels = [];
    const started = performance.now();
    while (performance.now() - started < listenMs) {
      analyser.getFloatTimeDomainData(buffer);
      let sum = 0;
      for (const v of buffer) sum += v * v;
      const rms = Math.sqrt(sum / buffer.length);
      levels.push(rms > 0 ? 20 * Math.log10(rms) : -120);
      await new Promise((r) => setTimeout(r, 50));
    }
    await audio.close();
    return levels;
  }, LISTEN_MS);

  if (!levels) {
    failures.push('the agent published no audio track');
  } else {
    const loud = levels.filter((db) => db > -45).length / levels.length;
    const sorted = [...levels].sort((a, b) => a - b);
    const range = sorted[Math.floor(sorted.length * 0.95)] - sorted[Math.floor(sorted.length * 0.05)];
    console.log(JSON.stringify({ agentState: stateText, windows: levels.length, loudFraction: loud, dynamicRangeDb: range }));
    if (loud < 0.3) failures.push(`the agent's audio is mostly silent (${(loud * 100).toFixed(0)}% of windows above -45 dBFS)`);
    if (range < 15) failures.push(`the agent's audio does not vary like speech (${range.toFixed(1)} dB)`);
  }
  await page.click('[data-testid="disconnect-button"]');
  await page.waitForFunction(() => window.voiceAgent.state.connection === 'disconnected', null, { timeout: 10_000 });
  if (failures.length) console.error(logs.join('\n'));
} catch (error) {
  failures.push(String(error && error.stack ? error.stack : error));
} finally {
  clearTimeout(timer);
  if (context) await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}
for (const failure of failures) console.error('FAILED: ' + failure);
process.exit(failures.length ? 1 : 0);
