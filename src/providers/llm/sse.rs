//! Server-sent events, the framing of streamed chat completions: `data:` lines make up an
//! event, a blank line ends it, lines starting with `:` are comments (keep-alives).
//!
//! Network reads split the stream anywhere, even inside a UTF-8 character or between `\r` and
//! `\n`, so bytes are buffered until a line is complete.

#[derive(Default)]
pub(super) struct SseDecoder {
    /// Bytes of the line being received.
    line: Vec<u8>,
    /// The `data` of the event being received, when it has any.
    data: Option<String>,
    /// A `\r` ended the last line; a `\n` right after it belongs to that line ending.
    after_cr: bool,
}

impl SseDecoder {
    /// Takes the next bytes of the stream and returns the data of every event they complete.
    pub(super) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &byte in bytes {
            let after_cr = std::mem::take(&mut self.after_cr);
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    events.extend(self.line_ended(&String::from_utf8_lossy(&line)));
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    fn line_ended(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            return self.data.take();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_blank_lines() {
        let mut decoder = SseDecoder::default();
        let events = decoder.push(b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(events, vec![r#"{"a":1}"#, "[DONE]"]);
    }

    #[test]
    fn bytes_split_anywhere_give_the_same_events() {
        let stream =
            "data: {\"content\":\"नमस्ते\"}\r\n\r\n: keep-alive\n\ndata:x\ndata: y\n\nevent: ping\nid: 3\n\n".as_bytes();
        let whole = SseDecoder::default().push(stream);
        assert_eq!(whole, vec!["{\"content\":\"नमस्ते\"}", "x\ny"]);
        for size in 1..8 {
            let mut decoder = SseDecoder::default();
            let pieces: Vec<String> = stream.chunks(size).flat_map(|piece| decoder.push(piece)).collect();
            assert_eq!(pieces, whole, "pieces of {size} bytes");
        }
    }

    #[test]
    fn an_unfinished_event_is_not_given() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b"data: {\"partial\"").is_empty());
        assert!(decoder.push(b":true}\n").is_empty());
        assert_eq!(decoder.push(b"\n"), vec!["{\"partial\":true}"]);
    }
}
