//! Cutting text that is too long for one synthesis request into pieces that each sound whole.
//!
//! Sarvam refuses texts over a per-model length (bulbul:v3 and v4-flash 2500 characters,
//! bulbul:v2 1500, as its SDK documents). Pieces end at a sentence end when one fits, else at a space, so the voice's
//! intonation resets where a listener expects a pause; only a single unbroken run of over
//! `limit` characters is cut mid-word.

/// Characters bulbul:v3 and v4-flash take in one request.
const V3_LIMIT: usize = 2_500;
/// Characters bulbul:v2 takes in one request.
const V2_LIMIT: usize = 1_500;

/// Sentence ends in the scripts we speak: Latin punctuation, the Devanagari danda and double
/// danda (also used by Bengali, Odia and Punjabi text), and line breaks.
const SENTENCE_ENDS: &[char] = &['.', '!', '?', '।', '॥', '\n'];

pub(super) fn limit(model: &str) -> usize {
    if model == super::catalog::V2 { V2_LIMIT } else { V3_LIMIT }
}

/// `text` in pieces of at most `limit` characters, trimmed, none empty.
pub(super) fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut pieces = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((window_end, _)) = rest.char_indices().nth(limit) else {
            pieces.push(rest.to_owned());
            break;
        };
        let window = &rest[..window_end];
        let cut =
            sentence_end(window).or_else(|| window.rfind(char::is_whitespace).filter(|&i| i > 0)).unwrap_or(window_end);
        let (piece, tail) = rest.split_at(cut);
        let piece = piece.trim();
        if !piece.is_empty() {
            pieces.push(piece.to_owned());
        }
        rest = tail.trim_start();
    }
    pieces
}

/// The byte offset just past the last sentence end in `window` that is followed by a space (or
/// is a line break), so "3.5" and "e.g." inside a word do not count.
fn sentence_end(window: &str) -> Option<usize> {
    window
        .char_indices()
        .filter(|&(i, c)| {
            let after = &window[i + c.len_utf8()..];
            SENTENCE_ENDS.contains(&c) && (c == '\n' || after.starts_with(char::is_whitespace))
        })
        .map(|(i, c)| i + c.len_utf8())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split("  नमस्ते, आप कैसे हैं?  ", 1_500), vec!["नमस्ते, आप कैसे हैं?"]);
        assert!(split("   ", 10).is_empty());
    }

    #[test]
    fn long_text_breaks_at_sentence_ends() {
        let text = "One two three. Four five six! Seven eight nine.";
        assert_eq!(split(text, 32), vec!["One two three. Four five six!", "Seven eight nine."]);
        assert_eq!(split("पहला वाक्य। दूसरा वाक्य।", 15), vec!["पहला वाक्य।", "दूसरा वाक्य।"]);
    }

    #[test]
    fn without_a_sentence_end_it_breaks_at_spaces_then_anywhere() {
        assert_eq!(split("alpha beta gamma delta", 12), vec!["alpha beta", "gamma delta"]);
        assert_eq!(split("pi is 3.14159 roughly", 15), vec!["pi is 3.14159", "roughly"]);
        assert_eq!(split("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn every_piece_fits_and_nothing_is_lost() {
        let text = "नमस्ते दुनिया। ".repeat(300) + &"word ".repeat(500);
        for limit in [7, 100, 1_500] {
            let pieces = split(&text, limit);
            assert!(pieces.iter().all(|p| p.chars().count() <= limit && !p.is_empty()));
            let joined: String = pieces.concat().split_whitespace().collect();
            let original: String = text.split_whitespace().collect();
            assert_eq!(joined, original);
        }
    }

    #[test]
    fn limits_follow_the_model() {
        assert_eq!(limit("bulbul:v3"), 2_500);
        assert_eq!(limit("bulbul:v4-flash"), 2_500);
        assert_eq!(limit("bulbul:v2"), 1_500);
    }
}
