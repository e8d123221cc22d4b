//! The HTTP/1 framing guard: follows the raw request bytes of a connection, message by
//! message, to find requests whose framing is unsafe to pass on.
//!
//! Why at the byte level: hyper *repairs* ambiguous framing instead of refusing it. A request
//! with both `Content-Length` and `Transfer-Encoding: chunked` reaches the service with the
//! `Content-Length` silently dropped, and a repeated identical `Content-Length` is folded into
//! one, so the header map the stages see cannot show the problem. The guard sees every byte
//! before hyper parses it (it sits in the read path), counts messages with the same framing
//! rules hyper applies, and records the first request it cannot vouch for; admission refuses
//! that request and every later one, and closes the connection.
//!
//! The guard never stops following while hyper may go on: whatever it cannot follow (a head
//! too large, a chunk line hyper would not parse, a transfer coding other than chunked, more
//! chunk-extension bytes than the limit) is itself a fault. Hyper refuses most of those too;
//! the point is that the guard can never lose its place on a connection hyper keeps serving,
//! which is how a long chunk extension once switched it off for the rest of a connection.

use crate::ctx::{FramingFault, FramingFaultKind};

/// Follows one connection's request stream.
#[derive(Debug)]
pub(crate) struct FramingGuard {
    phase: Phase,
    requests: u64,
    max_head_bytes: usize,
    max_extension_bytes: usize,
    /// Chunk-extension bytes in the current body so far (hyper's own bound is per body too).
    extension_bytes: usize,
}

#[derive(Debug)]
enum Phase {
    /// Reading a request head.
    Head(Vec<u8>),
    /// Skipping a fixed-length body: bytes left.
    Body(u64),
    /// Reading a chunk-size line.
    ChunkLine(ChunkLine),
    /// Skipping chunk data: bytes left.
    ChunkData(u64),
    /// Expecting the CR, then the LF, after chunk data.
    ChunkDataCr,
    ChunkDataLf,
    /// Reading trailer lines after the last chunk: the current line, and bytes so far.
    Trailers(Vec<u8>, usize),
    /// A fault was recorded; the connection is refused from that request on.
    Faulted,
}

/// Where in a chunk-size line (`1a ;name=value\r\n`) the guard is, read byte by byte with
/// the grammar hyper's decoder accepts: hex digits, optional blanks, an optional extension up
/// to CR, then LF.
#[derive(Debug, Clone, Copy)]
enum ChunkLine {
    Start,
    Size(u64),
    Blank(u64),
    Extension(u64),
    Lf(u64),
}

/// What one step found.
type Step<'a> = (Phase, &'a [u8], Option<FramingFaultKind>);

impl FramingGuard {
    /// `max_head_bytes` is hyper's head limit; `max_extension_bytes` bounds the chunk
    /// extensions of one body.
    pub(crate) fn new(max_head_bytes: usize, max_extension_bytes: usize) -> Self {
        FramingGuard {
            phase: Phase::Head(Vec::new()),
            requests: 0,
            max_head_bytes,
            max_extension_bytes,
            extension_bytes: 0,
        }
    }

    /// Feeds bytes read from the client. Returns the first fault, once, in the call whose
    /// bytes revealed it.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Option<FramingFault> {
        while !data.is_empty() {
            let phase = std::mem::replace(&mut self.phase, Phase::Faulted);
            if matches!(phase, Phase::Faulted) {
                return None;
            }
            let (next, rest, fault) = self.step(phase, data);
            if let Some(kind) = fault {
                // A head that never completed belongs to the request after the last counted.
                let request = match next {
                    Phase::Head(_) => self.requests + 1,
                    _ => self.requests,
                };
                self.phase = Phase::Faulted;
                return Some(FramingFault { request, kind });
            }
            self.phase = next;
            data = rest;
        }
        None
    }

    /// Advances one phase; returns the next phase, the unconsumed bytes, and a fault if the
    /// bytes revealed one. On a fault, the phase returned is the one the fault was found in.
    fn step<'a>(&mut self, phase: Phase, data: &'a [u8]) -> Step<'a> {
        match phase {
            Phase::Faulted => (Phase::Faulted, &[], None),
            Phase::Head(buf) => self.head(buf, data),
            Phase::Body(left) => {
                let (next, rest) = skip(left, data);
                match next {
                    0 => (Phase::Head(Vec::new()), rest, None),
                    n => (Phase::Body(n), rest, None),
                }
            }
            Phase::ChunkLine(line) => self.chunk_line(line, data),
            Phase::ChunkData(left) => {
                let (next, rest) = skip(left, data);
                match next {
                    0 => (Phase::ChunkDataCr, rest, None),
                    n => (Phase::ChunkData(n), rest, None),
                }
            }
            Phase::ChunkDataCr => match data {
                [b'\r', rest @ ..] => (Phase::ChunkDataLf, rest, None),
                _ => (Phase::ChunkDataCr, &[], Some(FramingFaultKind::Unparseable)),
            },
            Phase::ChunkDataLf => match data {
                [b'\n', rest @ ..] => (Phase::ChunkLine(ChunkLine::Start), rest, None),
                _ => (Phase::ChunkDataLf, &[], Some(FramingFaultKind::Unparseable)),
            },
            Phase::Trailers(mut line, total) => {
                let budget = self.max_head_bytes.saturating_sub(total);
                match take_line(&mut line, data, budget) {
                    Line::Partial => (Phase::Trailers(line, total), &[], None),
                    Line::TooLong => (
                        Phase::Trailers(line, total),
                        &[],
                        Some(FramingFaultKind::Unparseable),
                    ),
                    Line::Done(rest) if trim_cr(&line).is_empty() => {
                        (Phase::Head(Vec::new()), rest, None)
                    }
                    Line::Done(rest) => (
                        Phase::Trailers(Vec::new(), total + line.len() + 1),
                        rest,
                        None,
                    ),
                }
            }
        }
    }

    fn head<'a>(&mut self, mut buf: Vec<u8>, data: &'a [u8]) -> Step<'a> {
        for (i, &b) in data.iter().enumerate() {
            // Like hyper, tolerate empty lines before a request line.
            if buf.is_empty() && (b == b'\r' || b == b'\n') {
                continue;
            }
            buf.push(b);
            if b == b'\n' && (buf.ends_with(b"\n\n") || buf.ends_with(b"\n\r\n")) {
                self.requests += 1;
                self.extension_bytes = 0;
                let rest = data.get(i + 1..).unwrap_or_default();
                let next = |phase| (phase, rest, None);
                return match analyze(&buf) {
                    Framing::Ambiguous => (Phase::Faulted, rest, Some(FramingFaultKind::Ambiguous)),
                    Framing::Unknown => (Phase::Faulted, rest, Some(FramingFaultKind::Unparseable)),
                    Framing::None | Framing::Length(0) => next(Phase::Head(Vec::new())),
                    Framing::Length(n) => next(Phase::Body(n)),
                    Framing::Chunked => next(Phase::ChunkLine(ChunkLine::Start)),
                };
            }
            if buf.len() > self.max_head_bytes {
                return (Phase::Head(buf), &[], Some(FramingFaultKind::Unparseable));
            }
        }
        (Phase::Head(buf), &[], None)
    }

    fn chunk_line<'a>(&mut self, mut line: ChunkLine, data: &'a [u8]) -> Step<'a> {
        let unparseable = |line| {
            (
                Phase::ChunkLine(line),
                &[][..],
                Some(FramingFaultKind::Unparseable),
            )
        };
        let mut i = 0;
        while let Some(&b) = data.get(i) {
            line = match line {
                ChunkLine::Start => match hex_digit(b) {
                    Some(d) => ChunkLine::Size(d),
                    None => return unparseable(line),
                },
                ChunkLine::Size(n) => match (hex_digit(b), b) {
                    (Some(d), _) => match n.checked_mul(16).and_then(|n| n.checked_add(d)) {
                        Some(n) => ChunkLine::Size(n),
                        None => return unparseable(line),
                    },
                    (None, b' ' | b'\t') => ChunkLine::Blank(n),
                    (None, b';') => ChunkLine::Extension(n),
                    (None, b'\r') => ChunkLine::Lf(n),
                    (None, _) => return unparseable(line),
                },
                ChunkLine::Blank(n) => match b {
                    b' ' | b'\t' => ChunkLine::Blank(n),
                    b';' => ChunkLine::Extension(n),
                    b'\r' => ChunkLine::Lf(n),
                    _ => return unparseable(line),
                },
                ChunkLine::Extension(n) => {
                    // Extensions run to the CR; counted in bulk, they can be long.
                    let tail = data.get(i..).unwrap_or_default();
                    let end = tail.iter().position(|&c| c == b'\r' || c == b'\n');
                    self.extension_bytes += end.unwrap_or(tail.len());
                    if self.extension_bytes > self.max_extension_bytes {
                        return (
                            Phase::ChunkLine(line),
                            &[],
                            Some(FramingFaultKind::ChunkExtensionsTooLong),
                        );
                    }
                    match end {
                        None => return (Phase::ChunkLine(line), &[], None),
                        // hyper refuses a bare LF inside an extension.
                        Some(end) if tail.get(end) == Some(&b'\n') => return unparseable(line),
                        Some(end) => {
                            i += end;
                            ChunkLine::Lf(n)
                        }
                    }
                }
                ChunkLine::Lf(n) => {
                    if b != b'\n' {
                        return unparseable(line);
                    }
                    let rest = data.get(i + 1..).unwrap_or_default();
                    let next = match n {
                        0 => Phase::Trailers(Vec::new(), 0),
                        n => Phase::ChunkData(n),
                    };
                    return (next, rest, None);
                }
            };
            i += 1;
        }
        (Phase::ChunkLine(line), &[], None)
    }
}

fn hex_digit(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
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

/// How a head frames its body.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Both `Content-Length` and `Transfer-Encoding`, or more than one length.
    Ambiguous,
    /// Something hyper rejects.
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

    fn feed_all(bytes: &[u8], split_every: usize) -> Option<FramingFault> {
        let mut guard = FramingGuard::new(8192, 4096);
        let mut found = None;
        for chunk in bytes.chunks(split_every.max(1)) {
            if let Some(fault) = guard.feed(chunk) {
                assert!(found.is_none(), "a second fault was reported");
                found = Some(fault);
            }
        }
        found
    }

    fn every_split(bytes: &[u8]) -> Vec<Option<FramingFault>> {
        (1..=bytes.len()).map(|n| feed_all(bytes, n)).collect()
    }

    fn fault(request: u64, kind: FramingFaultKind) -> Option<FramingFault> {
        Some(FramingFault { request, kind })
    }

    const GOOD: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";

    const TE_AND_CL: &[u8] = b"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

    #[test]
    fn clean_pipelines_are_not_flagged() {
        assert!(every_split(GOOD).iter().all(Option::is_none));
    }

    #[test]
    fn te_and_cl_is_flagged_on_the_right_request() {
        let mut bytes = GOOD.to_vec();
        bytes.extend_from_slice(TE_AND_CL);
        let expected = fault(4, FramingFaultKind::Ambiguous);
        assert!(every_split(&bytes).iter().all(|f| *f == expected));
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
                fault(1, FramingFaultKind::Ambiguous),
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

    fn chunked_with_extension(extension: usize) -> Vec<u8> {
        format!(
            "POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x={}\r\nhello\r\n0\r\n\r\n",
            "e".repeat(extension.saturating_sub(2))
        )
        .into_bytes()
    }

    #[test]
    fn long_extensions_within_the_bound_are_followed() {
        // Past the old 1 KiB line limit that made the guard stop following.
        let mut bytes = chunked_with_extension(3000);
        bytes.extend_from_slice(TE_AND_CL);
        for split in [1, 7, 100, 1024, bytes.len()] {
            assert_eq!(
                feed_all(&bytes, split),
                fault(2, FramingFaultKind::Ambiguous),
                "split every {split}"
            );
        }
    }

    #[test]
    fn extensions_past_the_bound_are_a_fault() {
        let mut bytes = GOOD.to_vec();
        bytes.extend_from_slice(&chunked_with_extension(5000));
        for split in [1, 13, 4096, bytes.len()] {
            assert_eq!(
                feed_all(&bytes, split),
                fault(4, FramingFaultKind::ChunkExtensionsTooLong),
                "split every {split}"
            );
        }
        // The bound is on the whole body, not one line.
        let mut many = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..5 {
            many.extend_from_slice(format!("1;{}\r\nz\r\n", "e".repeat(1000)).as_bytes());
        }
        assert_eq!(
            feed_all(&many, 64),
            fault(1, FramingFaultKind::ChunkExtensionsTooLong)
        );
        // ... and it starts again with each request.
        let mut two = chunked_with_extension(3000);
        two.extend_from_slice(&chunked_with_extension(3000));
        assert_eq!(feed_all(&two, 500), None);
    }

    #[test]
    fn what_the_guard_cannot_follow_is_a_fault() {
        let unparseable = |bytes: &[u8], request| {
            assert_eq!(
                feed_all(bytes, 3),
                fault(request, FramingFaultKind::Unparseable),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        };
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        unparseable(&[b'a'; 9000], 1);
        unparseable(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 1);
        unparseable(
            format!("GET / HTTP/1.1\r\n\r\n{chunked}zz\r\n").as_bytes(),
            2,
        );
        unparseable(format!("{chunked} 5\r\nhello\r\n").as_bytes(), 1);
        unparseable(format!("{chunked}5;a\nb\r\nhello\r\n").as_bytes(), 1);
        unparseable(format!("{chunked}5\r\nhelloXX").as_bytes(), 1);
        unparseable(format!("{chunked}5\rhello").as_bytes(), 1);
        unparseable(format!("{chunked}11111111111111111\r\n").as_bytes(), 1);
        // Blanks after the size are what hyper allows.
        assert_eq!(
            feed_all(
                format!("{chunked}5 \t;a=b\r\nhello\r\n0\r\n\r\n").as_bytes(),
                1
            ),
            None
        );
    }

    #[test]
    fn after_a_fault_the_guard_reports_nothing_more() {
        let mut guard = FramingGuard::new(8192, 4096);
        assert!(guard.feed(TE_AND_CL).is_some());
        assert!(guard.feed(TE_AND_CL).is_none());
        assert!(matches!(guard.phase, Phase::Faulted));
    }
}
