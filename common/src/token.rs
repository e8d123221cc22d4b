//! Personal access tokens. A token is `dapi` followed by 32 random hex digits (128 bits), as
//! Databricks' are. Only [`hash_token`] of it is ever stored or sent between services.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix every personal access token carries.
pub const TOKEN_PREFIX: &str = "dapi";

/// A new random token value. Shown to its owner once, at creation.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a token: hex SHA-256. Tokens carry 128 random bits, so a fast unsalted
/// hash is enough: nothing can be guessed from it, and lookups can index it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two hashes in constant time.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether a bearer value has the shape of a personal access token (as opposed to a JWT).
pub fn looks_like_pat(value: &str) -> bool {
    value.len() == TOKEN_PREFIX.len() + 32
        && value.starts_with(TOKEN_PREFIX)
        && value[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_pats_and_distinct() {
        let a = generate_token();
        let b = generate_token();
        assert!(looks_like_pat(&a), "{a}");
        assert_ne!(a, b);
        assert_ne!(hash_token(&a), hash_token(&b));
        assert!(hashes_equal(&hash_token(&a), &hash_token(&a)));
        assert!(!hashes_equal(&hash_token(&a), &hash_token(&b)));
        assert!(!looks_like_pat("eyJhbGciOi.x.y"));
    }
}
