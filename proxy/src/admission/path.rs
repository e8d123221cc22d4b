//! Path normalization. The route table, the audit record and the upstream all see the same
//! path, so a path that different parsers could read differently is refused rather than
//! guessed at: dot segments, encoded separators and encoded dots (`%2F`, `%5C`, `%2E`), bad
//! percent-encodings, backslashes and control characters. Empty segments (`//`, a trailing
//! slash) carry no meaning in this API and are dropped.

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    #[error("path does not start with `/`")]
    NotAbsolute,
    #[error("path has a `.` or `..` segment")]
    DotSegment,
    #[error("path has an encoded `/`, `\\` or `.`")]
    EncodedSeparator,
    #[error("path has a malformed percent-encoding")]
    BadEncoding,
    #[error("path has a backslash or a control character")]
    BadCharacter,
}

/// The normalized form: `/` followed by the non-empty segments joined with `/`.
pub(crate) fn normalize(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    check_bytes(path.as_bytes())?;
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

fn check_bytes(bytes: &[u8]) -> Result<(), PathError> {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => return Err(PathError::BadCharacter),
            b if b.is_ascii_control() || !b.is_ascii() => return Err(PathError::BadCharacter),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
                let text = std::str::from_utf8(hex).map_err(|_| PathError::BadEncoding)?;
                if !text.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return Err(PathError::BadEncoding);
                }
                let decoded = u8::from_str_radix(text, 16).map_err(|_| PathError::BadEncoding)?;
                match decoded {
                    b'/' | b'\\' | b'.' => return Err(PathError::EncodedSeparator),
                    d if d.is_ascii_control() => return Err(PathError::BadCharacter),
                    _ => {}
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_empty_segments_and_trailing_slash() {
        assert_eq!(
            normalize("/api//2.0/token/list/").unwrap(),
            "/api/2.0/token/list"
        );
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("//").unwrap(), "/");
        assert_eq!(normalize("/a%20b").unwrap(), "/a%20b");
    }

    #[test]
    fn refuses_tricks() {
        for (path, err) in [
            ("api/2.0", PathError::NotAbsolute),
            ("/api/../internal/v1/snapshot", PathError::DotSegment),
            ("/api/./2.0", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/api%2F2.0", PathError::EncodedSeparator),
            ("/api%2f2.0", PathError::EncodedSeparator),
            ("/%2e%2e/internal", PathError::EncodedSeparator),
            ("/a%5Cb", PathError::EncodedSeparator),
            ("/a%zz", PathError::BadEncoding),
            ("/a%2", PathError::BadEncoding),
            ("/a%00", PathError::BadCharacter),
            ("/a\\b", PathError::BadCharacter),
        ] {
            assert_eq!(normalize(path), Err(err), "{path}");
        }
    }
}
