//! A Redis endpoint as the gateway's Redis users (the change feed, the shared rate limiter) hold
//! it: the client, and the URL's password, so that no logged error ever quotes it.

pub(crate) struct RedisTarget {
    pub(crate) client: redis::Client,
    password: Option<String>,
}

impl RedisTarget {
    /// The Redis at `url`; nothing connects yet.
    pub(crate) fn open(url: &str) -> Result<RedisTarget, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let password = client
            .get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_owned);
        Ok(RedisTarget { client, password })
    }

    /// The error text without the URL's password, should the client ever quote it.
    pub(crate) fn scrub(&self, error: &str) -> String {
        match &self.password {
            Some(password) if !password.is_empty() => error.replace(password.as_str(), "***"),
            _ => error.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RedisTarget;

    #[test]
    fn the_password_never_survives_scrubbing() {
        let target = RedisTarget::open("redis://:s3cret@127.0.0.1:1/").unwrap();
        assert_eq!(target.scrub("auth s3cret refused"), "auth *** refused");
        let open = RedisTarget::open("redis://127.0.0.1:1/").unwrap();
        assert_eq!(open.scrub("refused"), "refused");
    }
}
