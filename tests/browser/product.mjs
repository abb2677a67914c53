// The product on one machine (`agent-worker dev`) as a person uses it: open the page, connect
// with Chromium's fake microphone playing a speech WAV once, and check the conversation the page
// shows: the agent's greeting, the person's words, the agent's answer, all final; and that the
// agent's audio is loud while it speaks and silent while it listens.
//
// With --typed, the person then types a message in the page's text box, and the agent's
// answer to it (--typed-answer) must follow it in the transcript.
//
// Usage: node tests/browser/product.mjs --url URL --wav FILE --greeting TEXT --user TEXT --answer TEXT
//        [--typed TEXT --typed-answer TEXT]
// Prints one JSON line with the measurements; exits 1 on a failed check.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const RUN_LIMIT_MS = 120_000;

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' }, wav: { type: 'string' }, greeting: { type: 'string' },
    user: { type: 'string' }, answer: { type: 'string' },
    typed: { type: 'string' }, 'typed-answer': { type: 'string' },
  },
});
if (!args.url || !args.wav || !args.greeting || !args.user || !args.answer) {
  console.error('usage: node tests/browser/product.mjs --url URL --wav FILE --greeting TEXT --user TEXT --answer TEXT');
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
      `--use-file-for-fake-audio-capture=${args.wav}%noloop`, '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI.split('?')[0] || 'inline code'}`);
    });
  });
  const logs = [];
  page.on('console', (message) => logs.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => logs.push(`pageerror: ${error.message}`));
  const loaded = await page.goto(args.url);
  if (!(loaded?.headers()['content-security-policy'] ?? '').includes("frame-ancestors 'none'")) {
    failures.push('the page was served without its Content-Security-Policy');
  }
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="agent-select"] option').length > 0);
  await page.fill('[data-testid="name-input"]', 'Browser Caller');
  await page.click('[data-testid="connect-button"]');

  // Samples the agent's audio level every 50 ms with the state the page shows at that moment.
  const sampling = await page.evaluate(async () => {
    const deadline = performance.now() + 30_000;
    let track;
    while (!track && performance.now() < deadline) {
      const room = window.voiceAgent.room;
      const agent = room && [...room.remoteParticipants.values()].find((p) => p.identity.startsWith('agent-'));
      track = agent && [...agent.audioTrackPublications.values()].map((p) => p.track).find(Boolean);
      if (!track) await new Promise((r) => setTimeout(r, 50));
    }
    if (!track) return false;
    const audio = new AudioContext();
    await audio.resume();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 2048;
    audio.createMediaStreamSource(new MediaStream([track.mediaStreamTrack])).connect(analyser);
    const buffer = new Float32Array(analyser.fftSize);
    window.levels = [];
    window.sampler = setInterval(() => {
      analyser.getFloatTimeDomainData(buffer);
      let sum = 0;
      for (const v of buffer) sum += v * v;
      const rms = Math.sqrt(sum / buffer.length);
      window.levels.push({ t: performance.now(), db: rms > 0 ? 20 * Math.log10(rms) : -120, state: window.voiceAgent.state.agentState });
    }, 50);
    return true;
  });
  if (!sampling) throw new Error('the agent published no audio track');

  await page.waitForFunction(
    () => {
      const finals = (speaker) => window.voiceAgent.state.transcripts.filter((t) => t.speaker === speaker && t.final);
      return finals('Agent').length >= 2 && finals('You').length >= 1;
    },
    null,
    { timeout: 60_000 },
  ).catch(() => {});
  await page.waitForFunction(() => window.voiceAgent.state.agentState === 'listening', null, { timeout: 10_000 });
  await page.waitForTimeout(1500);
  const seen = await page.evaluate(() => {
    clearInterval(window.sampler);
    const shown = [...document.querySelectorAll('[data-testid="transcript"] li:not([hidden])')].map((li) => ({
      who: li.classList.contains('from-user') ? 'You' : 'Agent',
      text: li.querySelector('.text').textContent,
      interim: li.classList.contains('interim'),
    }));
    return { transcripts: window.voiceAgent.state.transcripts, shown, levels: window.levels };
  });

  const expected = [
    { who: 'Agent', text: args.greeting, interim: false },
    { who: 'You', text: args.user, interim: false },
    { who: 'Agent', text: args.answer, interim: false },
  ];
  if (JSON.stringify(seen.shown) !== JSON.stringify(expected)) {
    failures.push(`the page shows ${JSON.stringify(seen.shown)}, expected ${JSON.stringify(expected)}`);
  }

  // Audio: loud while speaking, silent while listening (ignoring 400 ms around each change of
  // state, since the state attribute and the audio travel separately).
  const settled = seen.levels.filter((sample, i) => {
    const near = seen.levels.filter((other) => Math.abs(other.t - sample.t) < 400);
    return near.every((other) => other.state === sample.state);
  });
  const fraction = (samples, test) => (samples.length ? samples.filter(test).length / samples.length : NaN);
  const speaking = settled.filter((s) => s.state === 'speaking');
  const listening = settled.filter((s) => s.state === 'listening');
  const loudWhileSpeaking = fraction(speaking, (s) => s.db > -45);
  const quietWhileListening = fraction(listening, (s) => s.db < -60);
  console.log(JSON.stringify({ shown: seen.shown, speakingWindows: speaking.length, listeningWindows: listening.length, loudWhileSpeaking, quietWhileListening }));
  if (!(loudWhileSpeaking > 0.8)) failures.push(`the agent is not heard while it speaks (${loudWhileSpeaking})`);
  if (!(quietWhileListening > 0.95)) failures.push(`the agent is not silent while it listens (${quietWhileListening})`);

  if (args.typed) {
    const shown = () => [...document.querySelectorAll('[data-testid="transcript"] li:not([hidden])')].map((li) => ({
      who: li.classList.contains('from-user') ? 'You' : 'Agent',
      text: li.querySelector('.text').textContent,
      interim: li.classList.contains('interim'),
    }));
    await page.fill('[data-testid="chat-input"]', args.typed);
    await page.click('[data-testid="chat-send"]');
    await page.waitForFunction(
      (answer) => window.voiceAgent.state.transcripts.some((t) => t.speaker === 'Agent' && t.final && t.text === answer),
      args['typed-answer'],
      { timeout: 30_000 },
    ).catch(() => {});
    const after = await page.evaluate(shown);
    const typedExpected = [
      ...expected,
      { who: 'You', text: args.typed, interim: false },
      { who: 'Agent', text: args['typed-answer'], interim: false },
    ];
    if (JSON.stringify(after) !== JSON.stringify(typedExpected)) {
      failures.push(`after typing, the page shows ${JSON.stringify(after)}, expected ${JSON.stringify(typedExpected)}`);
    }
    if (await page.inputValue('[data-testid="chat-input"]') !== '') failures.push('the text box kept the sent message');
  }

  await page.click('[data-testid="disconnect-button"]');
  await page.waitForFunction(() => window.voiceAgent.state.connection === 'disconnected', null, { timeout: 10_000 });
  if (!(await page.isDisabled('[data-testid="chat-input"]'))) failures.push('the text box stays usable outside a call');
  const violations = await page.evaluate(() => window.cspViolations);
  if (violations.length) failures.push(`the page broke its Content-Security-Policy: ${violations.join(' | ')}`);
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
