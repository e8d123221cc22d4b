//! The crate's error type, and the mapping from cedar's byte-offset diagnostics to the
//! `file:line:column` positions people read.

use cedar_policy::ffi::DetailedError;
use serde::Serialize;
use std::fmt;

/// Everything that can go wrong in this crate.
///
/// Load and validation problems come as [`PolicyError::Source`] so the CLI can print them
/// compiler-style; the rest describe bad input to [`crate::check()`] or the IP access lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A problem at a place in a schema or policy file (1-based line and column).
    #[error("{file}:{line}:{column}: {message}")]
    Source {
        /// The file as named to the loader (a path for [`crate::PolicyBundle::load_dir`]).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A problem with a whole file or directory: unreadable, missing, ambiguous.
    #[error("{path}: {message}")]
    Load {
        /// The file or directory.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An IP access list entry that is not an IPv4 address or CIDR.
    #[error("invalid ip access list entry `{entry}`: {reason}")]
    InvalidIpEntry {
        /// The entry as given.
        entry: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A principal, action, resource, context or entity set given to [`crate::check()`] that does
    /// not parse or does not match the schema.
    #[error("invalid {what} `{input}`: {message}")]
    InvalidInput {
        /// Which argument: `principal`, `action`, `resource`, `context` or `entities`.
        what: &'static str,
        /// The argument as given (shortened when long).
        input: String,
        /// Why it was rejected.
        message: String,
    },
    /// A request that does not conform to the schema (e.g. an action applied to a resource type
    /// it does not apply to).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl PolicyError {
    /// The `(file, line, column)` of a [`PolicyError::Source`] error.
    pub fn location(&self) -> Option<(&str, usize, usize)> {
        match self {
            Self::Source {
                file, line, column, ..
            } => Some((file, *line, *column)),
            _ => None,
        }
    }

    pub(crate) fn invalid_input(
        what: &'static str,
        input: &str,
        message: impl fmt::Display,
    ) -> Self {
        // Entity JSON can be megabytes; the message is what matters.
        const MAX: usize = 80;
        let input = match input.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}...", &input[..cut]),
            None => input.to_owned(),
        };
        Self::InvalidInput {
            what,
            input,
            message: message.to_string(),
        }
    }
}

/// An error's message followed by its causes: cedar often says only "entity does not conform to
/// the schema" at the top and puts which attribute is wrong in the source.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A validation warning: the policy set is accepted, but a person should look at this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyWarning {
    /// The file as named to the loader.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What looks wrong.
    pub message: String,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// One cedar diagnostic pinned to a file: the unit both errors and warnings are built from.
pub(crate) struct Located {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

impl From<Located> for PolicyError {
    fn from(l: Located) -> Self {
        Self::Source {
            file: l.file,
            line: l.line,
            column: l.column,
            message: l.message,
        }
    }
}

impl From<Located> for PolicyWarning {
    fn from(l: Located) -> Self {
        Self {
            file: l.file,
            line: l.line,
            column: l.column,
            message: l.message,
        }
    }
}

/// Turns one cedar diagnostic (already converted with `DetailedError::from(&err)`, which spares
/// us a direct `miette` dependency) into located messages: itself, then every related
/// diagnostic, since cedar hangs the second and later parse errors off the first.
///
/// `fallback` is the byte offset used when cedar gives no label.
pub(crate) fn locate(diag: DetailedError, file: &str, text: &str, fallback: usize) -> Vec<Located> {
    let mut flat = Vec::new();
    flatten(diag, &mut flat);
    flat.into_iter()
        .map(|d| {
            let offset = d.source_locations.first().map_or(fallback, |l| l.loc.start);
            let (line, column) = line_column(text, offset);
            let message = match d.help {
                Some(help) => format!("{}; help: {help}", d.message),
                None => d.message,
            };
            Located {
                file: file.to_owned(),
                line,
                column,
                message,
            }
        })
        .collect()
}

fn flatten(mut diag: DetailedError, out: &mut Vec<DetailedError>) {
    let related = std::mem::take(&mut diag.related);
    out.push(diag);
    for r in related {
        flatten(r, out);
    }
}

/// 1-based (line, column) of a byte offset; the column counts characters, as editors do.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 1), (1, 2));
        assert_eq!(line_column(text, 3), (2, 1));
        // `é` is two bytes but one column.
        assert_eq!(line_column(text, 7), (2, 4));
        assert_eq!(line_column(text, 8), (3, 1));
        assert_eq!(line_column(text, 999), (3, 2));
        // Inside a multi-byte character: rounds down instead of panicking.
        assert_eq!(line_column(text, 6), (2, 3));
    }

    #[test]
    fn display_is_file_line_column_message() {
        let e = PolicyError::Source {
            file: "p.cedar".into(),
            line: 3,
            column: 7,
            message: "unexpected token `)`".into(),
        };
        assert_eq!(e.to_string(), "p.cedar:3:7: unexpected token `)`");
        assert_eq!(e.location(), Some(("p.cedar", 3, 7)));
    }

    #[test]
    fn long_input_is_shortened() {
        let long = "x".repeat(500);
        let e = PolicyError::invalid_input("entities", &long, "bad");
        assert!(e.to_string().len() < 150, "{e}");
    }
}
