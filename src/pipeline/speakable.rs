//! Reducing LLM text to what a text-to-speech voice should say.
//!
//! Models write markdown and emoji even when told not to, and TTS engines read them out ("asterisk
//! asterisk", "smiling face with heart eyes") or stumble. [`speakable`] removes them and keeps
//! everything that is language: every script (Devanagari and the other Indic scripts with their
//! joiners and signs), punctuation including `।` and `॥`, digits and currency signs such as `₹`.
//!
//! Choices:
//! - fenced code blocks are dropped entirely: code read aloud helps no one;
//! - `[text](url)` becomes `text`, and images `![alt](url)` disappear;
//! - a bare URL becomes its host name (`https://www.example.com/a?b` → `example.com`): that is
//!   how people say addresses, and it keeps the sentence meaningful where dropping it would not;
//! - headings, quotes, list markers and table rules at the start of a line go, and so do `*`,
//!   backticks, `~~`, `|` and backslashes anywhere; `_` becomes a space (`snake_case` is said as
//!   two words);
//! - emoji go together with their modifiers: skin tones, variation selectors, keycaps, tags and
//!   the zero-width joiners inside emoji sequences. Joiners elsewhere stay, since Indic scripts
//!   use them to choose conjunct forms;
//! - whitespace collapses to single spaces, and text with no letter or digit left becomes empty,
//!   so the pipeline can skip it instead of sending punctuation to TTS.
//!
//! It works on any piece of text; the pipeline applies it to each chunk from
//! [`super::sentences::SentenceSplitter`], which keeps code blocks whole for this reason.

/// Returns the part of `text` a voice should speak; see the module documentation.
pub fn speakable(text: &str) -> String {
    let text = without_code_blocks(text);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = without_line_markup(line);
        if line.is_empty() {
            continue;
        }
        push_inline(&hosts_for_urls(&link_texts(line)), &mut out);
        out.push(' ');
    }
    let spoken = collapse_whitespace(&out);
    if spoken.chars().any(char::is_alphanumeric) { spoken } else { String::new() }
}

/// Drops everything between pairs of triple backticks, and after an unclosed one.
fn without_code_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split("```");
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    // Odd parts are inside fences; even parts after the first follow a closing fence.
    for (index, part) in parts.enumerate() {
        if index % 2 == 1 {
            out.push('\n');
            out.push_str(part);
        }
    }
    out
}

/// Strips what markdown puts at the start of a line; a line that is only a rule becomes empty.
fn without_line_markup(line: &str) -> &str {
    let line = line.trim_start();
    if line.chars().all(|c| matches!(c, '-' | '*' | '_' | '=' | '|' | ':' | '~' | '+' | ' ' | '\t')) {
        return "";
    }
    let mut line = line;
    let hashes = line.len() - line.trim_start_matches('#').len();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with(char::is_whitespace) {
        line = line[hashes..].trim_start();
    }
    while let Some(rest) = line.strip_prefix('>') {
        line = rest.trim_start();
    }
    for marker in ["- ", "* ", "+ ", "• ", "◦ "] {
        if let Some(rest) = line.strip_prefix(marker) {
            return rest.trim_start();
        }
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if (1..=3).contains(&digits) {
        let rest = &line[digits..];
        let after_mark = rest.strip_prefix('.').or_else(|| rest.strip_prefix(')'));
        if let Some(item) = after_mark.filter(|item| item.starts_with(char::is_whitespace)) {
            return item.trim_start();
        }
    }
    line
}

/// Replaces `[text](url)` with `text` and removes `![alt](url)`.
fn link_texts(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let (before, from_bracket) = rest.split_at(open);
        out.push_str(before);
        let inner = &from_bracket[1..];
        let link = inner.find("](").and_then(|close| {
            let target = &inner[close + 2..];
            target.find(')').map(|end| (&inner[..close], close + 2 + end + 1))
        });
        match link {
            Some((label, consumed)) => {
                if out.ends_with('!') {
                    out.pop();
                } else {
                    out.push_str(label);
                }
                rest = &inner[consumed..];
            }
            None => {
                out.push('[');
                rest = inner;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Replaces each bare URL with its host name, keeping the punctuation that followed it.
fn hosts_for_urls(line: &str) -> String {
    let mut words = Vec::new();
    for word in line.split_whitespace() {
        let start = ["https://", "http://", "www."].iter().filter_map(|scheme| word.find(scheme)).min();
        let Some(start) = start else {
            words.push(word.to_owned());
            continue;
        };
        let (before, url) = word.split_at(start);
        let trailing = url.len() - url.trim_end_matches(|c: char| ".,;:!?)]}'\">".contains(c)).len();
        let (url, after) = url.split_at(url.len() - trailing);
        let address = url.split_once("://").map_or(url, |(_, address)| address);
        let authority = address.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default().split(':').next().unwrap_or_default();
        let host = host.strip_prefix("www.").unwrap_or(host);
        words.push(format!("{}{host}{}", before.trim_end_matches('<'), after.trim_start_matches('>')));
    }
    words.join(" ")
}

/// Appends `line` without emphasis marks, emoji and control characters.
fn push_inline(line: &str, out: &mut String) {
    let mut chars = line.chars().peekable();
    let mut in_emoji = false;
    while let Some(c) = chars.next() {
        if is_pictograph(c) {
            in_emoji = true;
            continue;
        }
        if is_emoji_component(c) || (c == ZWJ && in_emoji) {
            continue;
        }
        in_emoji = false;
        match c {
            '*' | '`' | '\\' => {}
            '~' if chars.peek() == Some(&'~') => {
                chars.next();
            }
            '_' | '|' | '•' => out.push(' '),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

const ZWJ: char = '\u{200D}';

/// Characters drawn as emoji or pictographs: those of Unicode's Extended_Pictographic property
/// that emoji fonts cover, widened to whole blocks where the blocks hold nothing else a voice
/// could say, and the regional indicators that pair into flags.
fn is_pictograph(c: char) -> bool {
    matches!(
        c as u32,
        0x00A9
            | 0x00AE
            | 0x203C
            | 0x2049
            | 0x2122
            | 0x2139
            | 0x2194..=0x2199
            | 0x21A9..=0x21AA
            | 0x231A..=0x231B
            | 0x2328
            | 0x23CF
            | 0x23E9..=0x23F3
            | 0x23F8..=0x23FA
            | 0x24C2
            | 0x25AA..=0x25AB
            | 0x25B6
            | 0x25C0
            | 0x25FB..=0x25FE
            | 0x2600..=0x27BF
            | 0x2934..=0x2935
            | 0x2B05..=0x2B07
            | 0x2B1B..=0x2B1C
            | 0x2B50
            | 0x2B55
            | 0x3030
            | 0x303D
            | 0x3297
            | 0x3299
            | 0x1F000..=0x1FAFF
            | 0x1FC00..=0x1FFFD
    )
}

/// Characters that only modify an emoji: variation selectors, the combining keycap, tags. Skin
/// tones (U+1F3FB..U+1F3FF) are pictographs above.
fn is_emoji_component(c: char) -> bool {
    matches!(c as u32, 0xFE00..=0xFE0F | 0x20E3 | 0xE0000..=0xE007F | 0xE0100..=0xE01EF)
}

/// Joins words with single spaces, attaching punctuation that removals left standing alone
/// (`Done 👍.` → `Done.`).
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        let punctuation = word.chars().all(|c| matches!(c, '.' | ',' | '!' | '?' | ';' | ':' | '।' | '॥' | '…'));
        if !out.is_empty() && !punctuation {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        let text = "Your order of ₹1,250.50 will arrive on 12/05, okay? Great!";
        assert_eq!(speakable(text), text);
    }

    #[test]
    fn hindi_and_other_indic_scripts_are_kept_intact() {
        for text in [
            "नमस्ते! आपका ऑर्डर ₹५०० का है। धन्यवाद॥",
            "क्‍ष और क्ष दोनों सही हैं।",
            "வணக்கம், எப்படி இருக்கிறீர்கள்?",
            "নমস্কার। আপনি কেমন আছেন?",
            "ನಮಸ್ಕಾರ, ಹೇಗಿದ್ದೀರಿ?",
        ] {
            assert_eq!(speakable(text), text);
        }
    }

    #[test]
    fn emphasis_and_inline_code_lose_their_marks() {
        assert_eq!(
            speakable("This is **very** *important* and _quite_ ~~wrong~~ `code`."),
            "This is very important and quite wrong code."
        );
        assert_eq!(speakable("**नमस्ते**, आप *कैसे* हैं?"), "नमस्ते, आप कैसे हैं?");
        assert_eq!(speakable("Call get_user_name now"), "Call get user name now");
    }

    #[test]
    fn headings_lists_quotes_and_rules_lose_their_markers() {
        let text =
            "## Options\n- First item\n* Second item\n+ Third\n1. Numbered\n12) Another\n> Quoted\n---\n• Bullet";
        assert_eq!(speakable(text), "Options First item Second item Third Numbered Another Quoted Bullet");
        assert_eq!(speakable("#1 choice is -5 degrees"), "#1 choice is -5 degrees");
        assert_eq!(speakable("1. "), "");
    }

    #[test]
    fn code_blocks_are_removed() {
        assert_eq!(speakable("Run this:\n```sh\nrm -rf /tmp/x\n```\nThen wait."), "Run this: Then wait.");
        assert_eq!(speakable("```python\nprint('hi')\n```"), "");
        assert_eq!(speakable("Unclosed ```code that never ends"), "Unclosed");
    }

    #[test]
    fn links_keep_their_text_and_urls_become_hosts() {
        assert_eq!(speakable("See [our pricing page](https://example.com/pricing) now."), "See our pricing page now.");
        assert_eq!(speakable("Logo: ![logo](https://x.com/a.png) here"), "Logo: here");
        assert_eq!(speakable("Visit https://www.sarvam.ai/docs?x=1#y."), "Visit sarvam.ai.");
        assert_eq!(
            speakable("Go to www.example.co.in, then (http://user@host:8080/p)."),
            "Go to example.co.in, then (host)."
        );
        assert_eq!(speakable("Docs: <https://docs.rs/tokio>"), "Docs: docs.rs");
        assert_eq!(speakable("Email help@example.com today"), "Email help@example.com today");
        assert_eq!(speakable("A [bracket] stays"), "A [bracket] stays");
    }

    #[test]
    fn emoji_and_their_sequences_disappear() {
        assert_eq!(speakable("Great job 👍🏽!"), "Great job!");
        assert_eq!(speakable("Family 👨‍👩‍👧 time"), "Family time");
        assert_eq!(speakable("Love ❤️ it 😀😀"), "Love it");
        assert_eq!(speakable("Flag 🇮🇳 and 🏴󠁧󠁢󠁳󠁣󠁴󠁿 and ☎️ and ✅ done"), "Flag and and and done");
        assert_eq!(speakable("Press 1️⃣ now"), "Press 1 now");
        assert_eq!(speakable("बहुत बढ़िया 🎉🙏"), "बहुत बढ़िया");
        assert_eq!(speakable("👍🏽"), "");
        assert_eq!(speakable("🧑🏿‍🚀 astronaut"), "astronaut");
    }

    #[test]
    fn whitespace_collapses() {
        assert_eq!(speakable("  Hello \t\n\n  world  "), "Hello world");
        assert_eq!(speakable("Costs .5 now"), "Costs .5 now");
        assert_eq!(speakable("line\r\nbreak"), "line break");
        assert_eq!(speakable(""), "");
        assert_eq!(speakable("... !"), "");
    }

    #[test]
    fn tables_become_words() {
        assert_eq!(speakable("| Plan | Price |\n|---|---|\n| Basic | ₹99 |"), "Plan Price Basic ₹99");
    }

    #[test]
    fn applying_it_per_sentence_matches_the_whole() {
        let reply =
            "**Sure!** Here are the plans 👍:\n1. Basic costs ₹99.\n2. Pro costs ₹199.\nSee https://example.com/plans.";
        let mut splitter = super::super::sentences::SentenceSplitter::default();
        let mut chunks = splitter.push(reply);
        chunks.extend(splitter.finish());
        let spoken: Vec<String> = chunks.iter().map(|chunk| speakable(chunk)).filter(|s| !s.is_empty()).collect();
        assert_eq!(spoken, ["Sure!", "Here are the plans:", "Basic costs ₹99.", "Pro costs ₹199.", "See example.com."]);
        assert_eq!(spoken.join(" "), speakable(reply));
    }

    /// Arbitrary input never panics and never lets markup, emoji or stray whitespace through.
    #[test]
    fn random_input_is_always_clean() {
        let pieces = [
            "a",
            "Z",
            "क",
            "्",
            "\u{200d}",
            "\u{200c}",
            " ",
            "\n",
            "\t",
            "*",
            "**",
            "_",
            "`",
            "```",
            "#",
            "## ",
            "- ",
            "1. ",
            "[",
            "]",
            "(",
            ")",
            "](",
            "!",
            "http://",
            "https://a.b/c",
            "www.",
            "@",
            ":",
            ".",
            "₹",
            "5",
            "👍",
            "🏽",
            "\u{fe0f}",
            "\u{20e3}",
            "🇮",
            "🇳",
            "\u{e0067}",
            "|",
            "~",
            "~~",
            ">",
            "<",
            "\\",
            "\u{0}",
            "\r",
            "।",
        ];
        let mut state = 0xD1B5_4A32_D192_ED03_u64;
        for round in 0..3_000 {
            let mut text = String::new();
            for _ in 0..(round % 60) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            let spoken = speakable(&text);
            assert_eq!(spoken.trim(), spoken, "{text:?}");
            assert!(!spoken.contains("  "), "{text:?} → {spoken:?}");
            assert!(
                !spoken.chars().any(|c| matches!(c, '*' | '`' | '\n' | '\t' | '\r' | '\0')
                    || is_pictograph(c)
                    || is_emoji_component(c)),
                "{text:?} → {spoken:?}"
            );
        }
    }
}
