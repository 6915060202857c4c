//! The snapshot format raft ships to a member that fell too far behind: every disk record of the
//! state machine (mvcc revisions, leases, members, meta), framed as
//! `(u32 key length, key, u32 value length, value)` in key order. openraft carries the applied
//! log id and membership beside it in the snapshot's metadata.

use std::io;

use bytes::{Buf, BufMut, Bytes};

/// Appends one record to a snapshot being built.
pub fn put_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.put_u32(key.len() as u32);
    out.put_slice(key);
    out.put_u32(value.len() as u32);
    out.put_slice(value);
}

/// The records of a snapshot, in order. A frame cut inside a record is an error.
pub fn records(mut data: Bytes) -> io::Result<Vec<(Bytes, Bytes)>> {
    let truncated = || io::Error::new(io::ErrorKind::InvalidData, "truncated snapshot");
    let mut out = Vec::new();
    while data.has_remaining() {
        if data.remaining() < 4 {
            return Err(truncated());
        }
        let kl = data.get_u32() as usize;
        if data.remaining() < kl + 4 {
            return Err(truncated());
        }
        let k = data.split_to(kl);
        let vl = data.get_u32() as usize;
        if data.remaining() < vl {
            return Err(truncated());
        }
        out.push((k, data.split_to(vl)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(pairs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..40)),
            0..20,
        )) {
            let mut data = Vec::new();
            for (k, v) in &pairs {
                put_record(&mut data, k, v);
            }
            let back = records(Bytes::from(data)).unwrap();
            let back: Vec<(Vec<u8>, Vec<u8>)> =
                back.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(back, pairs);
        }

        #[test]
        fn every_cut_short_snapshot_is_refused(cut in 1usize..30) {
            let mut data = Vec::new();
            put_record(&mut data, b"key", b"value");
            put_record(&mut data, b"k2", b"");
            prop_assume!(cut < data.len());
            // A cut at a record boundary is a valid shorter snapshot; anywhere else is not.
            let boundary = 4 + 3 + 4 + 5;
            let r = records(Bytes::from(data[..data.len() - cut].to_vec()));
            if data.len() - cut == boundary {
                prop_assert_eq!(r.unwrap().len(), 1);
            } else {
                prop_assert!(r.is_err());
            }
        }
    }
}
