//! The noisy-room suite: recorded speech under noise the project makes itself, with the truth
//! about where the speech is, for turn-taking tests and the voice detector bench.
//!
//! - [`speech_corpus`]: clean sentences from Debian's packages (`asterisk-core-sounds-en-wav`,
//!   `codec2-examples`, `alsa-utils`; `scripts/setup.sh` installs them), the espeak-ng fixture
//!   and Hindi spoken by espeak-ng, resampled to 16 kHz and cut at pauses.
//! - [`callers`]: what a caller says in a call, clean: 5 s of silence before the first word, turns
//!   of two sentences with a short pause between them, long pauses between turns, silence after;
//!   at a normal or a soft level ([`SpeechLevel`]), with the speech frames and turns marked.
//! - [`bed`]: noise beds (white, pink, brown, 50 and 60 Hz hum with harmonics, street-like
//!   modulated rumble, music-like sustained chords), deterministic for a seed.
//! - [`mix`] (or [`noisy`]): a caller over a bed at a signal-to-noise ratio, as 16 kHz i16;
//!   [`clean`]: without noise.
//! - [`score`]: how a detector's per-frame decisions compare with the truth, including the turns
//!   [`TurnDetector`] (default configuration) makes of them.
//!
//! SNR is the active speech level (the RMS over the caller's speech frames) over the bed's RMS, so
//! 0 dB means the voice is, while it lasts, as loud as the noise.
//!
//! ```ignore
//! for caller in noise::callers(SpeechLevel::Soft) {
//!     let audio = noise::noisy(&caller, NoiseKind::Pink, 5.0, 1);
//!     let decisions: Vec<bool> = vad.push(&audio).iter().map(|f| f.speech).collect();
//!     assert!(noise::score(&caller, &decisions).turns_reliable());
//! }
//! ```

use std::f64::consts::TAU;
use std::ops::{AddAssign, Range};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use voice_agent::audio::Resampler;
use voice_agent::pipeline::turn::{TurnConfig, TurnDetector, TurnEvent};
use voice_agent::pipeline::vad::{FRAME_DURATION, FRAME_SAMPLES, VadFrame};

/// The suite's sample rate, the voice detectors'.
pub const RATE: u32 = 16_000;

/// The SNRs of the suite's grid, in dB.
pub const SNRS_DB: [f64; 4] = [20.0, 10.0, 5.0, 0.0];

/// Silence (noise only, once mixed) before the caller's first word.
pub const LEAD: Duration = Duration::from_secs(5);

/// The pause between the sentences of one turn: well under the 500 ms that ends a turn.
pub const SENTENCE_PAUSE: Duration = Duration::from_millis(250);

/// The pause between turns.
pub const TURN_PAUSE: Duration = Duration::from_secs(2);

/// Silence after the last word.
pub const TAIL: Duration = Duration::from_secs(3);

/// How late after the end of speech a turn end still counts as found: the turn detector's
/// silence plus this (the issue's requirement: `min_silence_ms` + 300 ms).
pub const TURN_END_SLACK: Duration = Duration::from_millis(300);

/// Frames at least this far from any speech count as noise only.
pub const NOISE_ONLY_DISTANCE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoiseKind {
    White,
    Pink,
    Brown,
    /// 50 Hz mains hum: harmonics to 600 Hz, the second and odd ones strongest.
    Hum50,
    Hum60,
    /// Traffic: brown and pink noise whose level swells by up to 15 dB as vehicles pass.
    Street,
    /// Sustained four-note chords of harmonic tones with vibrato, changing every 2 s.
    Music,
}

impl NoiseKind {
    pub const ALL: [NoiseKind; 7] = [
        NoiseKind::White,
        NoiseKind::Pink,
        NoiseKind::Brown,
        NoiseKind::Hum50,
        NoiseKind::Hum60,
        NoiseKind::Street,
        NoiseKind::Music,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NoiseKind::White => "white",
            NoiseKind::Pink => "pink",
            NoiseKind::Brown => "brown",
            NoiseKind::Hum50 => "hum50",
            NoiseKind::Hum60 => "hum60",
            NoiseKind::Street => "street",
            NoiseKind::Music => "music",
        }
    }

    /// Stationary beds must be handled down to 5 dB SNR, modulated ones (street, music) to 10 dB.
    pub fn is_stationary(self) -> bool {
        !matches!(self, NoiseKind::Street | NoiseKind::Music)
    }

    /// The lowest SNR the product must handle this noise at.
    pub fn required_snr_db(self) -> f64 {
        if self.is_stationary() { 5.0 } else { 10.0 }
    }
}

/// How loud the caller speaks: the active speech level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpeechLevel {
    /// -26 dBFS, a caller at a normal distance from a phone or headset.
    Normal,
    /// -41 dBFS, a soft voice or a distant microphone.
    Soft,
}

impl SpeechLevel {
    pub const ALL: [SpeechLevel; 2] = [SpeechLevel::Normal, SpeechLevel::Soft];

    pub fn dbfs(self) -> f64 {
        match self {
            SpeechLevel::Normal => -26.0,
            SpeechLevel::Soft => -41.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SpeechLevel::Normal => "normal",
            SpeechLevel::Soft => "soft",
        }
    }
}

/// One clean sentence, 16 kHz, in [-1, 1], with no pause inside longer than 350 ms.
#[derive(Debug, Clone)]
pub struct Sentence {
    /// Where it came from, e.g. `asterisk/demo-congrats#2`.
    pub source: String,
    pub samples: Vec<f32>,
}

/// A caller's side of a call, clean; see the module documentation for its structure.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub level: SpeechLevel,
    /// 16 kHz, in [-1, 1], at `level`.
    pub samples: Vec<f32>,
    /// The truth, one entry per 20 ms frame: whether the clean signal holds speech there
    /// (frames within 30 dB of the speech level, gaps up to 200 ms inside words closed).
    pub speech: Vec<bool>,
    /// Each turn, from its first to its last speech sample.
    pub turns: Vec<Range<usize>>,
}

impl Caller {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(RATE)
    }
}

/// Every sentence of the corpus; built once per process. Panics, naming the missing file, when
/// the Debian packages or espeak-ng are not installed (`scripts/setup.sh` installs them).
pub fn speech_corpus() -> &'static [Sentence] {
    static CORPUS: OnceLock<Vec<Sentence>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut sentences = Vec::new();
        for (source, path) in RECORDINGS {
            sentences.extend(split(source, &read_wav(Path::new(path))));
        }
        let fixture = super::repo_path("tests/fixtures/speech.wav");
        sentences.extend(split("fixture/speech", &read_wav(&fixture)));
        for (index, text) in HINDI.iter().enumerate() {
            sentences.extend(split(&format!("espeak-ng/hi#{index}"), &espeak_hindi(text)));
        }
        sentences
    })
}

/// Recordings the corpus reads, all clean (at least 45 dB between speech and the silence in them).
const RECORDINGS: [(&str, &str); 13] = [
    ("asterisk/conf-getpin", "/usr/share/asterisk/sounds/en_US_f_Allison/conf-getpin.wav"),
    ("asterisk/vm-login", "/usr/share/asterisk/sounds/en_US_f_Allison/vm-login.wav"),
    ("asterisk/conf-onlyperson", "/usr/share/asterisk/sounds/en_US_f_Allison/conf-onlyperson.wav"),
    ("asterisk/conf-getconfno", "/usr/share/asterisk/sounds/en_US_f_Allison/conf-getconfno.wav"),
    ("asterisk/pbx-invalid", "/usr/share/asterisk/sounds/en_US_f_Allison/pbx-invalid.wav"),
    ("asterisk/privacy-prompt", "/usr/share/asterisk/sounds/en_US_f_Allison/privacy-prompt.wav"),
    ("codec2/hts1a", "/usr/share/codec2/wav/hts1a.wav"),
    ("codec2/hts2a", "/usr/share/codec2/wav/hts2a.wav"),
    ("codec2/morig", "/usr/share/codec2/wav/morig.wav"),
    ("codec2/big_dog", "/usr/share/codec2/wav/big_dog.wav"),
    ("codec2/m2400", "/usr/share/codec2/wav/m2400.wav"),
    ("alsa/Front_Center", "/usr/share/sounds/alsa/Front_Center.wav"),
    ("alsa/Front_Left", "/usr/share/sounds/alsa/Front_Left.wav"),
];

const HINDI: [&str; 3] = [
    "नमस्ते, मुझे कल सुबह डॉक्टर से मिलने का समय चाहिए।",
    "मेरा नाम राहुल शर्मा है और मेरा नंबर नौ आठ सात छह है।",
    "क्या आप बता सकते हैं कि क्लिनिक शाम को कितने बजे तक खुला रहता है?",
];

/// The suite's callers at `level`: a female English voice (Asterisk's prompts), male English
/// voices (codec2's and ALSA's recordings), and espeak-ng in English and Hindi. Three turns each
/// but the last, which has two.
pub fn callers(level: SpeechLevel) -> Vec<Caller> {
    let corpus = speech_corpus();
    // Sentences of up to 8 s keep each caller under half a minute.
    let from = |prefix: &str| -> Vec<&Sentence> {
        let seconds = |s: &Sentence| s.samples.len() as f64 / f64::from(RATE);
        corpus.iter().filter(|s| s.source.starts_with(prefix) && seconds(s) <= 8.0).collect()
    };
    let allison: Vec<&Sentence> = from("asterisk/").into_iter().take(6).collect();
    let mut male = from("codec2/");
    male.extend(from("alsa/"));
    male.truncate(6);
    let mut espeak = from("fixture/");
    espeak.truncate(2);
    espeak.extend(from("espeak-ng/hi").into_iter().take(2));
    [("allison", allison), ("male", male), ("espeak", espeak)]
        .into_iter()
        .map(|(name, sentences)| {
            assert!(sentences.len() >= 4 && sentences.len() % 2 == 0, "{name}: the corpus is short of sentences");
            let turns: Vec<&[&Sentence]> = sentences.chunks(2).collect();
            caller(name, &turns, level)
        })
        .collect()
}

/// A caller saying `turns` (each a list of sentences) at `level`, laid out as the module
/// documentation describes.
pub fn caller(name: &str, turns: &[&[&Sentence]], level: SpeechLevel) -> Caller {
    let gain = 10f64.powf(level.dbfs() / 20.0) as f32;
    let mut samples = silence(LEAD);
    let mut placed = Vec::new();
    for (index, turn) in turns.iter().enumerate() {
        if index > 0 {
            samples.extend(silence(TURN_PAUSE));
        }
        let start = samples.len();
        for (position, sentence) in turn.iter().enumerate() {
            if position > 0 {
                samples.extend(silence(SENTENCE_PAUSE));
            }
            let scale = gain / active_rms(&sentence.samples);
            samples.extend(sentence.samples.iter().map(|s| s * scale));
        }
        placed.push(start..samples.len());
    }
    samples.extend(silence(TAIL));
    let speech = truth(&samples, level);
    let turns = placed
        .into_iter()
        .map(|range| {
            let frames = range.start / FRAME_SAMPLES..range.end.div_ceil(FRAME_SAMPLES);
            let first = frames.clone().find(|&f| speech[f]).expect("every turn holds speech");
            let last = frames.rev().find(|&f| speech[f]).expect("every turn holds speech");
            first * FRAME_SAMPLES..(last + 1) * FRAME_SAMPLES
        })
        .collect();
    Caller { name: name.to_owned(), level, samples, speech, turns }
}

/// `seconds` of noise of `kind` at an RMS of 1, 16 kHz; the same seed gives the same noise.
pub fn bed(kind: NoiseKind, seconds: f64, seed: u64) -> Vec<f32> {
    let len = (seconds * f64::from(RATE)).ceil() as usize;
    let mut random = Random::new(seed ^ (kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let raw: Vec<f64> = match kind {
        NoiseKind::White => (0..len).map(|_| random.gaussian()).collect(),
        NoiseKind::Pink => pink(len, &mut random),
        NoiseKind::Brown => brown(len, &mut random),
        NoiseKind::Hum50 => hum(len, 50.0, &mut random),
        NoiseKind::Hum60 => hum(len, 60.0, &mut random),
        NoiseKind::Street => street(len, &mut random),
        NoiseKind::Music => music(len, &mut random),
    };
    let rms = (raw.iter().map(|x| x * x).sum::<f64>() / raw.len().max(1) as f64).sqrt();
    raw.iter().map(|x| (x / rms) as f32).collect()
}

/// The caller over `bed` (repeated if shorter) at `snr_db`, as 16 kHz i16, clipped at full scale.
pub fn mix(caller: &Caller, bed: &[f32], snr_db: f64) -> Vec<i16> {
    assert!(!bed.is_empty(), "an empty noise bed");
    let bed_rms = (bed.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / bed.len() as f64).sqrt();
    let noise_rms = 10f64.powf((caller.level.dbfs() - snr_db) / 20.0);
    let gain = (noise_rms / bed_rms) as f32;
    caller
        .samples
        .iter()
        .zip(bed.iter().cycle())
        .map(|(speech, noise)| ((speech + gain * noise) * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// The caller alone, as 16 kHz i16.
pub fn clean(caller: &Caller) -> Vec<i16> {
    caller.samples.iter().map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).collect()
}

/// The caller over a bed of `kind` at `snr_db`.
pub fn noisy(caller: &Caller, kind: NoiseKind, snr_db: f64, seed: u64) -> Vec<i16> {
    mix(caller, &bed(kind, caller.seconds(), seed), snr_db)
}

/// How a detector's decisions (one per 20 ms frame, from the start of the caller's audio) compare
/// with the truth. Add scores to pool callers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Score {
    pub speech_frames: usize,
    pub detected_frames: usize,
    pub true_positives: usize,
    pub noise_only_frames: usize,
    pub false_alarms: usize,
    pub turns: usize,
    /// Turns whose end the turn detector found within `min_silence` + [`TURN_END_SLACK`] of the
    /// end of speech.
    pub turn_ends_found: usize,
    /// Turn ends inside a turn's speech: a pause taken for the end of the turn.
    pub splits: usize,
    /// Turn ends outside every turn: turns made by noise alone.
    pub phantom_turns: usize,
}

impl Score {
    pub fn precision(&self) -> f64 {
        ratio(self.true_positives, self.detected_frames)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.true_positives, self.speech_frames)
    }

    /// The share of noise-only frames called speech.
    pub fn false_alarm_rate(&self) -> f64 {
        ratio(self.false_alarms, self.noise_only_frames)
    }

    /// Every turn ended once, in time, and nothing else ended a turn.
    pub fn turns_reliable(&self) -> bool {
        self.turn_ends_found == self.turns && self.splits == 0 && self.phantom_turns == 0
    }
}

impl AddAssign for Score {
    fn add_assign(&mut self, other: Self) {
        self.speech_frames += other.speech_frames;
        self.detected_frames += other.detected_frames;
        self.true_positives += other.true_positives;
        self.noise_only_frames += other.noise_only_frames;
        self.false_alarms += other.false_alarms;
        self.turns += other.turns;
        self.turn_ends_found += other.turn_ends_found;
        self.splits += other.splits;
        self.phantom_turns += other.phantom_turns;
    }
}

/// Scores `decisions` (frame `i` covers samples `320 i .. 320 (i + 1)`) against `caller`.
pub fn score(caller: &Caller, decisions: &[bool]) -> Score {
    let frames = decisions.len().min(caller.speech.len());
    let reach = (NOISE_ONLY_DISTANCE.as_millis() / FRAME_DURATION.as_millis()) as usize;
    let mut near_speech = vec![false; frames];
    for index in (0..frames).filter(|&index| caller.speech[index]) {
        for near in &mut near_speech[index.saturating_sub(reach)..(index + reach + 1).min(frames)] {
            *near = true;
        }
    }
    let mut score = Score { turns: caller.turns.len(), ..Score::default() };
    for index in 0..frames {
        let (truth, said) = (caller.speech[index], decisions[index]);
        score.speech_frames += usize::from(truth);
        score.detected_frames += usize::from(said);
        score.true_positives += usize::from(truth && said);
        if !near_speech[index] {
            score.noise_only_frames += 1;
            score.false_alarms += usize::from(said);
        }
    }

    let config = TurnConfig::default();
    let mut detector = TurnDetector::new(config);
    let start = Instant::now();
    let frame_time = |index: usize| start + FRAME_DURATION * (index as u32 + 1);
    let mut ends = Vec::new();
    let silent = VadFrame { speech: false, samples: [0; FRAME_SAMPLES] };
    let speaking = VadFrame { speech: true, samples: [0; FRAME_SAMPLES] };
    for (index, &said) in decisions.iter().enumerate() {
        let now = frame_time(index);
        for event in detector.on_frame(now, if said { &speaking } else { &silent }, false) {
            if matches!(event, TurnEvent::UserTurnEnded { .. }) {
                ends.push(now);
            }
        }
    }
    let after = frame_time(decisions.len()) + config.min_silence * 2;
    if detector.on_tick(after, false).iter().any(|e| matches!(e, TurnEvent::UserTurnEnded { .. })) {
        ends.push(after);
    }
    let at = |sample: usize| start + Duration::from_secs_f64(sample as f64 / f64::from(RATE));
    let mut found = vec![false; caller.turns.len()];
    for end in ends {
        let window =
            |turn: &Range<usize>| end > at(turn.start) && end <= at(turn.end) + config.min_silence + TURN_END_SLACK;
        match caller.turns.iter().position(window) {
            Some(turn) if end <= at(caller.turns[turn].end) => score.splits += 1,
            Some(turn) if !found[turn] => found[turn] = true,
            // A second end after the turn's: a turn made of the noise after it.
            Some(_) | None => score.phantom_turns += 1,
        }
    }
    score.turn_ends_found = found.iter().filter(|&&f| f).count();
    score
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 1.0 } else { part as f64 / whole as f64 }
}

fn silence(duration: Duration) -> Vec<f32> {
    vec![0.0; (duration.as_secs_f64() * f64::from(RATE)).round() as usize]
}

/// Mean power of each whole 20 ms frame, in dB relative to full scale.
fn frame_db(samples: &[f32]) -> Vec<f64> {
    samples
        .chunks_exact(FRAME_SAMPLES)
        .map(|frame| {
            let power = frame.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / FRAME_SAMPLES as f64;
            10.0 * power.max(1e-20).log10()
        })
        .collect()
}

/// The RMS over the frames within 30 dB of the loudest: the level of the speech, not of the
/// pauses in it.
fn active_rms(samples: &[f32]) -> f32 {
    let db = frame_db(samples);
    let peak = db.iter().copied().fold(f64::MIN, f64::max);
    let active: Vec<f64> = db.into_iter().filter(|&d| d > peak - 30.0).collect();
    let power = active.iter().map(|d| 10f64.powf(d / 10.0)).sum::<f64>() / active.len().max(1) as f64;
    power.sqrt() as f32
}

/// Speech frames of a clean caller: within 30 dB of the speech level, with gaps of up to 200 ms
/// (stop consonants, breaths inside a phrase) closed.
fn truth(samples: &[f32], level: SpeechLevel) -> Vec<bool> {
    let threshold = level.dbfs() - 30.0;
    let mut speech: Vec<bool> = frame_db(samples).into_iter().map(|d| d > threshold).collect();
    let mut last_speech: Option<usize> = None;
    for index in 0..speech.len() {
        if speech[index] {
            if let Some(last) = last_speech.filter(|&last| index - last <= 10) {
                speech[last..index].fill(true);
            }
            last_speech = Some(index);
        }
    }
    speech
}

/// Cuts a recording into sentences at pauses of 360 ms or more, each trimmed to its speech with
/// 40 ms either side; fragments under 500 ms are dropped.
fn split(source: &str, samples: &[f32]) -> Vec<Sentence> {
    let db = frame_db(samples);
    let peak = db.iter().copied().fold(f64::MIN, f64::max);
    let loud: Vec<usize> = (0..db.len()).filter(|&i| db[i] > peak - 30.0).collect();
    let mut runs: Vec<Range<usize>> = Vec::new();
    for index in loud {
        match runs.last_mut() {
            Some(run) if index - run.end < 18 => run.end = index + 1,
            _ => runs.push(index..index + 1),
        }
    }
    runs.into_iter()
        .filter(|run| run.len() >= 25)
        .enumerate()
        .map(|(number, run)| {
            let from = run.start.saturating_sub(2) * FRAME_SAMPLES;
            let to = ((run.end + 2) * FRAME_SAMPLES).min(samples.len());
            Sentence { source: format!("{source}#{number}"), samples: samples[from..to].to_vec() }
        })
        .collect()
}

/// A mono 16-bit WAV, resampled to [`RATE`], in [-1, 1].
fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap_or_else(|e| {
        panic!("cannot read {} ({e}); scripts/setup.sh installs the speech packages", path.display())
    });
    let spec = reader.spec();
    assert!(spec.channels == 1 && spec.bits_per_sample == 16, "{}: not mono 16-bit PCM", path.display());
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.expect("a valid WAV sample")).collect();
    let mut resampler = Resampler::new(spec.sample_rate, RATE).expect("the recordings' rates are supported");
    let mut out = resampler.process(&samples);
    out.extend(resampler.flush());
    out.into_iter().map(|s| f32::from(s) / 32768.0).collect()
}

/// `text` spoken by espeak-ng's Hindi voice.
fn espeak_hindi(text: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("hindi.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "hi", "-s", "150", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .unwrap_or_else(|e| panic!("cannot run espeak-ng ({e}); scripts/setup.sh installs it"));
    assert!(status.success(), "espeak-ng failed: {status}");
    read_wav(&path)
}

/// SplitMix64: small, fast and the same everywhere, so a seed names one bed forever.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
    }
}

/// Paul Kellet's refined pink filter (-3 dB per octave within 0.05 dB above 9 Hz at 44.1 kHz; a
/// little steeper at the low end at 16 kHz).
fn pink(len: usize, random: &mut Random) -> Vec<f64> {
    let mut b = [0.0f64; 7];
    (0..len)
        .map(|_| {
            let white = random.gaussian();
            b[0] = 0.99886 * b[0] + white * 0.0555179;
            b[1] = 0.99332 * b[1] + white * 0.0750759;
            b[2] = 0.96900 * b[2] + white * 0.1538520;
            b[3] = 0.86650 * b[3] + white * 0.3104856;
            b[4] = 0.55000 * b[4] + white * 0.5329522;
            b[5] = -0.7616 * b[5] - white * 0.0168980;
            let out = b[..6].iter().sum::<f64>() + b[6] + white * 0.5362;
            b[6] = white * 0.115926;
            out
        })
        .collect()
}

/// White noise integrated with a leak (-6 dB per octave above about 25 Hz).
fn brown(len: usize, random: &mut Random) -> Vec<f64> {
    let mut level = 0.0;
    (0..len)
        .map(|_| {
            level = 0.99 * level + random.gaussian();
            level
        })
        .collect()
}

fn hum(len: usize, mains: f64, random: &mut Random) -> Vec<f64> {
    // Transformers and rectifiers: a strong second harmonic, odd ones above, falling with order.
    let harmonics: Vec<(f64, f64, f64)> = (1..=12)
        .map(|k| {
            let k = f64::from(k);
            let amplitude = if k == 2.0 {
                1.0
            } else if k % 2.0 == 1.0 {
                0.8 / k
            } else {
                0.3 / k
            };
            (k * mains, amplitude, random.uniform() * TAU)
        })
        .collect();
    // The tone repeats exactly every RATE / gcd(RATE, mains) samples (320 at 50 Hz, 800 at 60 Hz).
    let period = (f64::from(RATE) / gcd(RATE, mains as u32) as f64) as usize;
    let cycle: Vec<f64> = (0..period)
        .map(|n| {
            let t = n as f64 / f64::from(RATE);
            harmonics.iter().map(|(f, a, p)| a * (TAU * f * t + p).sin()).sum()
        })
        .collect();
    (0..len).map(|n| cycle[n % period] + 0.01 * random.gaussian()).collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn street(len: usize, random: &mut Random) -> Vec<f64> {
    let rumble: Vec<f64> = brown(len, random).iter().zip(pink(len, random)).map(|(b, p)| 0.08 * b + p).collect();
    let seconds = len as f64 / f64::from(RATE);
    // A vehicle passes every 2.5 s on average, each swelling for 1.5 to 4 s.
    let mut passes = Vec::new();
    let mut at = -2.0;
    while at < seconds + 2.0 {
        passes.push((at, 1.5 + 2.5 * random.uniform(), 1.0 + 4.0 * random.uniform()));
        at += 0.5 + 4.0 * random.uniform();
    }
    // The level, every 10 ms: far finer than a passing vehicle changes it.
    const STEP: usize = 160;
    let envelope: Vec<f64> = (0..len.div_ceil(STEP))
        .map(|step| {
            let t = (step * STEP) as f64 / f64::from(RATE);
            0.3 + passes
                .iter()
                .map(|(centre, width, height)| height * (-((t - centre) / width).powi(2)).exp())
                .sum::<f64>()
        })
        .collect();
    rumble.iter().enumerate().map(|(n, x)| x * envelope[n / STEP]).collect()
}

fn music(len: usize, random: &mut Random) -> Vec<f64> {
    // C, A minor, F and G major, voiced over two octaves with the root in the bass (MIDI notes).
    const CHORDS: [[f64; 4]; 4] =
        [[48.0, 64.0, 67.0, 72.0], [45.0, 64.0, 69.0, 72.0], [41.0, 65.0, 69.0, 72.0], [43.0, 62.0, 67.0, 71.0]];
    const CHORD_SECONDS: f64 = 2.0;
    const TABLE: usize = 2_048;
    // One period of each voice's tone: six partials falling 4.5 dB per octave, random phases.
    let tables: Vec<Vec<f64>> = (0..4)
        .map(|_| {
            let phases: Vec<f64> = (0..6).map(|_| random.uniform() * TAU).collect();
            (0..TABLE)
                .map(|n| {
                    let x = TAU * n as f64 / TABLE as f64;
                    (1..=6).map(|k| (x * f64::from(k) + phases[k as usize - 1]).sin() / f64::from(k).powf(1.5)).sum()
                })
                .collect()
        })
        .collect();
    let offset = (random.uniform() * 4.0).floor() * CHORD_SECONDS;
    let mut phase = [0.0f64; 4];
    (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(RATE) + offset;
            let chord = CHORDS[(t / CHORD_SECONDS) as usize % CHORDS.len()];
            let within = t % CHORD_SECONDS;
            // A soft attack and release around each change, sustained in between.
            let envelope = (within / 0.08).min(1.0) * ((CHORD_SECONDS - within) / 0.15).min(1.0);
            let vibrato = 1.0 + 0.003 * (TAU * 5.0 * t).sin();
            let mut sum = 0.0;
            for (voice, &note) in chord.iter().enumerate() {
                let frequency = 440.0 * 2f64.powf((note - 69.0) / 12.0) * vibrato;
                phase[voice] = (phase[voice] + frequency / f64::from(RATE)).fract();
                sum += tables[voice][(phase[voice] * TABLE as f64) as usize % TABLE];
            }
            sum * envelope
        })
        .collect()
}
