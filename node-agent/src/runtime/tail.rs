//! A bounded buffer that keeps the last bytes of an output stream, for failure reasons.

use std::collections::VecDeque;

/// Keeps at most `limit` trailing bytes of everything written to it.
#[derive(Debug, Clone)]
pub struct Tail {
    limit: usize,
    bytes: VecDeque<u8>,
    total: u64,
}

impl Tail {
    /// A tail that keeps the last `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            bytes: VecDeque::with_capacity(limit.min(4096)),
            total: 0,
        }
    }

    /// Appends `data`, dropping the oldest bytes beyond the limit.
    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let data = if data.len() > self.limit {
            &data[data.len() - self.limit..]
        } else {
            data
        };
        let overflow = (self.bytes.len() + data.len()).saturating_sub(self.limit);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }

    /// Total bytes ever pushed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The kept bytes as text (lossy UTF-8), trimmed, starting at a line boundary when the
    /// beginning was cut off.
    pub fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut joined = Vec::with_capacity(a.len() + b.len());
        joined.extend_from_slice(a);
        joined.extend_from_slice(b);
        let mut text = String::from_utf8_lossy(&joined).into_owned();
        if self.total > self.bytes.len() as u64
            && let Some(newline) = text.find('\n')
        {
            text.drain(..=newline);
        }
        text.trim().to_string()
    }

    /// The last `n` non-empty lines of the kept text.
    pub fn last_lines(&self, n: usize) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_bytes() {
        let mut tail = Tail::new(8);
        tail.push(b"0123456789");
        tail.push(b"ab");
        assert_eq!(tail.total(), 12);
        assert_eq!(tail.bytes.len(), 8);
    }

    #[test]
    fn cut_text_starts_at_a_line_boundary() {
        let mut tail = Tail::new(14);
        tail.push(b"first line\nsecond\nthird\n");
        assert_eq!(tail.text(), "second\nthird");
    }

    #[test]
    fn uncut_text_is_whole() {
        let mut tail = Tail::new(100);
        tail.push(b"only line\n");
        assert_eq!(tail.text(), "only line");
    }

    #[test]
    fn last_lines_skips_blank_lines() {
        let mut tail = Tail::new(100);
        tail.push(b"a\n\nb\nc\n\n");
        assert_eq!(tail.last_lines(2), "b\nc");
    }
}
