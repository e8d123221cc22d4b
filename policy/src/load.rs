//! Reading a policy directory and parsing its files: every policy renamed to its final id,
//! every problem located at its file, line and column.

use crate::error::{locate, Located, PolicyError, PolicyWarning};
use cedar_policy::ffi::DetailedError;
use cedar_policy::{Policy, PolicyId, PolicySet, Schema};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

pub(crate) fn parse_schema(
    name: &str,
    text: &str,
    errors: &mut Vec<PolicyError>,
    warnings: &mut Vec<PolicyWarning>,
) -> Option<Schema> {
    match Schema::from_cedarschema_str(text) {
        Ok((schema, schema_warnings)) => {
            for w in schema_warnings {
                let located = locate(DetailedError::from(&w), name, text, 0);
                warnings.extend(located.into_iter().map(PolicyWarning::from));
            }
            Some(schema)
        }
        Err(e) => {
            let located = locate(DetailedError::from(&e), name, text, 0);
            errors.extend(located.into_iter().map(PolicyError::from));
            None
        }
    }
}

pub(crate) type Sources = Vec<(String, String)>;

/// Reads the schema files and policy files of `dir`, each sorted by name.
pub(crate) fn read_dir_sources(dir: &Path) -> Result<(Sources, Sources), Vec<PolicyError>> {
    let io_error = |path: &Path, e: std::io::Error| PolicyError::Load {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| vec![io_error(dir, e)])?;
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => errors.push(io_error(dir, e)),
        }
    }
    paths.sort();
    let (mut schemas, mut policies) = (Vec::new(), Vec::new());
    for path in paths {
        let list = match path.extension().and_then(|e| e.to_str()) {
            Some("cedarschema") => &mut schemas,
            Some("cedar") => &mut policies,
            _ => continue,
        };
        if !path.is_file() {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => list.push((path.display().to_string(), text)),
            Err(e) => errors.push(io_error(&path, e)),
        }
    }
    if errors.is_empty() {
        Ok((schemas, policies))
    } else {
        Err(errors)
    }
}

/// The policies of every file, renamed to their final ids, and where each came from.
pub(crate) struct Parsed<'a> {
    pub(crate) set: PolicySet,
    pub(crate) ids: Vec<String>,
    /// id → (file name, file text, byte offset of the policy in the file)
    origin: HashMap<String, (&'a str, &'a str, usize)>,
}

impl Parsed<'_> {
    pub(crate) fn locate(
        &self,
        id: &PolicyId,
        diag: DetailedError,
    ) -> impl Iterator<Item = Located> {
        let located = match self.origin.get(id.to_string().as_str()) {
            Some((file, text, offset)) => locate(diag, file, text, *offset),
            // Cannot happen (every policy in the set came from a file); still say something.
            None => locate(diag, "<unknown>", "", 0),
        };
        located.into_iter()
    }
}

/// Parses every policy file; syntax errors, templates and id clashes go to `errors`, and the
/// policies that parsed are returned so they can still be validated.
pub(crate) fn parse_policies<'a>(
    files: &[(&'a str, &'a str)],
    errors: &mut Vec<PolicyError>,
) -> Parsed<'a> {
    let mut parsed = Parsed {
        set: PolicySet::new(),
        ids: Vec::new(),
        origin: HashMap::new(),
    };
    for &(file, text) in files {
        parsed.add_file(file, text, errors);
    }
    parsed
}

impl<'a> Parsed<'a> {
    fn add_file(&mut self, file: &'a str, text: &'a str, errors: &mut Vec<PolicyError>) {
        let set = match PolicySet::from_str(text) {
            Ok(set) => set,
            Err(e) => {
                let located = locate(DetailedError::from(&e), file, text, 0);
                errors.extend(located.into_iter().map(PolicyError::from));
                return;
            }
        };
        for template in set.templates() {
            let offset = offset_of(text, &template.to_string(), 0);
            let message = "templates (policies with `?principal` or `?resource`) are not supported";
            errors.push(at(file, text, offset, message.into()));
        }
        let stem = Path::new(file)
            .file_stem()
            .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned());
        let mut search_from = 0;
        for (index, policy) in in_source_order(&set) {
            let policy_text = policy.to_string();
            let offset = offset_of(text, &policy_text, search_from);
            // The next policy starts after this one; when this one was not found (it always
            // is), search on from where it was looked for.
            search_from = if text
                .get(offset..)
                .is_some_and(|r| r.starts_with(&policy_text))
            {
                offset + policy_text.len()
            } else {
                search_from + 1
            };
            // `annotations()`, not `annotation("id")`, which parses the key (building a lexer)
            // for every call: an eighth of the load time of 10,000 policies.
            let id = match policy
                .annotations()
                .find(|(key, _)| *key == "id")
                .map(|(_, v)| v)
            {
                Some(id) => id.to_owned(),
                None => format!("{stem}:{index}"),
            };
            if let Err(message) = self.add_policy(id, policy, (file, text, offset)) {
                errors.push(at(file, text, offset, message));
            }
        }
    }

    fn add_policy(
        &mut self,
        id: String,
        policy: &Policy,
        origin: (&'a str, &'a str, usize),
    ) -> Result<(), String> {
        if id.is_empty() {
            return Err("empty `@id` annotation".into());
        }
        if let Some((first, _, _)) = self.origin.get(id.as_str()) {
            return Err(if *first == origin.0 {
                format!("duplicate policy id `{id}` (used twice in this file)")
            } else {
                format!("duplicate policy id `{id}` (also used in `{first}`)")
            });
        }
        self.set
            .add(policy.new_id(PolicyId::new(&id)))
            .map_err(|e| e.to_string())?;
        self.origin.insert(id.clone(), origin);
        self.ids.push(id);
        Ok(())
    }
}

/// The policies of one parsed text with their 0-based position in it.
fn in_source_order(set: &PolicySet) -> Vec<(usize, &Policy)> {
    // Cedar names the policies of a text `policy0`, `policy1`, ... in source order
    // (documented on `PolicySet::from_str`), and iterates them in no particular order.
    let mut policies: Vec<_> = set
        .policies()
        .map(|p| {
            let index = p
                .id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            (index, p)
        })
        .collect();
    policies.sort_by_key(|(index, _)| *index);
    policies
}

fn at(file: &str, text: &str, offset: usize, message: String) -> PolicyError {
    let (line, column) = crate::error::line_column(text, offset);
    PolicyError::Source {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// Where a policy's text (as cedar kept it) starts in its file; 0 when not found.
fn offset_of(text: &str, policy_text: &str, from: usize) -> usize {
    let Some(rest) = text.get(from..) else {
        return 0;
    };
    // Usually the policy starts right after the previous one and some white space.
    let skipped = rest.len() - rest.trim_start().len();
    if rest
        .get(skipped..)
        .is_some_and(|r| r.starts_with(policy_text))
    {
        return from + skipped;
    }
    rest.find(policy_text).map_or(0, |i| from + i)
}

/// FNV-1a over file names and contents: stable across runs, platforms and Rust versions
/// (unlike `DefaultHasher`), and collision resistance is not needed for a version label.
pub(crate) fn version_of(
    schema_name: &str,
    schema_text: &str,
    policies: &[(&str, &str)],
) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes.iter().chain([0u8].iter()) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    let base = |name: &str| {
        Path::new(name)
            .file_name()
            .map_or_else(|| name.to_owned(), |n| n.to_string_lossy().into_owned())
    };
    feed(base(schema_name).as_bytes());
    feed(schema_text.as_bytes());
    for (name, text) in policies {
        feed(base(name).as_bytes());
        feed(text.as_bytes());
    }
    format!("{hash:016x}").chars().take(12).collect()
}
