//! Auth tokens, as `--auth-token` chooses:
//! - **simple** (the default): `<16 random letters>.<raft index of the Authenticate entry>`.
//!   Every member registers the same token when it applies the entry, so it works on any
//!   member. Kept in memory with a sliding TTL (`--auth-token-ttl`): each use renews it; a
//!   restart forgets them, and deleting a user, changing its password or disabling auth drops
//!   its tokens.
//! - **jwt** (`jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`): signed claims `username`,
//!   `revision` (the auth revision at issue) and `exp`; stateless, so they survive restarts and
//!   go stale only through the revision.
//!
//! Time is data here (`now` in Unix seconds from the node's clock), so both are pure.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bearer {
    /// The user.
    pub username: String,
    /// The auth revision the token carries (JWT), if any; simple tokens carry none.
    pub revision: Option<u64>,
}

/// The simple tokens a member knows.
#[derive(Debug, Default)]
pub struct SimpleTokens {
    ttl_secs: u64,
    /// token → (user, expiry in Unix seconds)
    live: Mutex<BTreeMap<String, (String, u64)>>,
}

impl SimpleTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, u64)>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How `--auth-token jwt,...` signs.
pub struct JwtTokens {
    algorithm: jsonwebtoken::Algorithm,
    /// None: verify-only (only a public key was given).
    encoding: Option<jsonwebtoken::EncodingKey>,
    decoding: jsonwebtoken::DecodingKey,
    ttl_secs: u64,
}

impl std::fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtTokens({:?})", self.algorithm)
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// The token provider of a member.
#[derive(Debug)]
pub enum Tokens {
    /// Simple tokens.
    Simple(SimpleTokens),
    /// Signed JWTs.
    Jwt(JwtTokens),
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens::simple(300)
    }
}

/// A simple token that is not `<letters>.<index>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Why a token was not issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueError {
    /// A JWT provider with only a public key cannot sign.
    VerifyOnly,
}

impl Tokens {
    /// Simple tokens living `ttl_secs` after their last use.
    pub fn simple(ttl_secs: u64) -> Tokens {
        Tokens::Simple(SimpleTokens {
            ttl_secs,
            live: Mutex::new(BTreeMap::new()),
        })
    }

    /// Parses etcd's `--auth-token` value (`simple`, or `jwt,k=v,...`) with `--auth-token-ttl`,
    /// reading JWT key files with `read`.
    pub fn from_flag(
        flag: &str,
        ttl_secs: u64,
        read: impl Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Tokens, String> {
        let mut parts = flag.split(',');
        match parts.next().unwrap_or("") {
            "simple" => Ok(Tokens::simple(ttl_secs)),
            "jwt" => {
                let mut opts = BTreeMap::new();
                for p in parts {
                    let (k, v) = p.split_once('=').ok_or("auth: invalid auth options")?;
                    if opts.insert(k.to_string(), v.to_string()).is_some() {
                        return Err("auth: invalid auth options".into());
                    }
                }
                jwt(&opts, read).map(Tokens::Jwt)
            }
            other => Err(format!("unknown token type: {other}")),
        }
    }

    /// A token for `username`, issued by the entry at raft `index` with `prefix` (simple) or
    /// signed with the auth `revision` (JWT), at `now` (Unix seconds).
    pub fn issue(
        &self,
        username: &str,
        prefix: &str,
        index: u64,
        revision: u64,
        now: u64,
    ) -> Result<String, IssueError> {
        match self {
            Tokens::Simple(s) => {
                let token = format!("{prefix}.{index}");
                let mut live = s.lock();
                // Forget what expired meanwhile (lookups renew, so a live map stays small).
                live.retain(|_, (_, exp)| *exp > now);
                live.insert(token.clone(), (username.to_string(), now + s.ttl_secs));
                Ok(token)
            }
            Tokens::Jwt(j) => {
                let key = j.encoding.as_ref().ok_or(IssueError::VerifyOnly)?;
                let claims = Claims {
                    username: username.to_string(),
                    revision,
                    exp: now + j.ttl_secs,
                };
                Ok(
                    jsonwebtoken::encode(&jsonwebtoken::Header::new(j.algorithm), &claims, key)
                        .expect("a loaded key signs"),
                )
            }
        }
    }

    /// The bearer of `token` at `now`, renewing a simple token; `None` if it is not valid.
    pub fn resolve(&self, token: &str, now: u64) -> Option<Bearer> {
        match self {
            Tokens::Simple(s) => {
                let mut live = s.lock();
                let (user, exp) = live.get_mut(token)?;
                if *exp <= now {
                    live.remove(token);
                    return None;
                }
                *exp = now + s.ttl_secs;
                Some(Bearer {
                    username: user.clone(),
                    revision: None,
                })
            }
            Tokens::Jwt(j) => {
                let mut v = jsonwebtoken::Validation::new(j.algorithm);
                // Expiry is checked below on the node's clock, not the library's.
                v.validate_exp = false;
                v.required_spec_claims.clear();
                let data = jsonwebtoken::decode::<Claims>(token, &j.decoding, &v).ok()?;
                if data.claims.exp <= now {
                    return None;
                }
                Some(Bearer {
                    username: data.claims.username,
                    revision: Some(data.claims.revision),
                })
            }
        }
    }

    /// The raft index a simple token was issued at: its bearer waits until that entry is applied
    /// here. `Err(Malformed)` for a malformed simple token; JWTs need no wait (`Ok(None)`).
    pub fn issued_at(&self, token: &str) -> Result<Option<u64>, Malformed> {
        match self {
            Tokens::Simple(_) => {
                let (_, index) = token.split_once('.').ok_or(Malformed)?;
                index.parse().map(Some).map_err(|_| Malformed)
            }
            Tokens::Jwt(_) => Ok(None),
        }
    }

    /// Whether tokens are JWTs (which carry their own auth revision).
    pub fn is_jwt(&self) -> bool {
        matches!(self, Tokens::Jwt(_))
    }

    /// Drops every simple token of `username`.
    pub fn drop_user(&self, username: &str) {
        if let Tokens::Simple(s) = self {
            s.lock().retain(|_, (u, _)| u != username);
        }
    }

    /// Drops every simple token.
    pub fn drop_all(&self) {
        if let Tokens::Simple(s) = self {
            s.lock().clear();
        }
    }
}

fn jwt(
    opts: &BTreeMap<String, String>,
    read: impl Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<JwtTokens, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
    let method = opts
        .get("sign-method")
        .ok_or("auth: invalid auth options (no sign-method)")?;
    let algorithm: Algorithm = match method.as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        other => return Err(format!("unsupported signing method: {other}")),
    };
    let ttl_secs = match opts.get("ttl") {
        None => 300,
        Some(t) => crate::watch::progress::parse_go_duration(t)?
            .ok_or_else(|| format!("auth: invalid ttl {t}"))?
            .as_secs(),
    };
    let priv_key = opts.get("priv-key").map(|p| read(p)).transpose()?;
    let pub_key = opts.get("pub-key").map(|p| read(p)).transpose()?;
    let bad = |e: jsonwebtoken::errors::Error| format!("auth: bad key: {e}");
    let (encoding, decoding) = match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            let secret = priv_key.ok_or("auth: missing key data")?;
            (
                Some(EncodingKey::from_secret(&secret)),
                DecodingKey::from_secret(&secret),
            )
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let enc = priv_key
                .as_deref()
                .map(EncodingKey::from_ec_pem)
                .transpose()
                .map_err(bad)?;
            let dec = pub_key.as_deref().ok_or("auth: missing key data")?;
            (enc, DecodingKey::from_ec_pem(dec).map_err(bad)?)
        }
        _ => {
            let enc = priv_key
                .as_deref()
                .map(EncodingKey::from_rsa_pem)
                .transpose()
                .map_err(bad)?;
            let dec = pub_key.as_deref().ok_or("auth: missing key data")?;
            (enc, DecodingKey::from_rsa_pem(dec).map_err(bad)?)
        }
    };
    Ok(JwtTokens {
        algorithm,
        encoding,
        decoding,
        ttl_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_slide_and_drop() {
        let t = Tokens::simple(3);
        let tok = t.issue("alice", "abcdefghijklmnop", 42, 7, 100).unwrap();
        assert_eq!(tok, "abcdefghijklmnop.42");
        assert_eq!(t.issued_at(&tok), Ok(Some(42)));
        assert_eq!(t.issued_at("nodot"), Err(Malformed));
        // Used at 102 and 104: each use renews the three seconds.
        assert!(t.resolve(&tok, 102).is_some());
        assert!(t.resolve(&tok, 104).is_some());
        assert!(t.resolve(&tok, 107).is_none(), "idle past its TTL");
        let tok = t.issue("alice", "p", 43, 7, 200).unwrap();
        t.drop_user("bob");
        assert!(t.resolve(&tok, 201).is_some());
        t.drop_user("alice");
        assert!(t.resolve(&tok, 201).is_none());
    }

    #[test]
    fn jwt_tokens_carry_user_and_revision_and_expire() {
        let flag = "jwt,priv-key=k,sign-method=HS256,ttl=10s";
        let t = Tokens::from_flag(flag, 300, |_| Ok(b"secret".to_vec())).unwrap();
        let tok = t.issue("alice", "", 0, 9, 1_000).unwrap();
        assert_eq!(
            t.resolve(&tok, 1_005),
            Some(Bearer {
                username: "alice".into(),
                revision: Some(9)
            })
        );
        assert!(t.resolve(&tok, 1_010).is_none(), "expired");
        assert!(t.resolve("a.b.c", 1_000).is_none());
        let other = Tokens::from_flag(flag, 300, |_| Ok(b"other".to_vec())).unwrap();
        assert!(
            other.resolve(&tok, 1_005).is_none(),
            "signed with another key"
        );
    }

    #[test]
    fn flag_errors_are_etcds() {
        let read = |_: &str| Ok(b"k".to_vec());
        assert!(Tokens::from_flag("jwt,ttl", 300, read).is_err());
        assert!(
            Tokens::from_flag("jwt,sign-method=none,priv-key=k", 300, read)
                .unwrap_err()
                .contains("unsupported signing method")
        );
        assert!(Tokens::from_flag("jwt,sign-method=RS256", 300, read)
            .unwrap_err()
            .contains("missing key data"));
        assert!(matches!(
            Tokens::from_flag("simple", 5, read),
            Ok(Tokens::Simple(_))
        ));
    }
}
