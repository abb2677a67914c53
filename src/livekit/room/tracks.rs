//! Audio tracks of a room: remote ones decoded to PCM on the consumer's task, and our own, fed
//! with PCM at any rate and sent as Opus in real time by a pacing task.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::audio::{
    AudioError, AudioFrame, Framer, OpusDecoder, OpusEncoder, Pacer, ROOM_FRAME_SAMPLES, ROOM_SAMPLE_RATE, Resampler,
};
use crate::livekit::peer::{MediaPacket, PeerCommand, PeerHandle};

/// Gaps up to this long are filled by Opus concealment (lost packets); longer ones are the
/// sender pausing (DTX, mute), filled with silence so time keeps flowing for whoever listens.
const CONCEAL_LIMIT: u64 = 12 * ROOM_FRAME_SAMPLES as u64;
/// Beyond this the sender restarted its clock; nothing is filled.
const SILENCE_LIMIT: u64 = 10 * ROOM_SAMPLE_RATE as u64;
/// libopus conceals at most 120 ms per call.
const MAX_CONCEAL_CHUNK: u64 = 5760;

/// Someone else's audio track, subscribed. Decoding happens in [`recv`](Self::recv), on the
/// consumer's own task, so an unused track costs nothing but its queue.
pub struct RemoteAudioTrack {
    pub participant_identity: String,
    pub participant_sid: String,
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

/// Where our track's frames go: the publisher peer and the section it negotiated.
#[derive(Debug, Clone)]
pub(crate) struct TrackSink {
    pub peer: PeerHandle,
    pub mid: String,
    /// The track's sid in the current session (it changes when we rejoin).
    pub sid: String,
}

/// PCM waiting to be sent, shared by the pushing side and the pacing task.
struct Outgoing {
    resampler: Option<(u32, Resampler)>,
    framer: Framer,
    /// Samples of real (pushed) audio sent so far.
    played: u64,
}

/// Our published audio track. Push PCM at any rate; it leaves as 20 ms Opus frames in real
/// time. [`clear`](Self::clear) stops what has not been sent yet within one frame (barge-in).
pub struct LocalAudioTrack {
    sink: watch::Receiver<Option<TrackSink>>,
    outgoing: Arc<Mutex<Outgoing>>,
    pacing: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalAudioTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAudioTrack").field("sid", &self.sid()).finish_non_exhaustive()
    }
}

impl LocalAudioTrack {
    pub(crate) fn start(sink: watch::Receiver<Option<TrackSink>>) -> Result<Self, AudioError> {
        let encoder = OpusEncoder::new()?;
        let outgoing = Arc::new(Mutex::new(Outgoing { resampler: None, framer: Framer::new(), played: 0 }));
        let pacing = tokio::spawn(pace(outgoing.clone(), sink.clone(), encoder));
        Ok(Self { sink, outgoing, pacing })
    }

    /// The track's sid, once the server assigned it (it changes if the room reconnects).
    pub fn sid(&self) -> Option<String> {
        self.sink.borrow().as_ref().map(|sink| sink.sid.clone())
    }

    /// Waits until the track is negotiated and frames can flow; returns its sid.
    pub async fn ready(&mut self) -> Option<String> {
        self.sink.wait_for(Option::is_some).await.ok().and_then(|sink| sink.as_ref().map(|s| s.sid.clone()))
    }

    /// Queues audio to send, resampling it to 48 kHz.
    pub fn push(&self, frame: &AudioFrame) -> Result<(), AudioError> {
        let mut outgoing = self.lock();
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
        Ok(())
    }

    /// Sends everything pushed so far, padding the last partial frame, instead of waiting for
    /// more audio to complete it: call at the end of an utterance.
    pub fn flush(&self) {
        let mut outgoing = self.lock();
        let tail = outgoing.resampler.as_mut().map(|(_, resampler)| resampler.flush()).unwrap_or_default();
        outgoing.framer.push(&tail);
        outgoing.framer.finish();
    }

    /// Drops everything not yet sent; returns how much audio that was.
    pub fn clear(&self) -> Duration {
        let mut outgoing = self.lock();
        let dropped = outgoing.framer.queued_samples();
        outgoing.framer.clear();
        if let Some((_, resampler)) = &mut outgoing.resampler {
            resampler.reset();
        }
        samples_duration(dropped as u64)
    }

    /// Audio queued and not yet sent.
    pub fn queued(&self) -> Duration {
        samples_duration(self.lock().framer.queued_samples() as u64)
    }

    /// Real audio sent so far (silence between utterances not counted).
    pub fn played(&self) -> Duration {
        samples_duration(self.lock().played)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for LocalAudioTrack {
    fn drop(&mut self) {
        self.pacing.abort();
    }
}

fn samples_duration(samples: u64) -> Duration {
    Duration::from_micros(samples * 1_000_000 / u64::from(ROOM_SAMPLE_RATE))
}

/// Sends one frame every 20 ms once the track is negotiated: queued audio, else silence.
///
/// Silence is sent rather than nothing because LiveKit only announces a track once media flows,
/// and receivers' jitter buffers stay primed. Its encoding is cached, so an idle agent costs
/// no encoder time.
async fn pace(outgoing: Arc<Mutex<Outgoing>>, mut sink: watch::Receiver<Option<TrackSink>>, mut encoder: OpusEncoder) {
    if sink.wait_for(Option::is_some).await.is_err() {
        return;
    }
    let rtp_base = u64::from(rand::random::<u32>());
    let mut pacer = Pacer::new(Instant::now(), 0);
    let mut silence: Option<Arc<[u8]>> = None;
    loop {
        tokio::time::sleep_until(pacer.next_deadline().into()).await;
        let now = Instant::now();
        let Some(slot) = pacer.poll(now) else { continue };
        let frame = {
            let mut outgoing = outgoing.lock().unwrap_or_else(PoisonError::into_inner);
            let frame = outgoing.framer.next_frame();
            if frame.is_some() {
                outgoing.played += ROOM_FRAME_SAMPLES as u64;
            }
            frame
        };
        let data: Arc<[u8]> = match frame {
            Some(samples) => {
                silence = None;
                match encoder.encode(&samples) {
                    Ok(packet) => packet.into(),
                    Err(e) => {
                        tracing::warn!("audio frame not encoded: {e}");
                        continue;
                    }
                }
            }
            None => match &silence {
                Some(packet) => packet.clone(),
                None => match encoder.encode(&[0; ROOM_FRAME_SAMPLES]) {
                    Ok(packet) => silence.insert(packet.into()).clone(),
                    Err(_) => continue,
                },
            },
        };
        let target = sink.borrow().clone();
        match target {
            Some(target) => {
                let rtp_time = rtp_base + slot.index * ROOM_FRAME_SAMPLES as u64;
                target.peer.try_send(PeerCommand::WriteAudio { mid: target.mid, rtp_time, wallclock: now, data });
            }
            None if sink.has_changed().is_err() => return,
            None => {}
        }
    }
}
