//! Server-sent events as OpenAI streams them: each chunk is `data: {json}\n\n`, and the stream
//! ends with `data: [DONE]\n\n`.
//!
//! [`SseDecoder`] takes bytes as they arrive, in pieces of any size, and returns whole events.
//! It follows the WHATWG event-stream rules that matter here: lines end in `\n`, `\r\n` or
//! `\r`; a blank line ends an event; `data:` lines are joined with `\n`; a line starting with
//! `:` is a comment; one space after the colon is dropped.

use serde::Serialize;

/// The last event of an OpenAI stream.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";
/// The data of the last event.
pub const DONE_DATA: &str = "[DONE]";
/// The content type of an event stream.
pub const CONTENT_TYPE: &str = "text/event-stream";

/// `data: {json}\n\n` for a serialisable value.
pub fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = b"data: ".to_vec();
    serde_json::to_writer(&mut out, value)?;
    out.extend_from_slice(b"\n\n");
    Ok(out)
}

/// `data: {data}\n\n` for data that holds no line break (JSON text from `serde_json` never
/// does). Line breaks are split into several `data:` lines, so any text survives decoding.
pub fn encode_data(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// One decoded event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// Whether this is `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data == DONE_DATA
    }
}

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event grew past the decoder's bound.
    #[error("server-sent event larger than {limit_bytes} bytes")]
    EventTooLarge {
        /// The bound.
        limit_bytes: usize,
    },
    /// A line is not UTF-8.
    #[error("server-sent event is not UTF-8")]
    NotUtf8,
}

/// An incremental event-stream decoder.
///
/// **Bound.** It holds at most one partial line and one partial event, together at most
/// `max_event_bytes`; a larger event is an error, so a peer cannot make it buffer without end.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    line: Vec<u8>,
    event: SseEvent,
    has_data: bool,
    /// The previous byte was `\r`: a following `\n` belongs to the same line break.
    after_cr: bool,
    max_event_bytes: usize,
}

impl SseDecoder {
    /// A decoder refusing events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseDecoder {
            line: Vec::new(),
            event: SseEvent::default(),
            has_data: false,
            after_cr: false,
            max_event_bytes,
        }
    }

    /// Feeds bytes; appends every event they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = bytes;
        while let Some(&b) = rest.first() {
            rest = rest.get(1..).unwrap_or_default();
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out)?;
                }
                _ => {
                    self.after_cr = false;
                    // Copy the run up to the next line break in one go.
                    let run = rest
                        .iter()
                        .position(|&c| c == b'\n' || c == b'\r')
                        .unwrap_or(rest.len());
                    self.line.push(b);
                    self.line
                        .extend_from_slice(rest.get(..run).unwrap_or_default());
                    rest = rest.get(run..).unwrap_or_default();
                    if self.line.len().saturating_add(self.event.data.len()) > self.max_event_bytes
                    {
                        return Err(SseError::EventTooLarge {
                            limit_bytes: self.max_event_bytes,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.event));
            } else {
                self.event = SseEvent::default();
            }
            self.has_data = false;
            return Ok(());
        }
        let line = std::str::from_utf8(&line).map_err(|_| SseError::NotUtf8)?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event.event = Some(value.to_owned()),
            // `id` and `retry` steer reconnection, which an API stream does not use.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new(1 << 16);
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn decodes_openai_stream() {
        let events = decode_all(&[
            b"data: {\"a\":1}\n\n: keep-alive\n\nevent: x\r\ndata:  two\r\ndata: lines\r\n\r\n",
            DONE_EVENT,
        ]);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].event.as_deref(), Some("x"));
        assert_eq!(events[1].data, " two\nlines");
        assert!(events[2].is_done());
    }

    #[test]
    fn bounded() {
        let mut d = SseDecoder::new(8);
        assert!(d.feed(b"data: 0123456789", &mut Vec::new()).is_err());
    }

    proptest! {
        /// Any split of an encoded stream decodes to the same events.
        #[test]
        fn split_anywhere(texts in proptest::collection::vec("[^\r]{0,20}", 1..5), cut in 0usize..200) {
            let mut bytes = Vec::new();
            for t in &texts {
                bytes.extend_from_slice(&encode_data(t));
            }
            let cut = cut.min(bytes.len());
            let events = decode_all(&[&bytes[..cut], &bytes[cut..]]);
            let got: Vec<String> = events.into_iter().map(|e| e.data).collect();
            prop_assert_eq!(got, texts);
        }
    }
}
