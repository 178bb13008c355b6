//! API keys: read from the environment, impossible to print by accident.

use std::fmt;

/// A credential. `Debug` and `Display` print `[redacted]`; the only way to the value is
/// [`ApiKey::expose`], used when building the HTTP header.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Reads the key from the named environment variable.
    pub fn from_env(var: &str) -> Result<ApiKey, String> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(ApiKey(v.trim().to_string())),
            Ok(_) => Err(format!("environment variable {var} is empty")),
            Err(_) => Err(format!(
                "environment variable {var} is not set (it should hold the API key)"
            )),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Removes every occurrence of the key from `text` (error bodies sometimes echo it).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() >= 4 {
            text.replace(&self.0, "[redacted]")
        } else {
            text.to_string()
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let k = ApiKey("sk-secret-123456".into());
        assert!(!format!("{k:?} {k}").contains("secret"));
        assert_eq!(k.scrub("bad key sk-secret-123456!"), "bad key [redacted]!");
    }
}
