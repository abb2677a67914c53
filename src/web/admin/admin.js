// The operator's page: live calls with "end call", and recent call records with their transcript
// and a per-turn latency chart drawn as inline SVG. The admin token lives in this page's memory
// only and goes with every request; records are shown with textContent, never as HTML.
'use strict';

// Two requests a refresh: well within API_RATE_LIMIT_PER_MIN (120) for a few open tabs.
const REFRESH_MS = 5000;
const SVG = 'http://www.w3.org/2000/svg';
// The stages of a turn, in the order they happen, stacked; voice to voice is drawn as a mark.
const STAGES = [
  ['end_of_utterance_ms', 'end of utterance'],
  ['stt_ms', 'speech to text'],
  ['llm_first_token_ms', 'first LLM token'],
  ['tts_first_audio_ms', 'first TTS audio'],
];
const TOTAL = ['voice_to_voice_ms', 'voice to voice'];

let token = '';
let timer;
const opened = new Set();

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function status(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    cache: 'no-store',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error?.message ?? `HTTP ${response.status}`);
  return body;
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function renderCalls({ calls, source }) {
  $('source').textContent = `from ${source}`;
  const rows = calls.map((call) => {
    const end = el('button', { type: 'button', 'data-testid': 'end-call' }, 'End call');
    end.addEventListener('click', () => endCall(call.room, end));
    return el('tr', { 'data-testid': 'call', 'data-room': call.room },
      el('td', { 'data-testid': 'call-room' }, call.room),
      el('td', { 'data-testid': 'call-agent' }, call.agent ?? '—'),
      el('td', { 'data-testid': 'call-duration' }, duration(call.duration_seconds)),
      el('td', { 'data-testid': 'call-state' }, call.state),
      el('td', {}, end));
  });
  $('calls').replaceChildren(...rows);
  $('no-calls').hidden = calls.length > 0;
}

async function endCall(room, button) {
  if (!window.confirm(`End the call in ${room}?`)) return;
  button.disabled = true;
  try {
    await api('/admin/api/calls/end', { method: 'POST', body: JSON.stringify({ room }) });
    status(`Ended the call in ${room}.`);
  } catch (e) {
    status(`Could not end the call: ${e.message}`, true);
    button.disabled = false;
  }
  refresh();
}

function chart(turns) {
  const width = 640;
  const height = 200;
  const left = 48;
  const bottom = 24;
  const top = 8;
  const stacked = (turn) => STAGES.reduce((sum, [key]) => sum + (turn[key] ?? 0), 0);
  const max = Math.max(1, ...turns.map((t) => Math.max(stacked(t), t[TOTAL[0]] ?? 0)));
  const scale = (ms) => ((height - bottom - top) * ms) / max;
  const slot = (width - left) / Math.max(turns.length, 1);
  const bar = Math.min(40, slot * 0.6);
  const picture = svg('svg', {
    class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-testid': 'latency-chart',
    'aria-label': `latency of ${turns.length} turns, up to ${Math.round(max)} ms`,
  });
  const base = height - bottom;
  picture.append(svg('line', { class: 'axis', x1: left, y1: base, x2: width, y2: base }));
  picture.append(svg('line', { class: 'axis', x1: left, y1: top, x2: left, y2: base }));
  for (const fraction of [0, 0.5, 1]) {
    const y = base - scale(max * fraction);
    picture.append(svg('text', { x: left - 4, y: y + 3, 'text-anchor': 'end' }, `${Math.round(max * fraction)} ms`));
  }
  turns.forEach((turn, index) => {
    const x = left + slot * index + (slot - bar) / 2;
    let y = base;
    for (const [key, label] of STAGES) {
      const value = turn[key];
      if (value == null || value <= 0) continue;
      const h = scale(value);
      y -= h;
      const rect = svg('rect', { class: `c-${key}`, x, y, width: bar, height: h, 'data-testid': 'latency-bar' });
      rect.append(svg('title', {}, `turn ${index + 1}: ${label} ${value} ms`));
      picture.append(rect);
    }
    const total = turn[TOTAL[0]];
    if (total != null) {
      const mark = svg('rect', { class: `c-${TOTAL[0]}`, x: x - 3, y: base - scale(total) - 1, width: bar + 6, height: 2 });
      mark.append(svg('title', {}, `turn ${index + 1}: ${TOTAL[1]} ${total} ms`));
      picture.append(mark);
    }
    picture.append(svg('text', { x: x + bar / 2, y: height - 8, 'text-anchor': 'middle' }, `${index + 1}${turn.interrupted ? '*' : ''}`));
  });
  const legend = el('p', { class: 'legend' },
    ...[...STAGES, TOTAL].map(([key, label]) => el('span', {}, el('i', { class: `c-${key}` }), label)));
  return el('div', {}, picture, legend);
}

function renderRecord({ status: state, spool, record }) {
  const key = `${spool}/${record.call_id}`;
  const summary = el('summary', {},
    el('span', { class: `badge ${state}`, 'data-testid': 'record-status' }, state),
    `${record.ended_at ?? ''} · ${record.agent_id ?? '?'} · ${record.room ?? ''} · ${duration(record.duration_seconds ?? 0)} · ${record.end_reason ?? ''}`,
    spool ? ` · ${spool}` : '');
  const lines = (record.transcript ?? []).map((line) => el('p',
    { class: `line${line.interrupted ? ' interrupted' : ''}`, 'data-testid': 'transcript-line' },
    el('span', { class: 'who' }, line.speaker === 'agent' ? 'Agent' : 'Caller'),
    el('span', { class: 'text' }, line.text)));
  const turns = record.turns ?? [];
  const details = el('details', { 'data-testid': 'record', 'data-call-id': record.call_id, 'data-room': record.room ?? '' },
    summary,
    el('div', { class: 'transcript' }, ...lines),
    turns.length ? chart(turns) : el('p', { class: 'hint' }, 'No answered turn, so no latency to show.'));
  details.open = opened.has(key);
  details.addEventListener('toggle', () => (details.open ? opened.add(key) : opened.delete(key)));
  return details;
}

function renderRecords({ records }) {
  $('records').replaceChildren(...records.map(renderRecord));
  $('no-records').hidden = records.length > 0;
}

async function refresh() {
  clearTimeout(timer);
  const [calls, records] = await Promise.allSettled([api('/admin/api/calls'), api('/admin/api/records')]);
  if (calls.status === 'fulfilled') renderCalls(calls.value);
  if (records.status === 'fulfilled') renderRecords(records.value);
  const failed = [calls, records].find((r) => r.status === 'rejected');
  if (failed) status(failed.reason.message, true);
  else if ($('status').classList.contains('error')) status('');
  timer = setTimeout(refresh, REFRESH_MS);
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  token = $('token').value.trim();
  try {
    await api('/admin/api/records');
  } catch (e) {
    status(e.message, true);
    return;
  }
  $('token').value = '';
  $('login').hidden = true;
  $('main').hidden = false;
  status('');
  refresh();
});
