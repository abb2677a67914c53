//! Audio tracks of a room: remote ones decoded to PCM on the consumer's task, and our own, fed
//! with PCM at any rate and sent as Opus in real time by the publisher peer's task.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};

use crate::audio::{
    AudioError, AudioFrame, Framer, OpusDecoder, OpusEncoder, ROOM_FRAME_SAMPLES, ROOM_SAMPLE_RATE, Resampler,
};
use crate::livekit::peer::{AudioSource, MediaPacket};

/// Gaps up to this long are filled by Opus concealment (lost packets); longer ones are the
/// sender pausing (DTX, mute), filled with silence so time keeps flowing for whoever listens.
const CONCEAL_LIMIT: u64 = 12 * ROOM_FRAME_SAMPLES as u64;
/// Silence frames encoded after sound before a silence packet is replayed regardless.
const SETTLE_FRAMES: u32 = 25;
/// Beyond this the sender restarted its clock; nothing is filled.
const SILENCE_LIMIT: u64 = 10 * ROOM_SAMPLE_RATE as u64;
/// libopus conceals at most 120 ms per call.
const MAX_CONCEAL_CHUNK: u64 = 5760;

/// Someone else's audio track, subscribed. Decoding happens in [`recv`](Self::recv), on the
/// consumer's own task, so an unused track costs nothing but its queue.
pub struct RemoteAudioTrack {
    /// The publisher's identity.
    pub participant_identity: String,
    /// The publisher's sid for this session (`PA_...`).
    pub participant_sid: String,
    /// The track's sid (`TR_...`).
    pub track_sid: String,
    packets: mpsc::Receiver<MediaPacket>,
    decoder: OpusDecoder,
    next_rtp: Option<u64>,
    ready: VecDeque<AudioFrame>,
    /// Packets that could not be decoded, for diagnostics.
    pub corrupt_packets: u64,
}

impl std::fmt::Debug for RemoteAudioTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAudioTrack")
            .field("participant_identity", &self.participant_identity)
            .field("track_sid", &self.track_sid)
            .finish_non_exhaustive()
    }
}

impl RemoteAudioTrack {
    pub(crate) fn new(
        participant_identity: String,
        participant_sid: String,
        track_sid: String,
        packets: mpsc::Receiver<MediaPacket>,
    ) -> Result<Self, AudioError> {
        Ok(Self {
            participant_identity,
            participant_sid,
            track_sid,
            packets,
            decoder: OpusDecoder::new()?,
            next_rtp: None,
            ready: VecDeque::new(),
            corrupt_packets: 0,
        })
    }

    /// The next stretch of 48 kHz mono audio, in order and without holes: lost packets are
    /// concealed and pauses come back as silence. `None` once the track is gone.
    pub async fn recv(&mut self) -> Option<AudioFrame> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            let packet = self.packets.recv().await?;
            self.decode(&packet);
        }
    }

    fn decode(&mut self, packet: &MediaPacket) {
        if let Some(expected) = self.next_rtp {
            if packet.rtp_time < expected {
                return;
            }
            let gap = packet.rtp_time - expected;
            if gap > 0 && gap <= CONCEAL_LIMIT {
                self.conceal(gap, &packet.data);
            } else if gap > CONCEAL_LIMIT && gap <= SILENCE_LIMIT {
                let samples = usize::try_from(gap).expect("at most ten seconds of samples");
                self.ready.push_back(AudioFrame { samples: vec![0; samples], sample_rate: ROOM_SAMPLE_RATE });
            }
        }
        match self.decoder.decode(&packet.data) {
            Ok(samples) => {
                self.next_rtp = Some(packet.rtp_time + samples.len() as u64);
                self.ready.push_back(AudioFrame { samples, sample_rate: ROOM_SAMPLE_RATE });
            }
            Err(e) => {
                self.corrupt_packets += 1;
                tracing::debug!(track = %self.track_sid, "undecodable audio packet: {e}");
            }
        }
    }

    /// Fills `gap` lost samples, the last frame from the next packet's in-band FEC when it is
    /// exactly one frame.
    fn conceal(&mut self, gap: u64, next_packet: &[u8]) {
        let whole = gap - gap % 120;
        let recovered = if whole == ROOM_FRAME_SAMPLES as u64 {
            self.decoder.decode_fec(next_packet, ROOM_FRAME_SAMPLES)
        } else {
            let mut samples = Vec::new();
            let mut left = whole;
            while left > 0 {
                let chunk = left.min(MAX_CONCEAL_CHUNK);
                match self.decoder.conceal(usize::try_from(chunk).expect("at most 5760")) {
                    Ok(part) => samples.extend(part),
                    Err(e) => {
                        tracing::debug!("concealment failed: {e}");
                        break;
                    }
                }
                left -= chunk;
            }
            Ok(samples)
        };
        if let Ok(samples) = recovered
            && !samples.is_empty()
        {
            self.ready.push_back(AudioFrame { samples, sample_rate: ROOM_SAMPLE_RATE });
        }
    }
}

/// PCM waiting to be sent, shared by the pushing side and the peer that sends it.
#[derive(Default)]
struct Outgoing {
    resampler: Option<(u32, Resampler)>,
    framer: Framer,
    /// Samples of real (pushed) audio sent so far.
    played: u64,
    /// Holding queued audio back (silence goes out meanwhile) until resumed.
    paused: bool,
    /// When the first frame after a silence went out: the moment the caller starts hearing us.
    talk_started: Option<Instant>,
    talking: bool,
    /// The sending peer's wake-up, for sound queued after silence.
    wake: Option<Arc<Notify>>,
}

impl Outgoing {
    /// Has the peer send queued sound now if it would otherwise wait for the next slot.
    fn wake_if_waiting(&self) {
        if !self.talking
            && !self.paused
            && self.framer.queued_samples() >= ROOM_FRAME_SAMPLES
            && let Some(wake) = &self.wake
        {
            wake.notify_one();
        }
    }
}

#[derive(Clone, Default)]
pub(crate) struct SharedOutgoing(Arc<Mutex<Outgoing>>);

fn lock(outgoing: &SharedOutgoing) -> std::sync::MutexGuard<'_, Outgoing> {
    outgoing.0.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Our published audio track. Push PCM at any rate; the publisher peer sends it as 20 ms Opus
/// frames in real time. [`clear`](Self::clear) stops what has not been sent yet within one frame
/// (barge-in).
pub struct LocalAudioTrack {
    outgoing: SharedOutgoing,
    sid: watch::Receiver<Option<String>>,
}

impl std::fmt::Debug for LocalAudioTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAudioTrack").field("sid", &self.sid()).finish_non_exhaustive()
    }
}

impl LocalAudioTrack {
    pub(crate) fn new(outgoing: SharedOutgoing, sid: watch::Receiver<Option<String>>) -> Self {
        Self { outgoing, sid }
    }

    /// The track's sid while it is being sent (it changes if the room rejoins).
    pub fn sid(&self) -> Option<String> {
        self.sid.borrow().clone()
    }

    /// Waits until the track is negotiated and frames flow; returns its sid.
    pub async fn ready(&mut self) -> Option<String> {
        self.sid.wait_for(Option::is_some).await.ok().and_then(|sid| sid.clone())
    }

    /// Queues audio to send, resampling it to 48 kHz.
    pub fn push(&self, frame: &AudioFrame) -> Result<(), AudioError> {
        let mut outgoing = lock(&self.outgoing);
        let samples = if frame.sample_rate == ROOM_SAMPLE_RATE {
            frame.samples.clone()
        } else {
            let resampler = match &mut outgoing.resampler {
                Some((rate, resampler)) if *rate == frame.sample_rate => resampler,
                slot => &mut slot.insert((frame.sample_rate, Resampler::new(frame.sample_rate, ROOM_SAMPLE_RATE)?)).1,
            };
            resampler.process(&frame.samples)
        };
        outgoing.framer.push(&samples);
        outgoing.wake_if_waiting();
        Ok(())
    }

    /// Sends everything pushed so far, padding the last partial frame, instead of waiting for
    /// more audio to complete it: call at the end of an utterance.
    pub fn flush(&self) {
        let mut outgoing = lock(&self.outgoing);
        let tail = outgoing.resampler.as_mut().map(|(_, resampler)| resampler.flush()).unwrap_or_default();
        outgoing.framer.push(&tail);
        outgoing.framer.finish();
        outgoing.wake_if_waiting();
    }

    /// Drops everything not yet sent; returns how much audio that was.
    pub fn clear(&self) -> Duration {
        let mut outgoing = lock(&self.outgoing);
        let dropped = outgoing.framer.queued_samples();
        outgoing.framer.clear();
        if let Some((_, resampler)) = &mut outgoing.resampler {
            resampler.reset();
        }
        samples_duration(dropped as u64)
    }

    /// Audio queued and not yet sent.
    pub fn queued(&self) -> Duration {
        samples_duration(lock(&self.outgoing).framer.queued_samples() as u64)
    }

    /// Real audio sent so far (silence between utterances not counted).
    pub fn played(&self) -> Duration {
        samples_duration(lock(&self.outgoing).played)
    }

    /// Holds queued audio back, sending silence, until [`resume`](Self::resume): for speech
    /// that may or may not turn into an interruption.
    pub fn pause(&self) {
        lock(&self.outgoing).paused = true;
    }

    /// Lets queued audio play again after [`pause`](Self::pause).
    pub fn resume(&self) {
        lock(&self.outgoing).paused = false;
    }

    /// When the latest stretch of audio after silence began to be sent.
    pub fn talk_started(&self) -> Option<Instant> {
        lock(&self.outgoing).talk_started
    }
}

fn samples_duration(samples: u64) -> Duration {
    Duration::from_micros(samples * 1_000_000 / u64::from(ROOM_SAMPLE_RATE))
}

/// Encodes a track's frames for the peer that sends them: queued audio, else silence.
///
/// Silence is sent rather than nothing because LiveKit only announces a track once media flows,
/// and receivers' jitter buffers stay primed. Its encoding is cached, so an idle agent costs
/// no encoder time.
pub(crate) struct TrackEncoder {
    outgoing: SharedOutgoing,
    encoder: OpusEncoder,
    silence: Option<Arc<[u8]>>,
    /// The last silence packet encoded, and how many have been since the sound stopped.
    settling: Option<(Arc<[u8]>, u32)>,
}

impl std::fmt::Debug for TrackEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackEncoder").finish_non_exhaustive()
    }
}

impl TrackEncoder {
    pub fn new(outgoing: SharedOutgoing) -> Result<Self, AudioError> {
        Ok(Self { outgoing, encoder: OpusEncoder::new()?, silence: None, settling: None })
    }
}

impl TrackEncoder {
    /// Encodes one frame of silence, and caches it once it is pure silence. Opus (CELT) codes
    /// each frame's energy relative to the previous one, so the first silent frames after sound
    /// still carry its decay: replayed, such a packet would make receivers hear a constant buzz.
    /// Once the encoder's output stops changing, the packet decodes to silence after any state.
    fn settle(&mut self) -> Arc<[u8]> {
        let packet: Arc<[u8]> = match self.encoder.encode(&[0; ROOM_FRAME_SAMPLES]) {
            Ok(packet) => packet.into(),
            Err(e) => {
                tracing::warn!("silence not encoded: {e}");
                // The well-known 20 ms CELT silence frame, what browsers send for muted audio.
                return Arc::from([0xf8_u8, 0xff, 0xfe]);
            }
        };
        let count = match &self.settling {
            Some((previous, count)) if *previous == packet => {
                self.silence = Some(packet.clone());
                *count
            }
            Some((_, count)) => count + 1,
            None => 1,
        };
        if count >= SETTLE_FRAMES {
            self.silence = Some(packet.clone());
        }
        self.settling = Some((packet.clone(), count));
        packet
    }
}

impl AudioSource for TrackEncoder {
    fn attach(&mut self, wake: Arc<Notify>) {
        lock(&self.outgoing).wake = Some(wake);
    }

    fn sound_waiting(&self) -> bool {
        let outgoing = lock(&self.outgoing);
        !outgoing.talking && !outgoing.paused && outgoing.framer.queued_samples() >= ROOM_FRAME_SAMPLES
    }

    fn talking(&self) -> bool {
        lock(&self.outgoing).talking
    }

    fn next_packet(&mut self) -> Option<Arc<[u8]>> {
        let frame = {
            let mut outgoing = lock(&self.outgoing);
            let frame = if outgoing.paused { None } else { outgoing.framer.next_frame() };
            if frame.is_some() {
                outgoing.played += ROOM_FRAME_SAMPLES as u64;
                if !outgoing.talking {
                    outgoing.talking = true;
                    outgoing.talk_started = Some(Instant::now());
                }
            } else {
                outgoing.talking = false;
            }
            frame
        };
        match frame {
            Some(samples) => {
                self.silence = None;
                self.settling = None;
                match self.encoder.encode(&samples) {
                    Ok(packet) => Some(packet.into()),
                    Err(e) => {
                        tracing::warn!("audio frame not encoded: {e}");
                        None
                    }
                }
            }
            None => match &self.silence {
                Some(packet) => Some(packet.clone()),
                None => Some(self.settle()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(samples: usize) -> Vec<i16> {
        (0..samples).map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 8_000.0) as i16).collect()
    }

    /// Decodes `frames` packets from the encoder; the loudest sample of each.
    fn peaks(encoder: &mut TrackEncoder, decoder: &mut OpusDecoder, frames: usize) -> Vec<u16> {
        (0..frames)
            .map(|_| {
                let packet = encoder.next_packet().expect("a packet every frame");
                let pcm = decoder.decode(&packet).expect("decodes");
                pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0)
            })
            .collect()
    }

    #[test]
    fn silence_after_speech_is_heard_as_silence() {
        let outgoing = SharedOutgoing::default();
        let (_sid, sid_rx) = watch::channel(None);
        let track = LocalAudioTrack::new(outgoing.clone(), sid_rx);
        let mut encoder = TrackEncoder::new(outgoing).expect("encoder");
        let mut decoder = OpusDecoder::new().expect("decoder");
        for _ in 0..3 {
            track.push(&AudioFrame { samples: tone(48_000), sample_rate: ROOM_SAMPLE_RATE }).expect("queued");
            let talking = peaks(&mut encoder, &mut decoder, 50);
            assert!(talking.iter().all(|&peak| peak > 4_000), "the tone plays: {talking:?}");
            let quiet = peaks(&mut encoder, &mut decoder, 100);
            assert!(quiet[10..].iter().all(|&peak| peak < 30), "silence after the tone is silent: {quiet:?}");
        }
        assert_eq!(track.played(), Duration::from_secs(3));
    }
}
