//! Authentication and authorization, as etcd 3.4 has them (`auth/`): users with bcrypt
//! passwords, roles holding key-range permissions, a root user and role that may do anything,
//! tokens (simple or JWT) or a client certificate's common name as the caller's identity.
//!
//! - [`store`]: the replicated users, roles, on/off flag and auth revision, and the admin and
//!   key checks.
//! - [`perms`]: permissions as key intervals; what a user may read and write.
//! - [`tokens`]: issuing and resolving tokens.
//! - [`request`]: which permissions each request needs (etcd's `apply_auth.go`).
//! - [`identity`]: who a request comes from (token, else certificate name).
//!
//! Where checks happen, as in etcd: writes are judged when their raft entry applies, against
//! the identity and auth revision the proposing member recorded in the entry (so a permission
//! revoked before the entry commits is honoured on every member alike); reads are judged before
//! and after they run; auth changes need the root role.

pub mod identity;
pub mod perms;
pub mod request;
pub mod store;
pub mod tokens;

pub use identity::Credentials;
pub use store::{Access, AuthInfo, AuthStore, ROOT};
pub use tokens::Tokens;
