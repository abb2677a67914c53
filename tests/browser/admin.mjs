// The operator's page (/admin on the token server) as an operator uses it: open it, give the
// admin token, see the call going on in --room with its agent, duration and state, end it, and
// read its call record once the worker has delivered it: its transcript (which must hold
// --answer) and its per-turn latency chart.
//
// Usage: node tests/browser/admin.mjs --url URL --token ADMIN_TOKEN --room ROOM --answer TEXT
// Prints one JSON line with what the page showed; exits 1 on a failed check. With ADMIN_SCREENSHOT=FILE
// set, saves a picture of the page with the record open, to look at.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const RUN_LIMIT_MS = 90_000;
const WAIT_MS = 30_000;

const { values: args } = parseArgs({
  options: { url: { type: 'string' }, token: { type: 'string' }, room: { type: 'string' }, answer: { type: 'string' } },
});
if (!args.url || !args.token || !args.room || !args.answer) {
  console.error('usage: node tests/browser/admin.mjs --url URL --token ADMIN_TOKEN --room ROOM --answer TEXT');
  process.exit(2);
}

const failures = [];
const userDataDir = await mkdtemp(join(tmpdir(), 'voice-agent-admin-'));
const timer = setTimeout(() => {
  console.error(`the check took longer than ${RUN_LIMIT_MS} ms`);
  process.exit(1);
}, RUN_LIMIT_MS);
let context;
const logs = [];
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI.split('?')[0] || 'inline code'}`);
    });
  });
  page.on('console', (message) => logs.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => logs.push(`pageerror: ${error.message}`));
  page.on('dialog', (dialog) => dialog.accept());
  const apiHeaders = [];
  page.on('response', (response) => {
    if (response.url().includes('/admin/api/')) apiHeaders.push(response.headers()['cache-control']);
  });

  const loaded = await page.goto(`${args.url}/admin`);
  const headers = loaded?.headers() ?? {};
  if (!(headers['content-security-policy'] ?? '').includes("script-src 'self'")) failures.push('no strict CSP on /admin');
  if (headers['cache-control'] !== 'no-store') failures.push(`/admin is cacheable: ${headers['cache-control']}`);

  await page.fill('[data-testid="token-input"]', 'not-the-token');
  await page.click('[data-testid="token-submit"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="status"]').textContent.includes('wrong'));
  if (await page.isVisible('[data-testid="calls"]')) failures.push('a wrong token opened the page');

  await page.fill('[data-testid="token-input"]', args.token);
  await page.click('[data-testid="token-submit"]');
  const row = page.locator(`tr[data-testid="call"][data-room="${args.room}"]`);
  await row.waitFor({ timeout: WAIT_MS });
  const call = {
    agent: await row.locator('[data-testid="call-agent"]').textContent(),
    duration: await row.locator('[data-testid="call-duration"]').textContent(),
    state: await row.locator('[data-testid="call-state"]').textContent(),
  };
  await row.locator('[data-testid="end-call"]').click();
  await row.waitFor({ state: 'detached', timeout: WAIT_MS });

  const record = page.locator(`details[data-testid="record"][data-room="${args.room}"]`);
  await page.waitForFunction(
    (room) => [...document.querySelectorAll(`details[data-testid="record"][data-room="${room}"] [data-testid="record-status"]`)]
      .some((badge) => badge.textContent === 'delivered'),
    args.room,
    { timeout: WAIT_MS },
  );
  await record.locator('summary').click();
  const transcript = await record.locator('[data-testid="transcript-line"]').allTextContents();
  if (!transcript.some((line) => line.includes(args.answer))) failures.push(`the transcript lacks the answer: ${transcript}`);
  const chart = record.locator('[data-testid="latency-chart"]');
  const bars = await chart.locator('[data-testid="latency-bar"]').count();
  if (bars < 1) failures.push('the latency chart has no bar');
  const chartLabel = await chart.getAttribute('aria-label');
  if (process.env.ADMIN_SCREENSHOT) await page.screenshot({ path: process.env.ADMIN_SCREENSHOT, fullPage: true });
  const violations = await page.evaluate(() => window.cspViolations);
  if (violations.length) failures.push(`CSP violations: ${violations}`);
  if (apiHeaders.some((value) => value !== 'no-store')) failures.push(`an API answer is cacheable: ${apiHeaders}`);
  console.log(JSON.stringify({ call, transcript, bars, chartLabel }));
} catch (e) {
  failures.push(`${e.message}\n${logs.join('\n')}`);
} finally {
  clearTimeout(timer);
  await context?.close();
  await rm(userDataDir, { recursive: true, force: true });
}
if (failures.length) {
  console.error(failures.join('\n'));
  process.exit(1);
}
