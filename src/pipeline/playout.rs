//! Which of the agent's words the caller has heard. Transcripts are revealed from this, never
//! ahead of the audio, and after a barge-in the conversation history keeps exactly this.

use std::time::Duration;

/// One sentence's place on the track's playout clock.
#[derive(Debug, Clone)]
struct Spoken {
    text: String,
    start: Duration,
    end: Duration,
}

#[derive(Debug, Default)]
pub struct Playout {
    sentences: Vec<Spoken>,
    /// The text revealed so far, as one string.
    heard: String,
}

impl Playout {
    /// A sentence was queued: it plays from `start` (the track's playout time where it was
    /// queued) for `duration`.
    pub fn add(&mut self, text: &str, start: Duration, duration: Duration) {
        self.sentences.push(Spoken { text: text.trim().to_owned(), start, end: start + duration });
    }

    /// The words heard by `played` that were not revealed before: whole sentences that have
    /// played, and the whole words of the sentence playing, in proportion to its audio.
    pub fn advance(&mut self, played: Duration) -> String {
        let mut now = String::new();
        for sentence in &self.sentences {
            if sentence.start > played {
                break;
            }
            let part = if played >= sentence.end {
                sentence.text.as_str()
            } else {
                let span = (sentence.end - sentence.start).as_secs_f64();
                let fraction = if span > 0.0 { (played - sentence.start).as_secs_f64() / span } else { 1.0 };
                whole_words(&sentence.text, fraction)
            };
            if !now.is_empty() && !part.is_empty() {
                now.push(' ');
            }
            now.push_str(part);
        }
        let delta = now.strip_prefix(self.heard.as_str()).map(str::to_owned).unwrap_or_default();
        if now.len() > self.heard.len() {
            self.heard = now;
        }
        delta
    }

    /// Sentences queued so far.
    pub fn len(&self) -> usize {
        self.sentences.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sentences.is_empty()
    }

    /// Where on the playout clock the last queued sentence ends.
    pub fn end(&self) -> Duration {
        self.sentences.last().map_or(Duration::ZERO, |last| last.end)
    }

    /// Everything heard so far.
    pub fn heard(&self) -> &str {
        &self.heard
    }

    /// Whether every queued sentence has been heard whole.
    pub fn finished(&self, played: Duration) -> bool {
        self.sentences.last().is_none_or(|last| played >= last.end)
    }
}

/// The leading whole words of `text` covering about `fraction` of its characters.
fn whole_words(text: &str, fraction: f64) -> &str {
    let characters = text.chars().count();
    let wanted = (characters as f64 * fraction.clamp(0.0, 1.0)).floor() as usize;
    let cut = text.char_indices().nth(wanted).map_or(text.len(), |(index, _)| index);
    if cut == text.len() {
        return text;
    }
    text[..cut].rfind(char::is_whitespace).map_or("", |space| text[..space].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn words_appear_as_their_audio_plays_never_before() {
        let mut playout = Playout::default();
        playout.add("Hello there friend.", MS(0), MS(1000));
        playout.add("How are you?", MS(1000), MS(1000));
        assert_eq!(playout.advance(MS(0)), "");
        assert_eq!(playout.advance(MS(400)), "Hello");
        assert_eq!(playout.advance(MS(700)), " there");
        assert_eq!(playout.advance(MS(1000)), " friend.");
        assert_eq!(playout.advance(MS(1999)), " How are");
        assert_eq!(playout.advance(MS(5000)), " you?");
        assert_eq!(playout.heard(), "Hello there friend. How are you?");
        assert!(playout.finished(MS(2000)));
    }

    #[test]
    fn an_interruption_keeps_only_what_was_heard() {
        let mut playout = Playout::default();
        playout.add("नमस्ते, मैं सुनीता बोल रही हूँ।", MS(500), MS(2000));
        playout.advance(MS(1500));
        assert_eq!(playout.heard(), "नमस्ते, मैं");
        assert!(!playout.finished(MS(1500)));
        assert_eq!(playout.advance(MS(1400)), "", "time never unsays words");
    }
}
