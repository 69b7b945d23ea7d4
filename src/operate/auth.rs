//! Bearer tokens and roles for the HTTP server. Tokens are read once from
//! their environment variable or file; only their SHA-256 digests are kept,
//! and they are compared in constant time. A browser hands its token once as
//! `?token=…` and gets it back as an HttpOnly cookie, so the status page works
//! without a login form.

use crate::config::operate::{Role, Token};
use sha2::{Digest, Sha256};

/// Name of the cookie a browser keeps its token in.
pub const COOKIE: &str = "hums_token";

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name, recorded with operator actions.
    pub name: String,
    pub role: Role,
}

/// The tokens the server accepts.
#[derive(Clone)]
pub struct Tokens(Vec<([u8; 32], Caller)>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

/// Why a token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("http.tokens[{index}]: environment variable {var} is not set; export the token in it")]
    Unset { index: usize, var: String },
    #[error("http.tokens[{index}]: cannot read token file {path}: {source}")]
    File { index: usize, path: String, source: std::io::Error },
    #[error(
        "http.tokens[{index}]: the token is shorter than 16 characters; use a long random one"
    )]
    Short { index: usize },
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Reads every configured token.
    pub fn load(tokens: &[Token]) -> Result<Self, TokenError> {
        let mut out = Vec::new();
        for (index, t) in tokens.iter().enumerate() {
            let secret = match (&t.token_env, &t.token_file) {
                (Some(var), _) => {
                    std::env::var(var).map_err(|_| TokenError::Unset { index, var: var.clone() })?
                }
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|source| TokenError::File { index, path: path.clone(), source })?,
                (None, None) => continue,
            };
            let secret = secret.trim();
            if secret.len() < 16 {
                return Err(TokenError::Short { index });
            }
            let name = if t.name.is_empty() { format!("token {index}") } else { t.name.clone() };
            out.push((digest(secret), Caller { name, role: t.role }));
        }
        Ok(Self(out))
    }

    /// The caller a presented token belongs to.
    pub fn check(&self, presented: &str) -> Option<Caller> {
        let d = digest(presented.trim());
        // Every entry is compared in full, whichever matches.
        let mut found = None;
        for (known, caller) in &self.0 {
            let diff = known.iter().zip(d.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(caller.clone());
            }
        }
        found
    }
}

/// The token a request presents: `Authorization: Bearer …`, else the cookie.
pub fn presented(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        return v.strip_prefix("Bearer ").map(str::to_string);
    }
    let cookies = headers.get_all(axum::http::header::COOKIE);
    cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_by_role_and_short_or_unset_ones_are_refused() {
        std::env::set_var("HUMS_TEST_AUTH_VIEW", "viewer-token-0123456789");
        let t = Tokens::load(&[Token {
            name: "wall".into(),
            role: Role::Viewer,
            token_env: Some("HUMS_TEST_AUTH_VIEW".into()),
            token_file: None,
        }])
        .unwrap();
        assert_eq!(t.check("viewer-token-0123456789").map(|c| c.role), Some(Role::Viewer));
        assert!(t.check("viewer-token-012345678").is_none());
        std::env::set_var("HUMS_TEST_AUTH_SHORT", "short");
        let short = Token { token_env: Some("HUMS_TEST_AUTH_SHORT".into()), ..Token::default() };
        assert!(matches!(Tokens::load(&[short]), Err(TokenError::Short { .. })));
        let unset = Token { token_env: Some("HUMS_TEST_AUTH_UNSET".into()), ..Token::default() };
        let e = Tokens::load(&[unset]).unwrap_err().to_string();
        assert!(e.contains("HUMS_TEST_AUTH_UNSET"), "{e}");
        assert!(format!("{t:?}").contains("1 configured"));
    }
}
