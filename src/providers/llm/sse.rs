//! Server-sent events, the framing of streamed chat completions: `data:` lines make up an
//! event, a blank line ends it, lines starting with `:` are comments (keep-alives).
//!
//! Network reads split the stream anywhere, even inside a UTF-8 character or between `\r` and
//! `\n`, so bytes are buffered until a line is complete. That buffer, and the data of an event
//! gathered over several lines, are bounded: a provider (or something posing as one) streaming a
//! line or an event that never ends gets a clear error instead of the worker's memory.

/// The longest line accepted. A chunk of a chat completion is well under 10 KiB (one token of
/// text, a fragment of a tool call's arguments, or the usage figures).
pub(super) const MAX_LINE: usize = 1024 * 1024;

/// The most data one event may gather over its `data:` lines.
pub(super) const MAX_EVENT: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SseError {
    #[error("a line of its event stream passed {} KiB without ending", MAX_LINE / 1024)]
    LineTooLong,
    #[error("an event of its stream gathered more than {} KiB of data without ending", MAX_EVENT / 1024)]
    EventTooLong,
}

#[derive(Default)]
pub(super) struct SseDecoder {
    /// Bytes of the line being received.
    line: Vec<u8>,
    /// The `data` of the event being received, when it has any.
    data: Option<String>,
    /// A `\r` ended the last line; a `\n` right after it belongs to that line ending.
    after_cr: bool,
    /// Set by the first error: the stream's framing is lost, so nothing after it is decoded.
    failed: Option<SseError>,
}

impl SseDecoder {
    /// Takes the next bytes of the stream and appends the data of every event they complete to
    /// `events`; those completed before an error are appended too.
    pub(super) fn push(&mut self, bytes: &[u8], events: &mut Vec<String>) -> Result<(), SseError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        for &byte in bytes {
            let after_cr = std::mem::take(&mut self.after_cr);
            let ended = match byte {
                b'\n' if after_cr => Ok(None),
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_ended(&String::from_utf8_lossy(&line))
                }
                _ if self.line.len() >= MAX_LINE => Err(SseError::LineTooLong),
                _ => {
                    self.line.push(byte);
                    Ok(None)
                }
            };
            match ended {
                Ok(event) => events.extend(event),
                Err(error) => return Err(self.fail(error)),
            }
        }
        Ok(())
    }

    /// Drops what was buffered and keeps the error for every later push.
    fn fail(&mut self, error: SseError) -> SseError {
        self.line = Vec::new();
        self.data = None;
        self.failed = Some(error.clone());
        error
    }

    fn line_ended(&mut self, line: &str) -> Result<Option<String>, SseError> {
        if line.is_empty() {
            return Ok(self.data.take());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) if data.len() + 1 + value.len() > MAX_EVENT => return Err(SseError::EventTooLong),
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `bytes` and returns the events they complete, failing on a decoding error.
    fn push(decoder: &mut SseDecoder, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        decoder.push(bytes, &mut events).expect("a well-formed stream");
        events
    }

    #[test]
    fn events_end_at_blank_lines() {
        let mut decoder = SseDecoder::default();
        let events = push(&mut decoder, b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(events, vec![r#"{"a":1}"#, "[DONE]"]);
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_events() {
        let stream =
            "data: {\"content\":\"नमस्ते\"}\r\n\r\n: keep-alive\n\ndata:x\ndata: y\n\nevent: ping\nid: 3\n\n".as_bytes();
        let whole = push(&mut SseDecoder::default(), stream);
        assert_eq!(whole, vec!["{\"content\":\"नमस्ते\"}", "x\ny"]);
        for size in 1..8 {
            let mut decoder = SseDecoder::default();
            let pieces: Vec<String> = stream.chunks(size).flat_map(|piece| push(&mut decoder, piece)).collect();
            assert_eq!(pieces, whole, "pieces of {size} bytes");
        }
    }

    #[test]
    fn an_unfinished_event_is_not_given() {
        let mut decoder = SseDecoder::default();
        assert!(push(&mut decoder, b"data: {\"partial\"").is_empty());
        assert!(push(&mut decoder, b":true}\n").is_empty());
        assert_eq!(push(&mut decoder, b"\n"), vec!["{\"partial\":true}"]);
    }

    #[test]
    fn an_endless_line_is_an_error_once_it_passes_the_bound_and_nothing_more_is_kept() {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        decoder.push(b"data: {\"first\":1}\n\ndata: ", &mut events).expect("a good start");
        let piece = vec![b'x'; 64 * 1024];
        let mut fed = 0;
        let error = loop {
            match decoder.push(&piece, &mut events) {
                Ok(()) => fed += piece.len(),
                Err(error) => break error,
            }
            assert!(decoder.line.len() <= MAX_LINE, "the buffer stays within the bound");
            assert!(fed <= 2 * MAX_LINE, "no error after {fed} bytes of one line");
        };
        assert_eq!(error, SseError::LineTooLong);
        assert!(error.to_string().contains("1024 KiB"), "{error}");
        assert_eq!(events, vec![r#"{"first":1}"#], "the event before it was given");
        assert!(decoder.line.capacity() == 0 && decoder.data.is_none(), "the buffered line is dropped");
        assert_eq!(decoder.push(b"\n\ndata: late\n\n", &mut events), Err(SseError::LineTooLong), "nothing after it");
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_line_of_exactly_the_bound_is_accepted() {
        let mut decoder = SseDecoder::default();
        let value = "y".repeat(MAX_LINE - "data: ".len());
        let events = push(&mut decoder, format!("data: {value}\n\n").as_bytes());
        assert_eq!(events, vec![value]);
    }

    #[test]
    fn an_event_of_endless_short_lines_is_an_error_once_its_data_passes_the_bound() {
        let mut decoder = SseDecoder::default();
        let line = format!("data: {}\n", "z".repeat(1000));
        let mut events = Vec::new();
        let mut lines = 0;
        let error = loop {
            if let Err(error) = decoder.push(line.as_bytes(), &mut events) {
                break error;
            }
            lines += 1;
            assert!(lines * 1001 <= 2 * MAX_EVENT, "no error after {lines} lines of one event");
        };
        assert_eq!(error, SseError::EventTooLong);
        assert!(events.is_empty());
        assert!(decoder.data.is_none(), "the gathered data is dropped");
    }
}
