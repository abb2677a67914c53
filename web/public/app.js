// The page people talk to a voice agent through: it asks the token server for a LiveKit token,
// joins the room with the microphone, plays the agent, and shows the agent's state and a live
// transcript of both sides. livekit-client's UMD bundle provides the `LivekitClient` global.

const LK = window.LivekitClient;

const TRANSCRIPTION_TOPIC = 'lk.transcription';
/** LiveKit's topic for typed messages; the agent answers them like speech. */
const CHAT_TOPIC = 'lk.chat';
const AGENT_STATE_ATTRIBUTE = 'lk.agent.state';
const AGENT_JOIN_TIMEOUT_MS = 20_000;
const NAME_STORAGE_KEY = 'voice-agent.user-name';

const ui = {
  form: byId('setup-form'),
  fields: byId('setup-fields'),
  agent: byId('agent'),
  language: byId('language'),
  voice: byId('voice'),
  name: byId('user-name'),
  connect: byId('connect'),
  connectLabel: byId('connect').querySelector('.button-label'),
  error: byId('error'),
  call: byId('call'),
  status: byId('status'),
  statusLabel: byId('status').querySelector('.connection-label'),
  agentPanel: byId('agent-state').parentElement,
  agentState: byId('agent-state'),
  meter: byId('mic-meter'),
  meterFill: byId('mic-meter').querySelector('.mic-meter-fill'),
  enableAudio: byId('enable-audio'),
  mute: byId('mute'),
  disconnect: byId('disconnect'),
  scroller: byId('transcript-scroller'),
  transcriptEmpty: byId('transcript-empty'),
  transcript: byId('transcript'),
  chatForm: byId('chat-form'),
  chatInput: byId('chat-input'),
  chatSend: byId('chat-send'),
  audioSink: byId('audio-sink'),
};

/** Which form control each request field of the token API is entered in. */
const FIELD_CONTROLS = { agentId: ui.agent, language: ui.language, voice: ui.voice, userName: ui.name };

const CONNECTION_LABELS = {
  disconnected: 'Disconnected',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
};

/** What the page shows; `agentState` is the agent's `lk.agent.state`, or one of joining, waiting,
 * missing (it never came), left, or null outside a call. */
const view = { connection: 'disconnected', agentState: null, transcripts: [], lastError: null };

/** The agents and, for the selected agent, the languages with their voices. */
const catalog = { agents: [], languages: [] };
let languagesRequest = 0;

/** The call in progress, from the Connect click until it ends: everything teardown must undo. */
let call = null;

class PageError extends Error {
  constructor(message, field) {
    super(message);
    this.name = 'PageError';
    this.field = field;
  }
}

window.voiceAgent = Object.freeze({
  get room() {
    return call?.room ?? null;
  },
  get state() {
    const transcripts = view.transcripts.filter((entry) => entry.text).map(({ speaker, text, final }) => ({ speaker, text, final }));
    return structuredClone({ ...view, transcripts });
  },
});

start();

function start() {
  ui.name.value = readStoredName();
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    connect();
  });
  ui.agent.addEventListener('change', () => refreshLanguages().catch(showLoadFailure));
  ui.language.addEventListener('change', () => showVoices(ui.voice.value));
  for (const control of Object.values(FIELD_CONTROLS)) {
    control.addEventListener('input', () => markValid(control));
  }
  ui.disconnect.addEventListener('click', () => endCall());
  ui.mute.addEventListener('click', toggleMute);
  ui.enableAudio.addEventListener('click', enableAudio);
  ui.chatForm.addEventListener('submit', (event) => {
    event.preventDefault();
    sendMessage();
  });
  ui.chatInput.addEventListener('input', updateControls);
  if (!LK) {
    showAlert('The page could not load its voice library. Reload the page; if this keeps happening, the server is missing its npm packages.');
    return;
  }
  loadCatalog();
}

async function loadCatalog() {
  try {
    const { agents, defaultAgentId } = await getJson('/api/agents');
    catalog.agents = agents;
    fillSelect(ui.agent, agents.map((agent) => ({ value: agent.id, label: agent.name })));
    ui.agent.value = firstOffered(agents.map((agent) => agent.id), defaultAgentId);
    await refreshLanguages();
    updateControls();
  } catch (error) {
    showLoadFailure(error);
  }
}

/** Voices depend on the agent's TTS model, so the list is fetched again for every agent. */
async function refreshLanguages() {
  const request = ++languagesRequest;
  const agentId = ui.agent.value;
  const answer = await getJson(agentId ? `/api/languages?agentId=${encodeURIComponent(agentId)}` : '/api/languages');
  if (request !== languagesRequest) {
    return;
  }
  catalog.languages = answer.languages;
  const agent = catalog.agents.find((candidate) => candidate.id === agentId);
  fillSelect(ui.language, answer.languages.map((language) => ({ value: language.code, label: `${language.name} — ${language.nativeName}` })));
  ui.language.value = firstOffered(answer.languages.map((language) => language.code), agent?.language, answer.defaultLanguage);
  showVoices(agent?.voice, answer.defaultVoice);
}

/** Lists the selected language's voices, keeping the first preferred voice that is offered. */
function showVoices(...preferred) {
  const voices = catalog.languages.find((language) => language.code === ui.language.value)?.voices ?? [];
  fillSelect(ui.voice, voices.map((voice) => ({ value: voice.id, label: `${voice.name} (${voice.gender})` })));
  ui.voice.value = firstOffered(voices.map((voice) => voice.id), ...preferred);
}

function showLoadFailure(error) {
  showAlert(`${describeFailure(error)} Reload the page to try again.`);
}

async function connect() {
  if (call) {
    return;
  }
  clearAlert();
  const request = {
    agentId: ui.agent.value,
    language: ui.language.value,
    voice: ui.voice.value,
    userName: ui.name.value.trim(),
  };
  if (!request.userName) {
    showFailure(new PageError('Please enter your name, so the agent knows what to call you.', 'userName'));
    return;
  }
  storeName(request.userName);
  const current = beginCall();
  try {
    current.grant = await requestToken(request);
    if (call === current) {
      await joinRoom(current);
    }
  } catch (error) {
    // A failure after the person hung up is the hang-up itself, not something to report.
    if (call === current) {
      await endCall();
      showFailure(error, current.grant?.livekitUrl);
    }
  }
}

/** Starts a call's bookkeeping; the AudioContext is made here because browsers only let a
 * user gesture (the Connect click) start audio. */
function beginCall() {
  call = {
    room: null,
    grant: null,
    joined: false,
    agentSeen: false,
    agentName: ui.agent.selectedOptions[0]?.textContent || 'The agent',
    agentTimer: 0,
    audioContext: new AudioContext(),
    meter: null,
    segments: new Map(),
  };
  view.transcripts = [];
  ui.transcript.replaceChildren();
  ui.transcriptEmpty.hidden = false;
  setConnection('connecting');
  setAgentState('joining');
  return call;
}

async function requestToken(request) {
  let response;
  try {
    response = await fetch('/api/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    });
  } catch {
    throw new PageError('Cannot reach the token server. Check your network connection and try again.');
  }
  if (!response.ok) {
    throw await refusal(response, 'Token refused');
  }
  return response.json();
}

async function joinRoom(current) {
  const room = new LK.Room({ adaptiveStream: false, dynacast: false });
  current.room = room;
  listen(current);
  room.registerTextStreamHandler(TRANSCRIPTION_TOPIC, (reader, participantInfo) => {
    readTranscription(current, reader, participantInfo.identity);
  });
  await room.connect(current.grant.livekitUrl, current.grant.token);
  if (call !== current) {
    return;
  }
  current.joined = true;
  await room.localParticipant.setMicrophoneEnabled(true);
  if (call !== current) {
    // Hung up while the microphone was starting: release it, the room no longer will.
    microphoneTrack(room)?.stop();
    return;
  }
  current.meter = startMeter(current.audioContext, () => microphoneTrack(room));
  showAudioPrompt(!room.canPlaybackAudio);
  waitForAgent(current);
  updateControls();
  revealCall();
}

/** On narrow screens the conversation sits below the form; bring it up once the call is live. */
function revealCall() {
  if (ui.call.getBoundingClientRect().top > window.innerHeight / 2) {
    const reduceMotion = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
    ui.call.scrollIntoView({ behavior: reduceMotion ? 'auto' : 'smooth', block: 'start' });
  }
}

/** Subscribes to the room's events; handlers of a call that has ended stay silent. */
function listen(current) {
  const { room } = current;
  const E = LK.RoomEvent;
  const on = (event, handler) => room.on(event, (...args) => call === current && handler(...args));
  on(E.ConnectionStateChanged, (state) => setConnection(state));
  on(E.ParticipantConnected, () => updateAgent(current));
  on(E.ParticipantDisconnected, () => updateAgent(current));
  on(E.ParticipantAttributesChanged, (_changed, participant) => isAgent(participant) && updateAgent(current));
  on(E.TrackSubscribed, (track) => playRemoteAudio(track));
  on(E.TrackUnsubscribed, (track) => track.detach().forEach((element) => element.remove()));
  on(E.AudioPlaybackStatusChanged, () => showAudioPrompt(!room.canPlaybackAudio));
  on(E.LocalTrackPublished, updateControls);
  on(E.LocalTrackUnpublished, updateControls);
  on(E.TrackMuted, updateControls);
  on(E.TrackUnmuted, updateControls);
  // Before `connect` resolves, its rejection reports the failure better than this event can.
  on(E.Disconnected, (reason) => current.joined && endCall(describeDisconnect(reason)));
}

/** Ends the call, whoever ended it, and undoes everything the call set up. */
async function endCall(notice) {
  const ending = call;
  if (!ending) {
    return;
  }
  call = null;
  clearTimeout(ending.agentTimer);
  ending.meter?.stop();
  for (const element of ui.audioSink.querySelectorAll('audio')) {
    element.srcObject = null;
    element.remove();
  }
  showAudioPrompt(false);
  for (const entry of ending.segments.values()) {
    entry.final = true;
    renderEntry(entry);
  }
  setConnection('disconnected');
  setAgentState(null);
  if (notice) {
    showAlert(notice.message, notice.level);
  }
  updateControls();
  await ending.room?.disconnect();
  await ending.audioContext.close();
}

// Agent presence and state.

function isAgent(participant) {
  return participant.kind === LK.ParticipantKind.AGENT || participant.identity.startsWith('agent-');
}

function findAgent(room) {
  return [...room.remoteParticipants.values()].find(isAgent);
}

function waitForAgent(current) {
  updateAgent(current);
  current.agentTimer = setTimeout(() => {
    if (call === current && !current.agentSeen) {
      setAgentState('missing');
      showAlert('The agent did not join the room. It may be offline or busy; disconnect and try again in a moment.', 'warning');
    }
  }, AGENT_JOIN_TIMEOUT_MS);
}

function updateAgent(current) {
  const agent = findAgent(current.room);
  if (agent) {
    current.agentSeen = true;
    clearTimeout(current.agentTimer);
    if (view.agentState === 'missing') {
      clearAlert();
    }
    setAgentState(agent.attributes[AGENT_STATE_ATTRIBUTE] || 'initializing');
  } else if (current.agentSeen) {
    setAgentState('left');
  } else if (view.agentState !== 'missing') {
    setAgentState('waiting');
  }
}

function setAgentState(agentState) {
  view.agentState = agentState;
  ui.agentPanel.dataset.state = agentState ?? 'none';
  ui.agentState.textContent = agentStateLabel(agentState, call?.agentName);
}

function agentStateLabel(agentState, name) {
  switch (agentState) {
    case null:
      return 'Not in a call';
    case 'joining':
      return 'Joining the call…';
    case 'waiting':
      return 'Waiting for the agent…';
    case 'missing':
      return 'The agent did not join the room.';
    case 'left':
      return `${name} left the call.`;
    case 'initializing':
      return `${name} is getting ready…`;
    case 'idle':
      return `${name} is ready`;
    case 'listening':
      return `${name} is listening`;
    case 'thinking':
      return `${name} is thinking…`;
    case 'speaking':
      return `${name} is speaking`;
    default:
      return `${name}: ${agentState}`;
  }
}

// Audio in both directions.

function playRemoteAudio(track) {
  if (track.kind === LK.Track.Kind.Audio) {
    ui.audioSink.append(track.attach());
  }
}

function showAudioPrompt(visible) {
  ui.enableAudio.hidden = !visible;
}

async function enableAudio() {
  try {
    await call?.room?.startAudio();
    showAudioPrompt(false);
  } catch (error) {
    showFailure(error);
  }
}

function microphoneTrack(room) {
  return room.localParticipant.getTrackPublication(LK.Track.Source.Microphone)?.track?.mediaStreamTrack ?? null;
}

async function toggleMute() {
  const participant = call?.room?.localParticipant;
  if (!participant) {
    return;
  }
  ui.mute.disabled = true;
  try {
    await participant.setMicrophoneEnabled(!participant.isMicrophoneEnabled);
  } catch (error) {
    showFailure(error);
  } finally {
    updateControls();
  }
}

/**
 * Draws the microphone's loudness until stopped. The track is looked up every frame because
 * LiveKit replaces it when the microphone restarts (a device change, an unmute after a stop).
 */
function startMeter(audioContext, currentTrack) {
  const analyser = audioContext.createAnalyser();
  analyser.fftSize = 1024;
  const samples = new Float32Array(analyser.fftSize);
  let source = null;
  let followed = null;
  let level = 0;
  let frame = 0;

  const follow = () => {
    const track = currentTrack();
    if (track === followed) {
      return;
    }
    source?.disconnect();
    source = track ? audioContext.createMediaStreamSource(new MediaStream([track])) : null;
    source?.connect(analyser);
    followed = track;
  };
  const draw = () => {
    follow();
    analyser.getFloatTimeDomainData(samples);
    // Decibels spread speech over the bar the way loudness is heard; the slow fall keeps short
    // syllables visible.
    const rms = Math.sqrt(samples.reduce((sum, sample) => sum + sample * sample, 0) / samples.length);
    const decibels = 20 * Math.log10(Math.max(rms, 1e-6));
    level = Math.max(Math.min(1, Math.max(0, (decibels + 60) / 50)), level * 0.9);
    showMeterLevel(level);
    frame = requestAnimationFrame(draw);
  };
  draw();
  return {
    stop() {
      cancelAnimationFrame(frame);
      source?.disconnect();
      showMeterLevel(0);
    },
  };
}

function showMeterLevel(level) {
  ui.meterFill.style.transform = `scaleX(${level})`;
  const percent = String(Math.round(level * 100));
  if (ui.meter.getAttribute('aria-valuenow') !== percent) {
    ui.meter.setAttribute('aria-valuenow', percent);
  }
}

// Transcripts.

/**
 * Shows one transcription stream. The agent sends one stream per segment whose chunks are
 * increments, ending when the segment is complete; the person's speech arrives as a series of
 * short streams for the same segment, each carrying the whole text so far, the last one marked
 * final. So a new stream replaces its segment's text and chunks within a stream are appended.
 */
async function readTranscription(current, reader, identity) {
  const attributes = reader.info.attributes ?? {};
  const fromUser = identity === current.room.localParticipant.identity;
  const entry = segmentEntry(current, attributes['lk.segment_id'] || reader.info.id, fromUser);
  const streamId = reader.info.id;
  entry.streamId = streamId;
  let text = null;
  try {
    for await (const chunk of reader) {
      if (entry.streamId !== streamId || call !== current) {
        return;
      }
      text = (text ?? '') + chunk;
      entry.text = text;
      entry.final = attributes['lk.transcription_final'] === 'true';
      renderEntry(entry);
    }
  } catch (error) {
    if (call === current) {
      console.warn('A transcription stream broke off:', error);
    }
  }
  if (entry.streamId === streamId && (!fromUser || attributes['lk.transcription_final'] === 'true')) {
    entry.final = true;
    renderEntry(entry);
  }
}

/** Sends the typed message to the room; it shows in the transcript as soon as it is sent. */
async function sendMessage() {
  const current = call;
  const text = ui.chatInput.value.trim();
  if (!current?.joined || !text) {
    return;
  }
  ui.chatInput.value = '';
  updateControls();
  current.typed = (current.typed ?? 0) + 1;
  const entry = segmentEntry(current, `typed-${current.typed}`, true);
  entry.text = text;
  entry.final = true;
  renderEntry(entry);
  try {
    await current.room.localParticipant.sendText(text, { topic: CHAT_TOPIC });
  } catch (error) {
    if (call === current) {
      entry.element.classList.add('failed');
      showAlert(`Your message could not be sent (${error.message}). Please try again.`);
      ui.chatInput.value = text;
      updateControls();
    }
  }
}

function segmentEntry(current, segmentId, fromUser) {
  let entry = current.segments.get(segmentId);
  if (!entry) {
    const element = document.createElement('li');
    element.className = fromUser ? 'message from-user' : 'message from-agent';
    element.hidden = true;
    const speaker = document.createElement('span');
    speaker.className = 'speaker';
    speaker.textContent = fromUser ? 'You' : current.agentName;
    const text = document.createElement('p');
    text.className = 'text';
    element.append(speaker, text);
    ui.transcript.append(element);
    entry = { speaker: fromUser ? 'You' : 'Agent', text: '', final: false, streamId: null, element };
    current.segments.set(segmentId, entry);
    view.transcripts.push(entry);
  }
  return entry;
}

function renderEntry(entry) {
  const following = ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight < 48;
  entry.element.hidden = !entry.text;
  entry.element.querySelector('.text').textContent = entry.text;
  entry.element.classList.toggle('interim', !entry.final);
  // Screen readers announce a finished line once instead of every word as it streams in.
  entry.element.setAttribute('aria-busy', String(!entry.final));
  ui.transcriptEmpty.hidden = view.transcripts.some((candidate) => candidate.text);
  if (following) {
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
  }
}

// Status, controls and messages.

function setConnection(state) {
  const connection = state === LK.ConnectionState.SignalReconnecting ? 'reconnecting' : state;
  view.connection = connection;
  ui.status.dataset.state = connection;
  ui.statusLabel.textContent = CONNECTION_LABELS[connection] ?? connection;
  updateControls();
}

function updateControls() {
  const connected = Boolean(call?.joined) && view.connection === 'connected';
  const participant = call?.room?.localParticipant;
  const microphoneOn = Boolean(participant?.isMicrophoneEnabled);
  ui.fields.disabled = Boolean(call) || catalog.languages.length === 0;
  ui.connect.classList.toggle('busy', Boolean(call) && !connected);
  ui.connectLabel.textContent = connectLabel(connected);
  ui.disconnect.disabled = !call;
  ui.mute.disabled = !connected || !participant?.getTrackPublication(LK.Track.Source.Microphone);
  ui.mute.textContent = connected && !microphoneOn ? 'Unmute' : 'Mute';
  ui.chatInput.disabled = !connected;
  ui.chatSend.disabled = !connected || !ui.chatInput.value.trim();
  ui.meter.classList.toggle('muted', !microphoneOn);
}

function connectLabel(connected) {
  if (catalog.languages.length === 0) {
    return 'Loading…';
  }
  if (connected) {
    return 'In a call';
  }
  return call ? 'Connecting…' : 'Connect';
}

/** Shows an error readably and, when the server named the field at fault, points at it. */
function showFailure(error, livekitUrl) {
  const message = describeFailure(error, livekitUrl);
  if (!message) {
    return;
  }
  showAlert(message);
  const control = FIELD_CONTROLS[error.field];
  if (control) {
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('aria-describedby', ui.error.id);
    control.focus();
  }
}

/** A sentence for a person, or null for failures that need no explanation (a cancelled join). */
function describeFailure(error, livekitUrl) {
  if (error instanceof PageError) {
    return error.message;
  }
  if (error instanceof LK.ConnectionError) {
    return describeConnectionError(error, livekitUrl);
  }
  switch (error?.name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
      return "Microphone access was denied. Allow it in the browser's site settings and try again.";
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return 'No microphone was found. Connect one, check that it is enabled in your system settings, and try again.';
    case 'NotReadableError':
    case 'TrackStartError':
      return 'Your microphone could not be started; another app may be using it. Close that app and try again.';
    default:
      return `Something went wrong: ${error?.message || error}`;
  }
}

function describeConnectionError(error, livekitUrl) {
  const server = livekitUrl ? `the voice server at ${livekitUrl}` : 'the voice server';
  switch (error.reason) {
    case LK.ConnectionErrorReason.Cancelled:
      return null;
    case LK.ConnectionErrorReason.NotAllowed:
      return `${capitalize(server)} refused the call (${error.status ?? 'not allowed'}). Try again; if it keeps happening, the server's LiveKit keys may not match.`;
    default:
      return `Cannot reach ${server}. Check your network connection, or try again later if the server is down.`;
  }
}

function describeDisconnect(reason) {
  const R = LK.DisconnectReason;
  switch (reason) {
    case R.CLIENT_INITIATED:
      return null;
    case R.ROOM_DELETED:
    case R.ROOM_CLOSED:
      return { message: 'The call has ended.', level: 'info' };
    case R.DUPLICATE_IDENTITY:
      return { message: 'You joined this call from another tab or device, so this one was disconnected.', level: 'warning' };
    case R.PARTICIPANT_REMOVED:
      return { message: 'You were removed from the call.', level: 'warning' };
    case R.SERVER_SHUTDOWN:
      return { message: 'The voice server is restarting. Connect again in a moment.', level: 'warning' };
    case R.SIGNAL_CLOSE:
    case R.STATE_MISMATCH:
    case R.JOIN_FAILURE:
    case R.MIGRATION:
    case R.CONNECTION_TIMEOUT:
      return { message: 'The connection to the voice server was lost. Connect again to continue.', level: 'error' };
    default:
      return { message: 'The call ended unexpectedly. Connect again to continue.', level: 'error' };
  }
}

/** The API's `{"error":{"message","field"}}` answer as a PageError. */
async function refusal(response, prefix) {
  const error = (await response.json().catch(() => null))?.error;
  if (response.status === 429) {
    const seconds = Number.parseInt(response.headers.get('Retry-After'), 10);
    return new PageError(Number.isFinite(seconds) ? `Too many attempts, try again in ${seconds} s.` : 'Too many attempts, try again in a moment.');
  }
  // The server quotes field names in backticks for developers; people read them better plain.
  const detail = error?.message ? error.message.replaceAll('`', '') : `the server answered ${response.status} ${response.statusText}`.trim();
  return new PageError(`${prefix}: ${detail}`, error?.field);
}

async function getJson(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: 'application/json' } });
  } catch {
    throw new PageError('Cannot reach the token server. Check your network connection.');
  }
  if (!response.ok) {
    throw await refusal(response, 'The token server could not answer');
  }
  return response.json();
}

function showAlert(message, level = 'error') {
  view.lastError = level === 'info' ? null : message;
  ui.error.textContent = message;
  ui.error.dataset.level = level;
  ui.error.hidden = false;
}

function clearAlert() {
  view.lastError = null;
  ui.error.textContent = '';
  ui.error.hidden = true;
  Object.values(FIELD_CONTROLS).forEach(markValid);
}

function markValid(control) {
  control.removeAttribute('aria-invalid');
  control.removeAttribute('aria-describedby');
}

// Small helpers.

function byId(id) {
  return document.getElementById(id);
}

function fillSelect(select, options) {
  select.replaceChildren(...options.map(({ value, label }) => new Option(label, value)));
}

function firstOffered(offered, ...preferred) {
  return preferred.find((candidate) => offered.includes(candidate)) ?? offered[0] ?? '';
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Storage can be unavailable (private windows, blocked cookies); the name is then not kept. */
function readStoredName() {
  try {
    return localStorage.getItem(NAME_STORAGE_KEY) ?? '';
  } catch {
    return '';
  }
}

function storeName(name) {
  try {
    localStorage.setItem(NAME_STORAGE_KEY, name);
  } catch {
    // Remembering the name is a convenience; the call works without it.
  }
}
