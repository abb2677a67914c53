// Drives the voice agent page in Debian's Chromium against a running token server, the way a
// person would: load it, pick a language, type a name, connect.
//
// Usage: node tests/browser/page.mjs --url http://127.0.0.1:PORT
//
// The token server must hand out a LiveKit URL nobody listens on: the page is then expected to
// explain that the voice server cannot be reached and to let the person try again.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
];
const RUN_LIMIT_MS = 60_000;
const VOICE_SERVER_ERROR_MS = 20_000;
const STEP_MS = 10_000;

class CheckFailed extends Error {}

const byTestId = (id) => `[data-testid="${id}"]`;

await main();

async function main() {
  const baseUrl = readBaseUrl();
  const userDataDir = await mkdtemp(join(tmpdir(), 'voice-agent-page-'));
  let context;
  let timer;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
    });
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new CheckFailed(`the run took longer than ${RUN_LIMIT_MS / 1000} s`)), RUN_LIMIT_MS);
    });
    const checks = runChecks(context, baseUrl);
    // Past the deadline the checks fail against a closed browser; that echo is not news.
    checks.catch(() => {});
    await Promise.race([checks, deadline]);
    console.log('all page checks passed');
  } catch (error) {
    console.error(`FAIL ${error instanceof CheckFailed ? error.message : error?.stack ?? error}`);
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
    await context?.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true });
  }
}

function readBaseUrl() {
  const { values } = parseArgs({ options: { url: { type: 'string' } } });
  if (!values.url) {
    console.error('usage: node tests/browser/page.mjs --url http://127.0.0.1:PORT');
    process.exit(2);
  }
  return values.url.replace(/\/+$/, '');
}

async function runChecks(context, baseUrl) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  const problems = watchProblems(page);
  await page.addInitScript(recordCspViolations);

  await checkLoads(page, baseUrl, problems);
  await checkLanguagesAndVoices(page, baseUrl);
  await checkTokenAndVoiceServerError(page);
  await checkEmptyName(page);
  await checkNoCspViolation(page, problems);
  if (problems.uncaught.length > 0) {
    fail('page', `uncaught exceptions during the run: ${problems.uncaught.join(' | ')}`);
  }
}

/** Console errors and warnings, and uncaught exceptions, as the page produces them. */
function watchProblems(page) {
  const problems = { console: [], uncaught: [] };
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      problems.console.push(`${message.type()}: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => problems.uncaught.push(error.message));
  return problems;
}

async function checkLoads(page, baseUrl, problems) {
  let vendorStatus = 'nothing (it was never requested)';
  page.on('response', (answer) => {
    if (new URL(answer.url()).pathname === '/vendor/livekit-client.umd.js') {
      vendorStatus = answer.status();
    }
  });
  let response;
  try {
    response = await page.goto(`${baseUrl}/`, { waitUntil: 'load' });
  } catch (error) {
    fail('a', `cannot load ${baseUrl}/: ${error.message.split('\n')[0]}`);
  }
  if (!response?.ok()) {
    fail('a', `GET / answered ${response?.status()}`);
  }
  const headers = response.headers();
  const csp = headers['content-security-policy'] ?? '';
  if (!csp.includes("frame-ancestors 'none'") || !csp.includes("script-src 'self'") || headers['x-frame-options'] !== 'DENY') {
    fail('a', `the page lacks its Content-Security-Policy or framing protection: CSP "${csp}", X-Frame-Options "${headers['x-frame-options']}"`);
  }
  if (vendorStatus !== 200) {
    fail('a', `/vendor/livekit-client.umd.js answered ${vendorStatus}; is web/node_modules installed?`);
  }
  await waitFor(page, 'a', () => document.querySelector('[data-testid="voice-select"]').options.length > 0, 'the form never filled its selects');
  if (!(await page.evaluate(() => typeof window.LivekitClient?.Room === 'function'))) {
    fail('a', 'window.LivekitClient.Room is not defined after loading the page');
  }
  const loadProblems = [...problems.console, ...problems.uncaught];
  if (loadProblems.length > 0) {
    fail('a', `the page logged problems while loading:\n  ${loadProblems.join('\n  ')}`);
  }
  pass('a', 'page loads under its Content-Security-Policy without console errors or warnings; livekit-client is served and defines LivekitClient');
}

/** Runs in the page before its scripts: keeps every CSP violation the browser reports. */
function recordCspViolations() {
  window.cspViolations = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI.split('?')[0] || 'inline code'}`);
  });
}

/** The whole run, the connection attempt included, worked within the page's policy: a blocked
 * connection would also end in "cannot reach the voice server", so it must be ruled out here. */
async function checkNoCspViolation(page, problems) {
  const violations = await page.evaluate(() => window.cspViolations);
  const reported = problems.console.filter((line) => /Content Security Policy/i.test(line)).map((line) => line.slice(0, 200));
  if (violations.length > 0 || reported.length > 0) {
    fail('f', `the page broke its Content-Security-Policy: ${[...violations, ...reported].join(' | ')}`);
  }
  pass('f', 'no Content-Security-Policy violation during the whole run, the LiveKit connection attempt included');
}

async function checkLanguagesAndVoices(page, baseUrl) {
  const agentId = await page.inputValue(byTestId('agent-select'));
  const catalog = await fetchJson(`${baseUrl}/api/languages?agentId=${encodeURIComponent(agentId)}`);
  const languageCodes = catalog.languages.map((language) => language.code);
  const offered = await optionValues(page, 'language-select');
  if (offered.length < 11 || !offered.includes('hi-IN') || !offered.includes('en-IN')) {
    fail('b', `the language select offers ${offered.length} languages (${offered.join(', ')}); expected at least 11 including hi-IN and en-IN`);
  }
  expectSame('b', 'languages', offered, languageCodes);

  await expectVoices(page, catalog, 'for the preselected language');
  const current = await page.inputValue(byTestId('language-select'));
  const other = ['ta-IN', 'hi-IN'].find((code) => code !== current);
  await page.selectOption(byTestId('language-select'), other);
  await expectVoices(page, catalog, `after choosing ${other}`);

  const agents = (await fetchJson(`${baseUrl}/api/agents`)).agents;
  const switched = agents.find((agent) => agent.id !== agentId && catalog.languages.some((language) => language.code === agent.language));
  if (switched) {
    await page.selectOption(byTestId('agent-select'), switched.id);
    await waitFor(
      page,
      'b',
      ([language, voice]) =>
        document.querySelector('[data-testid="language-select"]').value === language &&
        document.querySelector('[data-testid="voice-select"]').value === voice,
      `choosing agent ${switched.id} did not preselect its language ${switched.language} and voice ${switched.voice}`,
      [switched.language, switched.voice],
    );
    const switchedCatalog = await fetchJson(`${baseUrl}/api/languages?agentId=${encodeURIComponent(switched.id)}`);
    await expectVoices(page, switchedCatalog, `after choosing agent ${switched.id}`);
  }
  pass('b', `${offered.length} languages listed; voices match /api/languages and follow the language${switched ? ' and the agent' : ''}`);
}

async function expectVoices(page, catalog, when) {
  const language = await page.inputValue(byTestId('language-select'));
  const expected = catalog.languages.find((entry) => entry.code === language)?.voices.map((voice) => voice.id) ?? [];
  if (expected.length === 0) {
    fail('b', `/api/languages offers no voices for ${language}`);
  }
  expectSame('b', `voices ${when}`, await optionValues(page, 'voice-select'), expected);
}

async function checkTokenAndVoiceServerError(page) {
  await page.fill(byTestId('name-input'), 'Browser Test');
  const tokenResponse = page.waitForResponse((response) => response.url().endsWith('/api/token') && response.request().method() === 'POST');
  await page.click(byTestId('connect-button'));
  const response = await tokenResponse;
  if (response.status() !== 200) {
    fail('c', `POST /api/token answered ${response.status()}: ${await response.text()}`);
  }
  const grant = await response.json();
  const missing = ['token', 'roomName', 'livekitUrl', 'identity'].filter((key) => typeof grant[key] !== 'string' || grant[key] === '');
  if (missing.length > 0) {
    fail('c', `the token answer lacks ${missing.join(', ')}: ${JSON.stringify(grant)}`);
  }
  pass('c', `Connect obtained a token for room ${grant.roomName}`);

  const error = page.locator(byTestId('error'));
  try {
    await error.waitFor({ state: 'visible', timeout: VOICE_SERVER_ERROR_MS });
  } catch {
    fail('d', `no error was shown within ${VOICE_SERVER_ERROR_MS / 1000} s of connecting to the unreachable ${grant.livekitUrl}`);
  }
  const message = (await error.innerText()).trim();
  if (!/voice server/i.test(message)) {
    fail('d', `the error does not mention the voice server: "${message}"`);
  }
  if (/\n\s*at\s|\.m?js:\d+|Error:/.test(message)) {
    fail('d', `the error looks like a raw exception rather than a sentence: "${message}"`);
  }
  await expectFormUsable(page, 'd');
  pass('d', `unreachable voice server reported readably ("${message}") and the form is usable again`);
}

async function checkEmptyName(page) {
  await page.fill(byTestId('name-input'), '   ');
  await page.click(byTestId('connect-button'));
  await waitFor(
    page,
    'e',
    () => {
      const error = document.querySelector('[data-testid="error"]');
      return !error.hidden && /name/i.test(error.textContent);
    },
    'submitting an empty name showed no error about the name',
  );
  const message = (await page.innerText(byTestId('error'))).trim();
  await expectFormUsable(page, 'e');
  pass('e', `an empty name is refused: "${message}"`);
}

async function expectFormUsable(page, label) {
  await waitFor(
    page,
    label,
    () =>
      ['agent-select', 'language-select', 'voice-select', 'name-input', 'connect-button'].every(
        (id) => !document.querySelector(`[data-testid="${id}"]`).disabled,
      ) && window.voiceAgent.state.connection === 'disconnected',
    'the form stayed disabled (or the page still thinks it is connected) after the failure',
  );
}

async function waitFor(page, label, predicate, message, arg) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: STEP_MS });
  } catch {
    fail(label, message);
  }
}

async function optionValues(page, testId) {
  return page.$$eval(`${byTestId(testId)} option`, (options) => options.map((option) => option.value));
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) {
    fail('setup', `GET ${url} answered ${response.status}`);
  }
  return response.json();
}

function expectSame(label, what, actual, expected) {
  if (actual.join() !== expected.join()) {
    fail(label, `${what} differ from the API: page [${actual.join(', ')}], API [${expected.join(', ')}]`);
  }
}

function pass(label, message) {
  console.log(`ok (${label}) ${message}`);
}

function fail(label, message) {
  throw new CheckFailed(`(${label}) ${message}`);
}
