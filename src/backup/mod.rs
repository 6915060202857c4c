//! Snapshots in etcd's own format, for etcd's tools: the backend database file etcd 3.4 keeps in
//! `member/snap/db` (a bbolt file, [`bbolt`], with etcd's buckets, [`etcd_db`]) and the snapshot
//! stream of `Maintenance.Snapshot`.
//!
//! The stream (what `etcdctl snapshot save` writes to its file, unchanged): the database bytes,
//! then the 32-byte SHA-256 of them. etcd sends the database in 32 KiB `blob`s, each with
//! `remaining_bytes` = database bytes still to come, then one last response whose blob is the
//! digest (`remaining_bytes` 0). `etcdctl snapshot save` refuses a stream whose length is not
//! 32 more than a multiple of 512; `snapshot restore` takes such a file's last 32 bytes as the
//! digest and checks it (without them it needs `--skip-hash-check`, as for a copied `db` file).
//!
//! Everything here is pure: bytes in, bytes out.

pub mod bbolt;
pub mod etcd_db;
pub mod export;
pub mod restore;

use sha2::{Digest, Sha256};

use crate::proto::etcdserverpb::SnapshotResponse;

/// Length of the SHA-256 trailer of a snapshot.
pub const CHECKSUM_LEN: usize = 32;
/// The blob size of etcd's snapshot responses.
pub const CHUNK: usize = 32 * 1024;

/// Why a snapshot file's checksum trailer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// Its length is not 32 past a multiple of 512, so it has no trailer (a copied `db` file).
    #[error("snapshot missing hash (file size {0} is not a multiple of 512 plus 32)")]
    Missing(usize),
    /// The trailer is not the SHA-256 of the rest.
    #[error("snapshot sha256 mismatch")]
    Mismatch,
}

/// `db` followed by its SHA-256: a snapshot as `etcdctl snapshot save` stores it. `db` should be
/// a multiple of 512 bytes long (every bbolt file written by [`bbolt::write`] is) so that
/// etcdctl recognises the trailer.
pub fn with_checksum(db: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(db.len() + CHECKSUM_LEN);
    out.extend_from_slice(db);
    out.extend_from_slice(&Sha256::digest(db));
    out
}

/// Whether a snapshot of `len` bytes carries a checksum trailer, by etcdctl's rule.
pub fn has_checksum(len: usize) -> bool {
    len % 512 == CHECKSUM_LEN
}

/// The database part of a snapshot file, after checking its trailer like `etcdctl snapshot
/// restore` does.
pub fn split_checksum(snapshot: &[u8]) -> Result<&[u8], ChecksumError> {
    if !has_checksum(snapshot.len()) {
        return Err(ChecksumError::Missing(snapshot.len()));
    }
    let (db, sum) = snapshot.split_at(snapshot.len() - CHECKSUM_LEN);
    if Sha256::digest(db).as_slice() != sum {
        return Err(ChecksumError::Mismatch);
    }
    Ok(db)
}

/// The database part of a snapshot file: checked when it has a trailer, taken whole when it has
/// none (a `db` file copied from a data dir, as with `--skip-hash-check`).
pub fn db_part(snapshot: &[u8]) -> Result<&[u8], ChecksumError> {
    match split_checksum(snapshot) {
        Err(ChecksumError::Missing(_)) => Ok(snapshot),
        other => other,
    }
}

/// The responses of `Maintenance.Snapshot` for `db`, as etcd 3.4 sends them: 32 KiB blobs with
/// the bytes still to come, then the SHA-256 with `remaining_bytes` 0. No header (etcd sets
/// none).
pub fn snapshot_responses(db: &[u8]) -> impl Iterator<Item = SnapshotResponse> + '_ {
    let total = db.len();
    let digest = Sha256::digest(db).to_vec();
    db.chunks(CHUNK)
        .scan(0usize, move |sent, chunk| {
            *sent += chunk.len();
            Some(SnapshotResponse {
                header: None,
                remaining_bytes: (total - *sent) as u64,
                blob: bytes::Bytes::copy_from_slice(chunk),
            })
        })
        .chain(std::iter::once(SnapshotResponse {
            header: None,
            remaining_bytes: 0,
            blob: digest.into(),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_round_trip() {
        let db = bbolt::write(&bbolt::Bucket::new());
        let snap = with_checksum(&db);
        assert_eq!(snap.len(), db.len() + 32);
        assert!(has_checksum(snap.len()));
        assert_eq!(split_checksum(&snap), Ok(&db[..]));
        assert_eq!(db_part(&snap), Ok(&db[..]));
        assert_eq!(db_part(&db), Ok(&db[..]));
        assert_eq!(split_checksum(&db), Err(ChecksumError::Missing(db.len())));
        let mut bad = snap.clone();
        bad[100] ^= 1;
        assert_eq!(split_checksum(&bad), Err(ChecksumError::Mismatch));
    }

    #[test]
    fn sha256_known_value() {
        let snap = with_checksum(b"abc");
        assert_eq!(
            snap[3..],
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
                0xf2, 0x00, 0x15, 0xad
            ]
        );
    }

    #[test]
    fn responses_concatenate_to_the_snapshot() {
        let db = vec![9u8; 2 * CHUNK + 4096];
        let rs: Vec<SnapshotResponse> = snapshot_responses(&db).collect();
        assert_eq!(rs.len(), 4);
        let remaining: Vec<u64> = rs.iter().map(|r| r.remaining_bytes).collect();
        assert_eq!(remaining, vec![(CHUNK + 4096) as u64, 4096, 0, 0]);
        let all: Vec<u8> = rs.iter().flat_map(|r| r.blob.to_vec()).collect();
        assert_eq!(all, with_checksum(&db));
    }
}
