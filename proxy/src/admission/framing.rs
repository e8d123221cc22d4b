//! The HTTP/1 framing guard: follows the raw request bytes of a connection, message by
//! message, to find requests whose framing is ambiguous.
//!
//! Why at the byte level: hyper *repairs* ambiguous framing instead of refusing it. A request
//! with both `Content-Length` and `Transfer-Encoding: chunked` reaches the service with the
//! `Content-Length` silently dropped, and a repeated identical `Content-Length` is folded into
//! one, so the header map the stages see cannot show the problem. The guard sees every head
//! before hyper parses it (it sits in the read path), counts messages with the same framing
//! rules hyper applies, and records the number of the first ambiguous request; admission
//! refuses that request and closes the connection.
//!
//! When the bytes stop making sense (a head too large, a bad chunk size, a transfer coding
//! other than chunked) the guard stops: in each of those cases hyper itself rejects the
//! request and closes the connection.

/// Follows one connection's request stream.
#[derive(Debug)]
pub(crate) struct FramingGuard {
    phase: Phase,
    requests: u64,
    max_head_bytes: usize,
}

#[derive(Debug)]
enum Phase {
    /// Reading a request head.
    Head(Vec<u8>),
    /// Skipping a fixed-length body: bytes left.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping chunk data: bytes left.
    ChunkData(u64),
    /// Expecting the CRLF after chunk data.
    ChunkDataEnd,
    /// Reading trailer lines after the last chunk: the current line, and bytes so far.
    Trailers(Vec<u8>, usize),
    /// No longer following (see the module comment).
    Stopped,
}

/// The longest chunk-size line followed (hex digits plus extensions).
const MAX_CHUNK_LINE: usize = 1024;

impl FramingGuard {
    pub(crate) fn new(max_head_bytes: usize) -> Self {
        FramingGuard {
            phase: Phase::Head(Vec::new()),
            requests: 0,
            max_head_bytes,
        }
    }

    /// Feeds bytes read from the client. Returns the number (from 1) of a request whose head
    /// completed in these bytes with ambiguous framing.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Option<u64> {
        while !data.is_empty() {
            let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
            let (next, rest, ambiguous) = self.step(phase, data);
            self.phase = next;
            data = rest;
            if ambiguous {
                self.phase = Phase::Stopped;
                return Some(self.requests);
            }
            if matches!(self.phase, Phase::Stopped) {
                return None;
            }
        }
        None
    }

    /// Advances one phase; returns the next phase, the unconsumed bytes, and whether a head
    /// just completed with ambiguous framing.
    fn step<'a>(&mut self, phase: Phase, data: &'a [u8]) -> (Phase, &'a [u8], bool) {
        match phase {
            Phase::Stopped => (Phase::Stopped, &[], false),
            Phase::Head(mut buf) => {
                for (i, &b) in data.iter().enumerate() {
                    // Like hyper, tolerate empty lines before a request line.
                    if buf.is_empty() && (b == b'\r' || b == b'\n') {
                        continue;
                    }
                    buf.push(b);
                    if b == b'\n' && (buf.ends_with(b"\n\n") || buf.ends_with(b"\n\r\n")) {
                        self.requests += 1;
                        let rest = data.get(i + 1..).unwrap_or_default();
                        return match analyze(&buf) {
                            Framing::Ambiguous => (Phase::Stopped, rest, true),
                            Framing::Unknown => (Phase::Stopped, rest, false),
                            Framing::None | Framing::Length(0) => {
                                (Phase::Head(Vec::new()), rest, false)
                            }
                            Framing::Length(n) => (Phase::Body(n), rest, false),
                            Framing::Chunked => (Phase::ChunkSize(Vec::new()), rest, false),
                        };
                    }
                    if buf.len() > self.max_head_bytes {
                        return (Phase::Stopped, &[], false);
                    }
                }
                (Phase::Head(buf), &[], false)
            }
            Phase::Body(left) => {
                let (next, rest) = skip(left, data);
                match next {
                    0 => (Phase::Head(Vec::new()), rest, false),
                    n => (Phase::Body(n), rest, false),
                }
            }
            Phase::ChunkSize(mut line) => match take_line(&mut line, data, MAX_CHUNK_LINE) {
                Line::Partial => (Phase::ChunkSize(line), &[], false),
                Line::TooLong => (Phase::Stopped, &[], false),
                Line::Done(rest) => match chunk_size(&line) {
                    Some(0) => (Phase::Trailers(Vec::new(), 0), rest, false),
                    Some(n) => (Phase::ChunkData(n), rest, false),
                    None => (Phase::Stopped, &[], false),
                },
            },
            Phase::ChunkData(left) => {
                let (next, rest) = skip(left, data);
                match next {
                    0 => (Phase::ChunkDataEnd, rest, false),
                    n => (Phase::ChunkData(n), rest, false),
                }
            }
            Phase::ChunkDataEnd => match data {
                [b'\r', rest @ ..] => (Phase::ChunkDataEnd, rest, false),
                [b'\n', rest @ ..] => (Phase::ChunkSize(Vec::new()), rest, false),
                _ => (Phase::Stopped, &[], false),
            },
            Phase::Trailers(mut line, total) => {
                let budget = self.max_head_bytes.saturating_sub(total);
                match take_line(&mut line, data, budget) {
                    Line::Partial => (Phase::Trailers(line, total), &[], false),
                    Line::TooLong => (Phase::Stopped, &[], false),
                    Line::Done(rest) if trim_cr(&line).is_empty() => {
                        (Phase::Head(Vec::new()), rest, false)
                    }
                    Line::Done(rest) => (
                        Phase::Trailers(Vec::new(), total + line.len() + 1),
                        rest,
                        false,
                    ),
                }
            }
        }
    }
}

enum Line<'a> {
    /// The line ended; the bytes after its `\n`.
    Done(&'a [u8]),
    Partial,
    TooLong,
}

/// Appends to `line` up to and excluding a `\n`.
fn take_line<'a>(line: &mut Vec<u8>, data: &'a [u8], max: usize) -> Line<'a> {
    match data.iter().position(|&b| b == b'\n') {
        Some(end) => {
            line.extend_from_slice(data.get(..end).unwrap_or_default());
            if line.len() > max {
                Line::TooLong
            } else {
                Line::Done(data.get(end + 1..).unwrap_or_default())
            }
        }
        None => {
            line.extend_from_slice(data);
            if line.len() > max {
                Line::TooLong
            } else {
                Line::Partial
            }
        }
    }
}

fn skip(left: u64, data: &[u8]) -> (u64, &[u8]) {
    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
    (left - n as u64, data.get(n..).unwrap_or_default())
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses a chunk-size line (hex, optional `;extensions`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = trim_cr(line);
    let size = line.split(|&b| b == b';').next()?;
    let size = std::str::from_utf8(size).ok()?.trim_matches([' ', '\t']);
    if size.is_empty() || size.len() > 16 {
        return None;
    }
    u64::from_str_radix(size, 16).ok()
}

/// How a head frames its body.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Both `Content-Length` and `Transfer-Encoding`, or more than one length.
    Ambiguous,
    /// Something hyper rejects; stop following.
    Unknown,
}

fn analyze(head: &[u8]) -> Framing {
    let Ok(text) = std::str::from_utf8(head) else {
        // Header values may be opaque bytes; only the framing headers need to be text.
        return analyze_lossy(&String::from_utf8_lossy(head));
    };
    analyze_lossy(text)
}

fn analyze_lossy(text: &str) -> Framing {
    let mut lengths: Vec<&str> = Vec::new();
    let mut codings: Vec<&str> = Vec::new();
    for line in text.split('\n').skip(1) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Framing::Unknown;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            lengths.push(value.trim());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings.push(value.trim());
        }
    }
    if lengths.len() > 1 || lengths.iter().any(|v| v.contains(',')) {
        return Framing::Ambiguous;
    }
    if !codings.is_empty() {
        if !lengths.is_empty() {
            return Framing::Ambiguous;
        }
        let last = codings
            .last()
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .unwrap_or_default();
        return if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::Unknown
        };
    }
    match lengths.first() {
        None => Framing::None,
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().map_or(Framing::Unknown, Framing::Length)
        }
        Some(_) => Framing::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(bytes: &[u8], split_every: usize) -> Option<u64> {
        let mut guard = FramingGuard::new(8192);
        let mut found = None;
        for chunk in bytes.chunks(split_every.max(1)) {
            if let Some(n) = guard.feed(chunk) {
                found.get_or_insert(n);
            }
        }
        found
    }

    fn every_split(bytes: &[u8]) -> Vec<Option<u64>> {
        (1..=bytes.len()).map(|n| feed_all(bytes, n)).collect()
    }

    const GOOD: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";

    #[test]
    fn clean_pipelines_are_not_flagged() {
        assert!(every_split(GOOD).iter().all(Option::is_none));
    }

    #[test]
    fn te_and_cl_is_flagged_on_the_right_request() {
        let mut bytes = GOOD.to_vec();
        bytes.extend_from_slice(
            b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        assert!(every_split(&bytes).iter().all(|f| *f == Some(4)));
    }

    #[test]
    fn cl_then_te_and_duplicate_cl_are_flagged() {
        for head in [
            &b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc",
        ] {
            assert_eq!(
                feed_all(head, 1000),
                Some(1),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn body_bytes_that_look_like_headers_are_skipped() {
        let body = b"X\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut bytes =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert!(every_split(&bytes).iter().all(Option::is_none));
    }

    #[test]
    fn nonsense_stops_the_guard() {
        let mut guard = FramingGuard::new(64);
        assert_eq!(guard.feed(&[b'a'; 100]), None);
        assert!(matches!(guard.phase, Phase::Stopped));
        let mut guard = FramingGuard::new(8192);
        guard.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert!(matches!(guard.phase, Phase::Stopped));
    }
}
