//! The control plane's configuration: a serde struct with a default for every field, checked
//! whole by [`Config::validate`] so that an operator sees every problem at once.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Configuration of the control plane (the `[control]` table of the Lakeward config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the store lives: a `postgres://` (or `postgresql://`) URL, or a `sqlite://` URL.
    /// `None` (the default) is SQLite in `<data_dir>/control.db`. Several control-plane replicas
    /// may share one PostgreSQL database; a SQLite file must have a single replica.
    pub database_url: Option<String>,
    /// Largest number of open store connections.
    pub max_connections: u32,
    /// How long a request waits for a free store connection before it fails.
    pub acquire_timeout_secs: u64,
    /// The DNS domain under which workspaces are served (`<deployment_name>.<domain>`, e.g.
    /// `lakeward.localhost`). When set, new deployment names are checked to make valid host
    /// names under it.
    pub workspace_domain: Option<String>,
    /// How long `GET /internal/v1/changes` waits for a change before it answers with the
    /// current version.
    pub changes_timeout_secs: u64,
    /// While a `changes` long-poll waits, how often it re-reads the version from the store, so
    /// that changes committed by another replica are noticed.
    pub changes_poll_interval_ms: u64,
    /// A `redis://[:password@]host[:port][/db]` URL. When set, after each committed change this
    /// replica publishes the new state version on `redis_channel`, so gateways learn of it at
    /// once instead of at their next long-poll. Best effort: while Redis is unreachable, writes
    /// still succeed and the failure is logged. `None` (the default) publishes nothing.
    pub redis_url: Option<String>,
    /// The Redis channel versions are published on (default
    /// [`lakeward_common::internal::STATE_VERSION_CHANNEL`]). Gateways must subscribe to the
    /// same one (`gateway.redis_channel`). Deployments sharing one Redis server each need their own
    /// channel, so that one's versions never reach the other's gateways.
    pub redis_channel: String,
    /// The Cedar policy directory the gateway decides with, served to the runtime
    /// ([`lakeward_common::data::POLICIES_PATH`]) so that it decides table access with the same
    /// set. Not read from the config file: the binary sets it to the gateway's directory, so
    /// the two cannot disagree. `None` answers that route with 404.
    #[serde(skip)]
    pub policy_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            max_connections: 8,
            acquire_timeout_secs: 10,
            workspace_domain: None,
            changes_timeout_secs: 25,
            changes_poll_interval_ms: 500,
            redis_url: None,
            redis_channel: lakeward_common::internal::STATE_VERSION_CHANNEL.to_owned(),
            policy_dir: None,
        }
    }
}

impl Config {
    /// Checks every field and returns all problems found, each naming its field.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Some(url) = &self.database_url {
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !known.iter().any(|prefix| url.starts_with(prefix)) {
                // Never echo the URL itself: it may carry a password.
                problems.push(
                    "control.database_url: must start with `sqlite:`, `postgres://` or `postgresql://`"
                        .to_owned(),
                );
            }
        }
        if self.max_connections == 0 || self.max_connections > 1000 {
            problems.push(format!(
                "control.max_connections: `{}` is not between 1 and 1000",
                self.max_connections
            ));
        }
        if self.acquire_timeout_secs == 0 || self.acquire_timeout_secs > 600 {
            problems.push(format!(
                "control.acquire_timeout_secs: `{}` is not between 1 and 600",
                self.acquire_timeout_secs
            ));
        }
        if self.changes_timeout_secs == 0 || self.changes_timeout_secs > 300 {
            problems.push(format!(
                "control.changes_timeout_secs: `{}` is not between 1 and 300",
                self.changes_timeout_secs
            ));
        }
        if self.changes_poll_interval_ms < 10 || self.changes_poll_interval_ms > 60_000 {
            problems.push(format!(
                "control.changes_poll_interval_ms: `{}` is not between 10 and 60000",
                self.changes_poll_interval_ms
            ));
        }
        if let Some(url) = &self.redis_url {
            // Never echo the URL itself: it may carry a password.
            if !crate::fanout::is_redis_url(url) {
                problems
                    .push("control.redis_url: must be a `redis://host[:port][/db]` URL".to_owned());
            }
        }
        if self.redis_channel.is_empty() || self.redis_channel.len() > 256 {
            problems.push("control.redis_channel: must be 1 to 256 bytes long".to_owned());
        }
        if let Some(domain) = &self.workspace_domain {
            if !is_dns_name(domain) {
                problems.push(format!(
                    "control.workspace_domain: `{domain}` is not a DNS name"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A DNS label as a workspace deployment name must be: 1 to 63 lowercase letters, digits and
/// hyphens, not starting or ending with a hyphen.
pub(crate) fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// A dotted DNS name made of [`is_dns_label`] labels, at most 253 characters.
pub(crate) fn is_dns_name(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported() {
        let config = Config {
            database_url: Some("mysql://x".into()),
            max_connections: 0,
            acquire_timeout_secs: 0,
            workspace_domain: Some("Bad_Domain".into()),
            changes_timeout_secs: 0,
            changes_poll_interval_ms: 1,
            redis_url: Some("http://:secret@localhost".into()),
            redis_channel: String::new(),
            policy_dir: None,
        };
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 8, "{problems:?}");
        assert!(problems.iter().all(|p| p.starts_with("control.")));
        assert!(problems.iter().all(|p| !p.contains("secret")));
    }

    #[test]
    fn redis_urls() {
        let with = |url: &str| Config {
            redis_url: Some(url.into()),
            ..Config::default()
        };
        assert_eq!(with("redis://127.0.0.1:6379").validate(), Ok(()));
        assert_eq!(with("redis://:pw@cache.internal:6380/2").validate(), Ok(()));
        for bad in [
            "rediss://x",
            "127.0.0.1:6379",
            "redis://",
            "redis://h:notaport",
        ] {
            assert!(with(bad).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let parsed: Result<Config, _> = serde_json::from_str(r#"{"max_conections": 3}"#);
        assert!(parsed.is_err());
        // The policy directory comes from the gateway's section, never from this one.
        let parsed: Result<Config, _> = serde_json::from_str(r#"{"policy_dir": "/etc"}"#);
        assert!(parsed.is_err());
        let parsed: Config = serde_json::from_str(r#"{"max_connections": 3}"#).unwrap();
        assert_eq!(parsed.max_connections, 3);
        assert_eq!(parsed.changes_timeout_secs, 25);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("default"));
        assert!(is_dns_label("ws-2"));
        assert!(!is_dns_label("-ws"));
        assert!(!is_dns_label("Ws"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_name("lakeward.localhost"));
        assert!(!is_dns_name("lakeward..localhost"));
    }
}
