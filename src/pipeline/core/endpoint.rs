//! How long to wait, once the caller pauses, before taking the turn: judged from the words
//! heard so far. A complete sentence ("What time do you open?") is answered sooner than the
//! default; a pause after "and", "um", or in the middle of reading out a number is waited out
//! longer, since that caller is still thinking.

use std::time::Duration;

/// The waits to choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpointing {
    /// After a sentence that is complete.
    pub complete: Duration,
    /// When the words say nothing either way: the profile's `min_silence`.
    pub default: Duration,
    /// After a word that promises more, or a number being read out.
    pub unfinished: Duration,
}

/// Words after which people go on (English, Hindi in Devanagari and romanised): conjunctions,
/// fillers, and words that introduce what follows.
const CONTINUATIONS: &[&str] = &[
    "and",
    "but",
    "or",
    "so",
    "because",
    "um",
    "umm",
    "uh",
    "uhh",
    "er",
    "erm",
    "hmm",
    "like",
    "the",
    "a",
    "an",
    "to",
    "of",
    "with",
    "my",
    "is",
    "are",
    "was",
    "if",
    "that",
    "which",
    "then",
    "also",
    "plus",
    "for",
    "at",
    "in",
    "और",
    "लेकिन",
    "पर",
    "या",
    "तो",
    "कि",
    "क्योंकि",
    "मतलब",
    "जैसे",
    "अगर",
    "फिर",
    "भी",
    "मेरा",
    "मेरी",
    "मेरे",
    "का",
    "की",
    "के",
    "में",
    "से",
    "को",
    "aur",
    "lekin",
    "par",
    "ya",
    "to",
    "ki",
    "kyunki",
    "matlab",
    "jaise",
    "agar",
    "phir",
    "bhi",
];

/// The wait after `text`, the words heard so far in this turn.
pub(crate) fn silence_after(text: &str, waits: Endpointing) -> Duration {
    let trimmed = text.trim();
    let Some(last) = trimmed.split_whitespace().last() else { return waits.default };
    let word = last.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    let ends_sentence = trimmed.ends_with(['.', '?', '!', '।', '॥']);
    let comma = trimmed.ends_with([',', ';', ':', '-', '…']);
    if comma || (!ends_sentence && reading_a_number(trimmed)) || (!ends_sentence && is_continuation(&word)) {
        return waits.unfinished;
    }
    if ends_sentence && !trimmed.ends_with("...") {
        return waits.complete;
    }
    waits.default
}

fn is_continuation(word: &str) -> bool {
    CONTINUATIONS.contains(&word)
}

/// A phone number or amount read out digit group by digit group: the last word holds a digit
/// and no sentence mark closes it.
fn reading_a_number(text: &str) -> bool {
    text.split_whitespace()
        .last()
        .is_some_and(|word| word.chars().any(|c| c.is_ascii_digit() || is_devanagari_digit(c)))
}

fn is_devanagari_digit(c: char) -> bool {
    ('\u{0966}'..='\u{096F}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAITS: Endpointing = Endpointing {
        complete: Duration::from_millis(300),
        default: Duration::from_millis(500),
        unfinished: Duration::from_millis(1_200),
    };

    #[test]
    fn a_complete_sentence_is_answered_sooner() {
        for text in ["What time do you open tomorrow?", "I'd like to book a visit.", "मुझे कल का समय चाहिए।", "Yes!"]
        {
            assert_eq!(silence_after(text, WAITS), WAITS.complete, "{text}");
        }
    }

    #[test]
    fn a_pause_after_a_word_that_promises_more_is_waited_out() {
        for text in ["I want to book an appointment and", "My name is um", "मेरा नाम है और", "so,", "I need it for"]
        {
            assert_eq!(silence_after(text, WAITS), WAITS.unfinished, "{text}");
        }
    }

    #[test]
    fn a_number_being_read_out_is_waited_out() {
        for text in ["My number is 98765", "it's 98765 43", "मेरा नंबर ९८७६५"] {
            assert_eq!(silence_after(text, WAITS), WAITS.unfinished, "{text}");
        }
        assert_eq!(silence_after("My number is 98765 43210.", WAITS), WAITS.complete);
    }

    #[test]
    fn words_that_say_nothing_either_way_get_the_default() {
        for text in ["", "   ", "I want to book an appointment", "hello there", "trailing off..."] {
            assert_eq!(silence_after(text, WAITS), WAITS.default, "{text:?}");
        }
    }
}
