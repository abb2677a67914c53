//! Cutting the LLM's streamed text into sentences for speech synthesis.
//!
//! Text-to-speech sounds natural only on whole sentences, yet waiting for the whole reply would add
//! seconds before the first word. [`SentenceSplitter`] takes the text deltas as they stream and
//! hands out each sentence the moment its end is certain.
//!
//! A sentence ends after `.`, `?`, `!`, `…` or `...` (plus any closing quotes, brackets or markdown
//! emphasis) when whitespace follows and the next word does not start with a lower-case letter,
//! and after the Devanagari danda `।` or `॥` whatever follows. A line break ends a sentence too:
//! LLMs do not wrap prose, so lines are list items, headings or paragraphs. A period does not end
//! a sentence after an abbreviation (`Dr.`, `Rs.`, `etc.`, `डॉ.`), an initial (`J. K.`), a dotted
//! acronym (`e.g.`, `U.S.`), a list number at the start of a line (`2.`) or `No.` before a
//! number. Decimals, versions, URLs and e-mail addresses never put whitespace after their dots,
//! so they never split. A fenced code block is never cut, so that [`super::speakable`] sees it
//! whole and can drop it.
//!
//! Two limits keep chunks small. No chunk exceeds `max_chars` characters (code blocks excepted):
//! a longer sentence is cut at its last comma, semicolon or colon in the second half of the
//! window, else at its last space. And the first chunk of a reply may end at a clause boundary (a
//! comma, semicolon or colon followed by a space) once it is [`FIRST_CLAUSE_CHARS`] long: the
//! first audio then starts one clause earlier, at the cost of a slightly less natural intonation
//! at that one comma.
//!
//! Every decision depends only on the text, never on how it was split into deltas, so streaming
//! one character at a time gives exactly the sentences of one big delta. Deciding sometimes needs
//! the next word (is `J.` an initial? is the word after `.` lower-case?), which delays a sentence
//! until the following token arrives, tens of milliseconds at LLM speeds.

/// The default maximum chunk length, in characters: about 15 seconds of speech, within every
/// TTS provider's request limit.
pub const DEFAULT_MAX_CHARS: usize = 250;

/// The length from which the first chunk of a reply may end at a clause boundary.
pub const FIRST_CLAUSE_CHARS: usize = 60;

const TERMINATORS: [char; 6] = ['.', '?', '!', '…', '।', '॥'];
const DANDAS: [char; 2] = ['।', '॥'];
const CLOSERS: [char; 10] = ['"', '\'', '”', '’', '»', ')', ']', '}', '*', '_'];
const OPENERS: [char; 10] = ['"', '\'', '“', '‘', '«', '(', '[', '{', '*', '_'];
const CLAUSE_MARKS: [char; 3] = [',', ';', ':'];

/// Words that end with a period without ending the sentence, in lower case without the period.
/// Dotted forms such as `e.g.`, `i.e.`, `a.m.` and `U.S.` are recognised by their shape instead.
const ABBREVIATIONS: [&str; 20] = [
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "inc", "ltd", "co", "rs", "govt", "dept", "approx",
    "smt", "shri", "mt",
];

/// Hindi abbreviations written with a period: डॉ. (doctor) and प्रो. (professor).
const HINDI_ABBREVIATIONS: [&str; 2] = ["डॉ", "प्रो"];

/// Streams LLM text deltas into sentences; see the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct SentenceSplitter {
    pending: String,
    max_chars: usize,
    /// Whether this reply produced a chunk yet; the clause rule applies only to the first.
    emitted: bool,
}

impl Default for SentenceSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CHARS)
    }
}

impl SentenceSplitter {
    /// `max_chars` is the longest chunk in characters (at least 1).
    pub fn new(max_chars: usize) -> Self {
        Self { pending: String::new(), max_chars: max_chars.max(1), emitted: false }
    }

    /// Adds a delta and returns the sentences it completed, trimmed, in order.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.pending.push_str(delta);
        self.drain(false)
    }

    /// Ends the reply: returns the text not yet handed out, if any, and readies the splitter for
    /// the next reply. The rest fits in `max_chars` except for backticks that `push` had to hold
    /// back (they might have opened a code block).
    pub fn finish(&mut self) -> Option<String> {
        let rest = self.drain(true).join(" ");
        self.emitted = false;
        (!rest.is_empty()).then_some(rest)
    }

    fn drain(&mut self, done: bool) -> Vec<String> {
        let text: Vec<char> = self.pending.chars().collect();
        let mut chunks = Vec::new();
        let mut start = 0;
        loop {
            start += text[start..].iter().take_while(|c| c.is_whitespace()).count();
            let rest = &text[start..];
            if rest.is_empty() {
                break;
            }
            let Some(end) = self.chunk_end(rest, done) else { break };
            let chunk: String = rest[..end].iter().collect();
            let chunk = chunk.trim_end();
            if !chunk.is_empty() {
                chunks.push(chunk.to_owned());
                self.emitted = true;
            }
            start += end;
        }
        self.pending = text[start..].iter().collect();
        chunks
    }

    /// The length of the chunk `text` begins with, or `None` while that depends on text not yet
    /// received. `text` starts with a non-whitespace character; a returned length is at least 1.
    fn chunk_end(&self, text: &[char], done: bool) -> Option<usize> {
        let mut in_fence = false;
        let mut i = 0;
        while i < text.len() {
            if !in_fence && i >= self.max_chars {
                return Some(self.cut(text));
            }
            let c = text[i];
            if c == '`' {
                let run = text[i..].iter().take_while(|&&c| c == '`').count();
                if i + run == text.len() && !done {
                    return None;
                }
                i += run;
                if run >= 3 {
                    in_fence = !in_fence;
                    if !in_fence {
                        return Some(i);
                    }
                }
                continue;
            }
            if in_fence {
                i += 1;
                continue;
            }
            let step = if c == '\n' {
                Step::Split(i + 1)
            } else if TERMINATORS.contains(&c) && i > 0 {
                terminator(text, i, done, self.max_chars)
            } else if CLAUSE_MARKS.contains(&c) && !self.emitted && i + 1 >= FIRST_CLAUSE_CHARS {
                match text.get(i + 1) {
                    Some(next) if next.is_whitespace() => Step::Split(i + 1),
                    Some(_) => Step::Continue(i + 1),
                    None if done => Step::Split(i + 1),
                    None => Step::Wait,
                }
            } else {
                Step::Continue(i + 1)
            };
            match step {
                Step::Split(end) if end > self.max_chars => return Some(self.cut(text)),
                Step::Split(end) => return Some(end),
                Step::Continue(next) => i = next,
                Step::Wait => return None,
            }
        }
        done.then_some(text.len())
    }

    /// Where to cut text that has no sentence end within `max_chars` characters.
    fn cut(&self, text: &[char]) -> usize {
        let window = &text[..self.max_chars.min(text.len())];
        let clause = (self.max_chars / 2..window.len())
            .rev()
            .find(|&p| CLAUSE_MARKS.contains(&window[p]) && text.get(p + 1).is_some_and(|c| c.is_whitespace()));
        if let Some(p) = clause {
            return p + 1;
        }
        match window.iter().rposition(|c| c.is_whitespace()) {
            Some(p) if p > 0 => p,
            _ => window.len(),
        }
    }
}

enum Step {
    /// The chunk ends before this index.
    Split(usize),
    /// No boundary here; scanning resumes at this index.
    Continue(usize),
    /// Deciding needs text beyond the end.
    Wait,
}

/// Decides whether the run of terminators starting at `i` (not the chunk's first character) ends
/// the sentence. A sentence that would end beyond `max_chars` is cut before it either way, so
/// that case needs no more text.
fn terminator(text: &[char], i: usize, done: bool, max_chars: usize) -> Step {
    let run_end = i + text[i..].iter().take_while(|c| TERMINATORS.contains(c)).count();
    let end = run_end + text[run_end..].iter().take_while(|c| CLOSERS.contains(c)).count();
    let undecided = if done || end > max_chars { Step::Split(end) } else { Step::Wait };
    let Some(&after) = text.get(end) else { return undecided };
    let run = &text[i..run_end];
    if !after.is_whitespace() {
        return if run.iter().any(|c| DANDAS.contains(c)) { Step::Split(end) } else { Step::Continue(end) };
    }
    let token = token_before(text, i);
    if run == ['.'] && is_abbreviation(text, i, token) {
        return Step::Continue(end);
    }
    let Some(&next_word) = text[end..].iter().find(|c| !c.is_whitespace()) else { return undecided };
    let numbered = run == ['.'] && next_word.is_ascii_digit() && lowercase(token) == "no";
    if next_word.is_lowercase() || numbered { Step::Continue(end) } else { Step::Split(end) }
}

/// The word a terminator at `i` follows, without opening quotes, brackets or emphasis.
fn token_before(text: &[char], i: usize) -> &[char] {
    let start = text[..i].iter().rposition(|c| c.is_whitespace() || OPENERS.contains(c)).map_or(0, |p| p + 1);
    &text[start..i]
}

fn lowercase(token: &[char]) -> String {
    token.iter().flat_map(|c| c.to_lowercase()).collect()
}

/// Whether the period after `token` (at `i`) belongs to the word rather than ending the sentence.
fn is_abbreviation(text: &[char], i: usize, token: &[char]) -> bool {
    if token.is_empty() {
        return false;
    }
    let word = lowercase(token);
    if ABBREVIATIONS.contains(&word.as_str()) || HINDI_ABBREVIATIONS.contains(&word.as_str()) {
        return true;
    }
    let initials = token.split(|&c| c == '.').all(|part| part.len() == 1 && part[0].is_alphabetic());
    if initials && (token.len() > 1 || token[0].is_uppercase()) {
        return true;
    }
    let token_start = i - token.len();
    let line_start = text[..token_start].iter().all(|c| c.is_whitespace()) || text[token_start - 1] == '\n';
    line_start && token.len() <= 3 && token.iter().all(char::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_with(max_chars: usize, deltas: &[&str]) -> Vec<String> {
        let mut splitter = SentenceSplitter::new(max_chars);
        let mut out: Vec<String> = deltas.iter().flat_map(|delta| splitter.push(delta)).collect();
        out.extend(splitter.finish());
        out
    }

    fn split(text: &str) -> Vec<String> {
        split_with(DEFAULT_MAX_CHARS, &[text])
    }

    /// Splits `text` into deltas of 1 to 3 characters chosen by a deterministic generator.
    fn trickle(text: &str, seed: u64) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut state = seed | 1;
        let mut deltas = Vec::new();
        let mut at = 0;
        while at < chars.len() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (1 + state % 3) as usize;
            let end = (at + len).min(chars.len());
            deltas.push(chars[at..end].iter().collect());
            at = end;
        }
        deltas
    }

    /// Asserts the sentences of `text` and that every way of streaming it gives the same.
    fn check(text: &str, expected: &[&str]) {
        assert_eq!(split(text), expected, "one delta: {text:?}");
        for seed in 1..20 {
            let deltas = trickle(text, seed);
            let deltas: Vec<&str> = deltas.iter().map(String::as_str).collect();
            assert_eq!(split_with(DEFAULT_MAX_CHARS, &deltas), expected, "deltas {deltas:?}");
        }
        let singles: Vec<String> = text.chars().map(String::from).collect();
        let singles: Vec<&str> = singles.iter().map(String::as_str).collect();
        assert_eq!(split_with(DEFAULT_MAX_CHARS, &singles), expected, "one character at a time");
    }

    #[test]
    fn english_sentences() {
        check(
            "Hello there! How are you today? I am fine. Thanks for asking.",
            &["Hello there!", "How are you today?", "I am fine.", "Thanks for asking."],
        );
    }

    #[test]
    fn sentences_come_out_as_soon_as_they_are_certain() {
        let mut splitter = SentenceSplitter::default();
        assert!(splitter.push("Hello there").is_empty());
        assert!(splitter.push("!").is_empty());
        assert!(splitter.push(" ").is_empty(), "the next word decides");
        assert_eq!(splitter.push("How"), ["Hello there!"]);
        assert!(splitter.push(" are you?").is_empty());
        assert_eq!(splitter.finish().as_deref(), Some("How are you?"));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn hindi_with_danda() {
        check(
            "नमस्ते! मैं आपकी कैसे मदद कर सकती हूँ? आज मौसम अच्छा है। चलिए शुरू करते हैं॥",
            &["नमस्ते!", "मैं आपकी कैसे मदद कर सकती हूँ?", "आज मौसम अच्छा है।", "चलिए शुरू करते हैं॥"],
        );
    }

    #[test]
    fn danda_splits_even_without_a_space() {
        check("यह पहला है।यह दूसरा है।", &["यह पहला है।", "यह दूसरा है।"]);
    }

    #[test]
    fn hinglish() {
        check(
            "Aapka order confirm ho gaya hai. Delivery kal tak ho jayegi! Koi aur help chahiye? Theek hai।",
            &["Aapka order confirm ho gaya hai.", "Delivery kal tak ho jayegi!", "Koi aur help chahiye?", "Theek hai।"],
        );
    }

    #[test]
    fn numbers_do_not_split() {
        check(
            "The price is Rs. 1,00,000.50 today. Version v2.0 is 3.5 times faster. It costs ₹500.",
            &["The price is Rs. 1,00,000.50 today.", "Version v2.0 is 3.5 times faster.", "It costs ₹500."],
        );
        check("Room No. 5 is free. No. I will not go.", &["Room No. 5 is free.", "No.", "I will not go."]);
    }

    #[test]
    fn abbreviations_do_not_split() {
        check(
            "Mr. Sharma and Dr. Gupta met Prof. Rao at 5 p.m. today. Bring fruit, e.g. apples, etc. and \
             nuts. Try the i.e. form.",
            &[
                "Mr. Sharma and Dr. Gupta met Prof. Rao at 5 p.m. today.",
                "Bring fruit, e.g. apples, etc. and nuts.",
                "Try the i.e. form.",
            ],
        );
        check(
            "J. K. Rowling wrote it. The U.S. Army came. Tata Sons Ltd. is big. डॉ. शर्मा आएँगे।",
            &["J. K. Rowling wrote it.", "The U.S. Army came.", "Tata Sons Ltd. is big.", "डॉ. शर्मा आएँगे।"],
        );
    }

    #[test]
    fn a_lower_case_word_continues_the_sentence() {
        check(
            "It is approx. five km. And then… it rained... a lot.",
            &["It is approx. five km.", "And then… it rained... a lot."],
        );
    }

    #[test]
    fn ellipses_split() {
        check("Well... I think so. Hmm… Maybe.", &["Well...", "I think so.", "Hmm…", "Maybe."]);
    }

    #[test]
    fn urls_and_emails_do_not_split() {
        check(
            "Visit https://example.com/a.b?x=1. Mail me at a.b@c.co.in. See www.sarvam.ai!",
            &["Visit https://example.com/a.b?x=1.", "Mail me at a.b@c.co.in.", "See www.sarvam.ai!"],
        );
    }

    #[test]
    fn closing_quotes_and_emphasis_stay_with_their_sentence() {
        check(
            "He said \"Stop.\" Then (really?) He left. **Note:** this **matters.** Yes.",
            &["He said \"Stop.\"", "Then (really?)", "He left.", "**Note:** this **matters.**", "Yes."],
        );
    }

    #[test]
    fn lines_are_chunks_and_list_numbers_are_not_sentences() {
        check(
            "Here are options:\n1. Apples\n2. Bananas are good.\n- Cherries\n\n## Summary\nDone",
            &["Here are options:", "1. Apples", "2. Bananas are good.", "- Cherries", "## Summary", "Done"],
        );
    }

    #[test]
    fn code_blocks_stay_whole() {
        check(
            "Run this:\n```sh\necho hi. there\nls\n```\nThen wait. Done.",
            &["Run this:", "```sh\necho hi. there\nls\n```", "Then wait.", "Done."],
        );
        check("Inline ``` fence. Never closed", &["Inline ``` fence. Never closed"]);
    }

    #[test]
    fn inline_code_does_not_confuse_fences() {
        check("Use `ls`. Or ``cat``. Fine.", &["Use `ls`.", "Or ``cat``.", "Fine."]);
    }

    #[test]
    fn long_sentences_are_cut_at_a_clause_then_a_space() {
        let clause = format!("Hi. {}, {} end.", "A".repeat(150), "b ".repeat(100));
        let chunks = split_with(200, &[&clause]);
        assert_eq!(chunks[1], format!("{},", "A".repeat(150)));
        assert!(chunks.iter().all(|c| c.chars().count() <= 200), "{chunks:?}");
        assert_eq!(chunks.concat().replace(' ', ""), clause.replace(' ', ""));

        let words = "word ".repeat(100);
        let chunks = split_with(50, &[&words]);
        assert!(chunks.iter().all(|c| c.chars().count() <= 50 && !c.ends_with(' ')), "{chunks:?}");
        assert_eq!(chunks.join(" "), words.trim_end());

        let blob = "x".repeat(120);
        assert_eq!(split_with(50, &[&blob]), ["x".repeat(50), "x".repeat(50), "x".repeat(20)]);
    }

    #[test]
    fn devanagari_length_is_counted_in_characters() {
        let sentence = format!("{}।", "क".repeat(299));
        let chunks = split_with(300, &[&sentence]);
        assert_eq!(chunks, [sentence]);
    }

    #[test]
    fn the_first_chunk_may_end_at_a_clause() {
        let text = "Thank you so much for calling our customer support line today, I can help you with \
                    that, and more. Later, it may rain, as they say, in the evening and at night, every day.";
        check(
            text,
            &[
                "Thank you so much for calling our customer support line today,",
                "I can help you with that, and more.",
                "Later, it may rain, as they say, in the evening and at night, every day.",
            ],
        );
        check("Short, sweet and to the point, this is.", &["Short, sweet and to the point, this is."]);
    }

    #[test]
    fn finish_resets_for_the_next_reply() {
        let mut splitter = SentenceSplitter::default();
        let long = "This first clause is comfortably longer than sixty characters, so it goes early. Yes.";
        assert_eq!(splitter.push(long).len(), 2);
        assert_eq!(splitter.finish().as_deref(), Some("Yes."));
        assert_eq!(splitter.push(long)[0], "This first clause is comfortably longer than sixty characters,");
    }

    #[test]
    fn whitespace_and_punctuation_only() {
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split("   \n\n  "), Vec::<String>::new());
        assert_eq!(split("..."), ["..."]);
        assert_eq!(split("?! Yes."), ["?!", "Yes."]);
        assert_eq!(split_with(0, &["ab"]), ["a", "b"]);
    }

    /// Arbitrary text never panics, loses no visible character, keeps its order, respects the
    /// length limit outside code blocks, and streams like one delta.
    #[test]
    fn random_text_keeps_every_character() {
        let pieces = [
            "a",
            "B",
            "क",
            "ि",
            " ",
            "  ",
            "\n",
            ".",
            "...",
            "…",
            "?",
            "!",
            "।",
            "॥",
            ",",
            ";",
            ":",
            "\"",
            "*",
            "_",
            "`",
            "```",
            "Dr",
            "no",
            "1",
            "22",
            "e.g",
            "http://x.y/z",
            "👍🏽",
            "\u{200d}",
            "(",
            ")",
        ];
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        for round in 0..500 {
            let mut text = String::new();
            for _ in 0..(round % 120) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            let max_chars = 5 + round % 40;
            let mut splitter = SentenceSplitter::new(max_chars);
            let pushed = splitter.push(&text);
            let rest = splitter.finish();
            let whole: Vec<String> = pushed.iter().cloned().chain(rest.clone()).collect();
            let visible = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            assert_eq!(visible(&whole.concat()), visible(&text), "{text:?}");
            assert!(whole.iter().all(|chunk| !chunk.is_empty() && chunk.trim() == chunk), "{whole:?}");
            for chunk in pushed.iter().filter(|chunk| !chunk.contains("```")) {
                assert!(chunk.chars().count() <= max_chars, "{chunk:?} from {text:?}");
            }
            if let Some(rest) = rest.filter(|rest| !rest.contains("```")) {
                let held_back = rest.trim_end_matches(|c: char| c == '`' || c.is_whitespace());
                assert!(held_back.chars().count() <= max_chars, "{rest:?} from {text:?}");
            }
            let deltas = trickle(&text, state);
            let deltas: Vec<&str> = deltas.iter().map(String::as_str).collect();
            assert_eq!(split_with(max_chars, &deltas), whole, "{text:?}");
        }
    }
}
