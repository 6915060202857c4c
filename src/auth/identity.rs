//! Who a request comes from, as etcd decides it (`AuthInfoFromCtx`, then `AuthInfoFromTLS`):
//! a token in the request's metadata names its user — an unknown, expired or malformed one is
//! refused as `invalid auth token`, even while auth is off; without a token, the common name of
//! a verified client certificate does when `--client-cert-auth` is on; else nobody.
//!
//! A simple token names the raft index of the Authenticate entry that registered it; its bearer
//! must wait until that entry is applied on the member it asks ([`AuthStore::token_index`])
//! before [`AuthStore::identify`] can know it.

use crate::error::Error;

use super::store::{AuthInfo, AuthStore};

/// What a request presents about its caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The `token` (or `authorization`) metadata.
    pub token: Option<String>,
    /// The common name of the verified client certificate of the connection, if any.
    pub common_name: Option<String>,
}

impl AuthStore {
    /// The raft index this member must have applied before `creds`' token can be resolved
    /// (`None`: no wait). A malformed simple token is refused here.
    pub fn token_index(&self, creds: &Credentials) -> Result<Option<u64>, Error> {
        match &creds.token {
            Some(t) => self
                .tokens()
                .issued_at(t)
                .map_err(|_| Error::InvalidAuthToken),
            None => Ok(None),
        }
    }

    /// The identity `creds` establish at `now` (Unix seconds): the token's user at the token's
    /// auth revision (JWT) or the current one (simple); else the certificate's common name at
    /// the current revision if common names are accepted; else none.
    pub fn identify(&self, creds: &Credentials, now: u64) -> Result<Option<AuthInfo>, Error> {
        if let Some(token) = &creds.token {
            let bearer = self
                .tokens()
                .resolve(token, now)
                .ok_or(Error::InvalidAuthToken)?;
            return Ok(Some(AuthInfo {
                username: bearer.username,
                revision: bearer.revision.unwrap_or_else(|| self.revision()),
            }));
        }
        if !self.accepts_common_names() {
            return Ok(None);
        }
        Ok(creds
            .common_name
            .as_ref()
            .filter(|cn| !cn.is_empty())
            .map(|cn| AuthInfo {
                username: cn.clone(),
                revision: self.revision(),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Tokens;

    fn creds(token: Option<&str>, cn: Option<&str>) -> Credentials {
        Credentials {
            token: token.map(str::to_string),
            common_name: cn.map(str::to_string),
        }
    }

    #[test]
    fn a_token_wins_over_a_certificate_and_a_bad_one_is_refused() {
        let auth = AuthStore::new(Tokens::simple(300), true);
        let token = auth.tokens().issue("alice", "abc", 7, 1, 1000).unwrap();
        assert_eq!(token, "abc.7");
        let c = creds(Some(&token), Some("bob"));
        assert_eq!(auth.token_index(&c), Ok(Some(7)));
        let who = auth.identify(&c, 1001).unwrap().unwrap();
        assert_eq!(who.username, "alice");
        assert_eq!(who.revision, auth.revision());
        // Unknown, malformed and expired tokens are invalid, not anonymous.
        let bad = creds(Some("xyz.7"), Some("bob"));
        assert_eq!(auth.identify(&bad, 1001), Err(Error::InvalidAuthToken));
        assert_eq!(
            auth.token_index(&creds(Some("no-index"), None)),
            Err(Error::InvalidAuthToken)
        );
        assert_eq!(auth.identify(&c, 1001 + 300), Err(Error::InvalidAuthToken));
    }

    #[test]
    fn a_certificate_names_the_user_only_with_client_cert_auth() {
        let on = AuthStore::new(Tokens::simple(300), true);
        let who = on
            .identify(&creds(None, Some("carol")), 0)
            .unwrap()
            .unwrap();
        assert_eq!(who.username, "carol");
        let off = AuthStore::new(Tokens::simple(300), false);
        assert_eq!(off.identify(&creds(None, Some("carol")), 0), Ok(None));
        assert_eq!(on.identify(&creds(None, None), 0), Ok(None));
    }
}
