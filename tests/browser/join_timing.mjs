// What trying single-PeerConnection mode (/rtc/v1) first costs livekit-client a join against a
// server without it (our dev server answers 404, and the client falls back to /rtc): join times
// in headless Chromium with the default (singlePeerConnection: true) and with the classic path
// only, alternating. A measurement for the README, not a test.
//
// Usage: node tests/browser/join_timing.mjs --livekit ws://HOST:PORT --token JWT [--joins N]
// Prints one JSON line with the median and every sample of each mode.

import { createServer } from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, '../../web/node_modules/livekit-client/dist/livekit-client.umd.js');
const { values: args } = parseArgs({
  options: { livekit: { type: 'string' }, token: { type: 'string' }, joins: { type: 'string', default: '15' } },
});
if (!args.livekit || !args.token) {
  console.error('usage: node join_timing.mjs --livekit URL --token JWT [--joins N]');
  process.exit(2);
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>join timing</title>
<script src="/livekit-client.umd.js"></script>
<script>
window.measure = async (url, token, joins) => {
  const times = { default: [], v0_only: [] };
  for (let i = 0; i < joins; i++) {
    for (const [mode, singlePeerConnection] of [['default', true], ['v0_only', false]]) {
      const room = new LivekitClient.Room({ singlePeerConnection });
      const started = performance.now();
      await room.connect(url, token);
      times[mode].push(performance.now() - started);
      await room.disconnect();
    }
  }
  return times;
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
const userDataDir = await mkdtemp(join(tmpdir(), 'voice-agent-join-timing-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await context.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}`);
  const times = await page.evaluate(([url, token, joins]) => window.measure(url, token, joins), [args.livekit, args.token, Number(args.joins)]);
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const summary = Object.fromEntries(Object.entries(times).map(([mode, values]) => [mode, { median_ms: Math.round(median(values)), samples: values.map(Math.round) }]));
  console.log(JSON.stringify({ client: 'livekit-client (Chromium)', ...summary }));
} finally {
  await context.close();
  server.close();
  await rm(userDataDir, { recursive: true, force: true });
}
