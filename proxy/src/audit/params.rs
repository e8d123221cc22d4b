//! `requestParams`: the query string and the top-level scalar fields of a JSON body, as a
//! string → string map, with secrets removed and long values truncated. Only scalars are
//! taken, so nested secrets (a token inside an object) never reach the log.

use std::collections::BTreeMap;

/// Values longer than this are cut and marked, as Databricks does.
const MAX_VALUE_BYTES: usize = 1024;
const TRUNCATED: &str = "... truncated";
/// At most this many parameters per record.
const MAX_PARAMS: usize = 64;

/// Keys whose values are secrets, compared case-insensitively.
const SECRET_KEYS: [&str; 16] = [
    "token_value",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "string_value",
    "bytes_value",
    "content",
    "password",
    "secret",
    "client_secret",
    "private_key",
    "api_key",
    "credentials",
    "authorization",
    "assertion",
];

/// Whether `key` names a secret: the listed keys, and anything that looks like one.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str())
        || key.contains("password")
        || key.contains("secret")
        || key.contains("private_key")
        || key.contains("credential")
        || key.ends_with("_token")
        || key.ends_with("token_value")
}

/// The parameters of a request.
pub(crate) fn request_params(query: Option<&str>, body: &[u8]) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    if let Some(query) = query {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            insert(&mut params, percent_decode(key), percent_decode(value));
        }
    }
    if body.first().is_some_and(|&b| b == b'{') {
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
            for (key, value) in fields {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Null
                    | serde_json::Value::Array(_)
                    | serde_json::Value::Object(_) => continue,
                };
                insert(&mut params, key, text);
            }
        }
    }
    params
}

fn insert(params: &mut BTreeMap<String, String>, key: String, value: String) {
    if is_secret_key(&key) || params.len() >= MAX_PARAMS {
        return;
    }
    params.insert(truncate(key), truncate(value));
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_VALUE_BYTES {
        let mut cut = MAX_VALUE_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(TRUNCATED);
    }
    text
}

/// Decodes `%XX` and `+` (form encoding); invalid sequences are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(decoded) = hex {
                    out.push(decoded);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_scalar_body_fields_without_secrets() {
        let body = br#"{"comment":"ci","lifetime_seconds":3600,"token_value":"dapi123",
            "nested":{"token":"x"},"Password":"p","client_secret":"s","enabled":true,"n":null}"#;
        let params = request_params(Some("keys=enableIpAccessLists&a%20b=c+d&token=dapi9"), body);
        let expected: BTreeMap<String, String> = [
            ("keys", "enableIpAccessLists"),
            ("a b", "c d"),
            ("comment", "ci"),
            ("lifetime_seconds", "3600"),
            ("enabled", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(params, expected);
    }

    #[test]
    fn long_values_are_truncated() {
        let long = "é".repeat(2000);
        let body = serde_json::to_vec(&serde_json::json!({ "statement": long })).unwrap();
        let params = request_params(None, &body);
        let v = &params["statement"];
        assert!(v.ends_with(TRUNCATED));
        assert!(v.len() <= MAX_VALUE_BYTES + TRUNCATED.len());
    }

    #[test]
    fn non_json_bodies_are_ignored() {
        assert!(request_params(None, b"token=dapi1").is_empty());
        assert!(request_params(None, b"[1,2]").is_empty());
    }
}
