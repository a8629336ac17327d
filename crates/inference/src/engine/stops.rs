//! Turning a growing completion into text deltas: stop sequences end the output before
//! the stop string, and text that might still become a stop string (or an incomplete
//! UTF-8 character) is held back until it is certain.

/// What to do after the completion text grew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Emit `delta` and go on.
    Continue { delta: String },
    /// Emit `delta` and stop: `stop` was found; the output ends just before it.
    Stop { delta: String, stop: String },
}

/// Tracks how much of the completion text has been emitted.
#[derive(Debug)]
pub(crate) struct TextTracker {
    stops: Vec<String>,
    emitted: usize,
}

impl TextTracker {
    pub(crate) fn new(stops: Vec<String>) -> Self {
        TextTracker { stops, emitted: 0 }
    }

    /// `text` is the whole completion decoded so far; `last` says no more tokens follow,
    /// so nothing is held back.
    pub(crate) fn advance(&mut self, text: &str, last: bool) -> Progress {
        let earliest = self
            .stops
            .iter()
            .filter_map(|s| text.find(s.as_str()).map(|pos| (pos, s)))
            .min_by_key(|(pos, s)| (*pos, std::cmp::Reverse(s.len())));
        if let Some((pos, stop)) = earliest {
            let delta = self.take(text, pos);
            return Progress::Stop {
                delta,
                stop: stop.clone(),
            };
        }
        let safe = if last {
            text.len()
        } else {
            self.safe_len(text)
        };
        Progress::Continue {
            delta: self.take(text, safe),
        }
    }

    fn take(&mut self, text: &str, upto: usize) -> String {
        if upto <= self.emitted {
            return String::new();
        }
        let delta = text.get(self.emitted..upto).unwrap_or_default().to_string();
        self.emitted = upto;
        delta
    }

    /// The longest prefix that can no longer change: without a trailing replacement
    /// character (bytes of a character still to come) and without a suffix that begins
    /// a stop sequence.
    fn safe_len(&self, text: &str) -> usize {
        let mut end = text.trim_end_matches('\u{FFFD}').len();
        let held = &text[..end];
        for (start, _) in held.char_indices() {
            let suffix = &held[start..];
            if self.stops.iter().any(|s| s.len() > suffix.len() && s.starts_with(suffix)) {
                end = start;
                break;
            }
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<String>) {
        let mut t = TextTracker::new(stops.iter().map(|s| s.to_string()).collect());
        let mut text = String::new();
        let mut out = String::new();
        for (i, p) in pieces.iter().enumerate() {
            text.push_str(p);
            match t.advance(&text, i + 1 == pieces.len()) {
                Progress::Continue { delta } => out.push_str(&delta),
                Progress::Stop { delta, stop } => {
                    out.push_str(&delta);
                    return (out, Some(stop));
                }
            }
        }
        (out, None)
    }

    #[test]
    fn stop_string_split_across_tokens_is_cut_before_it() {
        assert_eq!(
            run(&["END"], &["hello E", "N", "D more"]),
            ("hello ".into(), Some("END".into()))
        );
    }

    #[test]
    fn held_back_prefix_is_released_when_it_diverges() {
        let mut t = TextTracker::new(vec!["END".into()]);
        assert_eq!(t.advance("ab E", false), Progress::Continue { delta: "ab ".into() });
        assert_eq!(t.advance("ab EX", false), Progress::Continue { delta: "EX".into() });
    }

    #[test]
    fn last_token_flushes_and_incomplete_chars_wait() {
        assert_eq!(run(&["zz"], &["a", "b z"]), ("ab z".into(), None));
        let mut t = TextTracker::new(vec![]);
        assert_eq!(t.advance("x\u{FFFD}", false), Progress::Continue { delta: "x".into() });
        assert_eq!(t.advance("xé", false), Progress::Continue { delta: "é".into() });
    }

    #[test]
    fn earliest_stop_wins() {
        assert_eq!(run(&["c", "ab"], &["xxabc"]), ("xx".into(), Some("ab".into())));
    }
}
