//! detcd's domain errors and their single mapping onto gRPC statuses.
//!
//! Each variant carries etcd's exact message and code: etcdctl and the client libraries match on
//! them (e.g. clientv3 turns `etcdserver: mvcc: required revision has been compacted` back into
//! `rpctypes.ErrCompacted`).

use tonic::{Code, Status};

/// An error the server reports to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// A request without a key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// A write past `--quota-backend-bytes`, or any write that needs space while the NOSPACE
    /// alarm is raised.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// Any request while the CORRUPT alarm is raised.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// More than `--max-txn-ops` operations in one txn.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// The same key written twice (or written and deleted) in one txn branch.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A sort order or target outside the enum.
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    /// A revision at or below the compacted revision.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// A revision above the current revision.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// A request larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// A lease that does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A LeaseGrant with an ID that is already granted.
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    /// A LeaseGrant with a TTL above etcd's maximum (9,000,000,000 seconds).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// No leader is known (election in progress or quorum lost).
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request did not commit in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// A forwarded write whose outcome is unknown: the leader it went to failed before
    /// answering; it may or may not have been applied.
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    /// A request a learner does not serve (e.g. Watch).
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// The server is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// No member has that ID.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// A peer URL another member already uses.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// Peer URLs that do not parse.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// Promoting a voter.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// Promoting a learner that has not caught up with the leader.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// etcd allows one learner at a time.
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// A change that would leave too few members to make progress.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// A request only the leader serves (MoveLeader), sent to a follower.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// MoveLeader to a member that cannot lead (unknown, or a learner).
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// A Downgrade target that is not a version (`3.4`, `3.4.0`).
    #[error("etcdserver: wrong downgrade target version format")]
    WrongDowngradeVersionFormat,
    /// A Downgrade target the cluster cannot go to (for detcd: any, there is no older detcd).
    #[error("etcdserver: invalid downgrade target version")]
    InvalidDowngradeTargetVersion,
    /// A Downgrade CANCEL with no downgrade in progress.
    #[error("etcdserver: no inflight downgrade job")]
    NoInflightDowngrade,
    /// A request naming an action the server does not know (a Downgrade action outside the enum).
    #[error("etcdserver: unknown method")]
    UnknownMethod,
    /// MoveLeader did not finish in time.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    /// The root user must exist to enable auth.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// The root user must hold the root role to enable auth.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// UserAdd of an existing user.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// No user name (or no identity while auth is on).
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// A user that does not exist.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// RoleAdd of an existing role.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// A role that does not exist.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// An empty role name.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Authenticate with a wrong password or an unknown user.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// The user's roles do not permit the request.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// UserRevokeRole of a role the user does not hold.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// RoleRevokePermission of a permission the role does not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// Authenticate while auth is off.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// A token that is malformed, unknown, expired or invalidated.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// Deleting root, revoking root's root role, deleting the root role while auth is on.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// The request was authorized against an auth revision older than the store's.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// Authenticate of a user created without a password (etcd reports its raw error).
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    /// A permission grant without a permission (etcd 3.4 crashes; detcd refuses).
    #[error("etcdserver: permission is not given")]
    PermissionNotGiven,
    /// An auth error on a path where etcd returns its raw error (maintenance admin RPCs):
    /// `Unknown` with the `auth:` form of the message.
    #[error("auth: {0}")]
    AuthRaw(String),
    /// A Lock whose key vanished (its lease expired) while it waited.
    #[error("mutex: session is expired")]
    LockSessionExpired,
    /// A Campaign whose key vanished (its lease expired) while it waited.
    #[error("election: session expired")]
    ElectionSessionExpired,
    /// Election.Leader while nobody campaigns.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// Election.Proclaim by a candidate that no longer leads.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// Election.Proclaim or Resign without a leader key.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// A recipe's watch ended without the event it waited for (the member is stopping).
    #[error("lost watcher waiting for delete")]
    LostWatcher,
    /// An error inside the Lock and Election recipes. etcd runs them over its in-process client,
    /// so whatever they fail with reaches the caller as `Unknown` with the error's message.
    #[error("{0}")]
    Recipe(Box<Error>),
    /// A storage failure; the node stops serving writes.
    #[error("etcdserver: {0}")]
    Internal(String),
}

impl Error {
    /// The gRPC code etcd uses for this error.
    pub fn code(&self) -> Code {
        match self {
            Error::EmptyKey
            | Error::KeyNotFound
            | Error::ValueProvided
            | Error::LeaseProvided
            | Error::TooManyOps
            | Error::DuplicateKey
            | Error::InvalidSortOption
            | Error::RequestTooLarge
            | Error::WrongDowngradeVersionFormat
            | Error::InvalidDowngradeTargetVersion
            | Error::MemberBadUrls => Code::InvalidArgument,
            Error::NoInflightDowngrade => Code::FailedPrecondition,
            Error::UnknownMethod => Code::Unknown,
            Error::MemberNotFound => Code::NotFound,
            Error::PeerUrlExists
            | Error::MemberNotLearner
            | Error::LearnerNotReady
            | Error::TooManyLearners
            | Error::NotEnoughStartedMembers
            | Error::NotLeader
            | Error::BadLeaderTransferee
            | Error::LeaseExist => Code::FailedPrecondition,
            Error::LeaderTransferTimeout => Code::Unavailable,
            Error::Compacted | Error::FutureRevision | Error::LeaseTtlTooLarge => Code::OutOfRange,
            Error::LeaseNotFound => Code::NotFound,
            Error::NoLeader
            | Error::Timeout
            | Error::TimeoutDueToLeaderFail
            | Error::NotSupportedForLearner
            | Error::Stopped => Code::Unavailable,
            Error::RootUserNotExist
            | Error::RootRoleNotExist
            | Error::UserAlreadyExist
            | Error::UserNotFound
            | Error::RoleAlreadyExist
            | Error::RoleNotFound
            | Error::RoleNotGranted
            | Error::PermissionNotGranted
            | Error::AuthNotEnabled => Code::FailedPrecondition,
            Error::UserEmpty
            | Error::RoleEmpty
            | Error::AuthFailed
            | Error::InvalidAuthMgmt
            | Error::AuthOldRevision
            | Error::PermissionNotGiven => Code::InvalidArgument,
            Error::PermissionDenied => Code::PermissionDenied,
            Error::InvalidAuthToken => Code::Unauthenticated,
            Error::NoPasswordUser | Error::AuthRaw(_) => Code::Unknown,
            Error::LockSessionExpired
            | Error::ElectionSessionExpired
            | Error::ElectionNoLeader
            | Error::ElectionNotLeader
            | Error::MissingLeaderKey
            | Error::LostWatcher
            | Error::Recipe(_) => Code::Unknown,
            Error::Internal(_) => Code::Internal,
            Error::NoSpace => Code::ResourceExhausted,
            Error::Corrupt => Code::DataLoss,
        }
    }

    /// This error as etcd's maintenance admin RPCs report it: their auth errors are raw
    /// (`Unknown`, `auth: …`).
    pub fn raw_auth(self) -> Error {
        match self {
            Error::UserEmpty => Error::AuthRaw("user name is empty".into()),
            Error::PermissionDenied => Error::AuthRaw("permission denied".into()),
            Error::InvalidAuthToken => Error::AuthRaw("invalid auth token".into()),
            Error::UserNotFound => Error::AuthRaw("user not found".into()),
            other => other,
        }
    }

    /// This error as a Lock or Election RPC reports it (see [`Error::Recipe`]).
    pub fn in_recipe(self) -> Error {
        match self {
            Error::Recipe(_) => self,
            other => Error::Recipe(Box::new(other)),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_etcds_code_and_message() {
        let s = Status::from(Error::Compacted);
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(Status::from(Error::LeaseNotFound).code(), Code::NotFound);
        assert_eq!(
            Status::from(Error::LeaseExist).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            Status::from(Error::LeaseTtlTooLarge).message(),
            "etcdserver: too large lease TTL"
        );
        assert_eq!(
            Status::from(Error::TooManyOps).code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn recipe_errors_are_unknown_with_the_inner_message() {
        let s = Status::from(Error::LeaseNotFound.in_recipe().in_recipe());
        assert_eq!(s.code(), Code::Unknown);
        assert_eq!(s.message(), "etcdserver: requested lease not found");
        let s = Status::from(Error::MissingLeaderKey.in_recipe());
        assert_eq!(s.message(), "\"leader\" field must be provided");
    }
}
