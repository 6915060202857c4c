//! How records sit in a segment: `[u32 length][u32 crc32][kind u8][payload]`, little-endian,
//! where the length counts the kind byte and the payload and the CRC covers both. A length of
//! zero is the end of the written part of a segment (segments are preallocated with zeros).

/// Bytes before a record's kind.
pub const HEADER: usize = 8;

/// Appends one framed record to `out`.
pub fn put(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let len = 1 + payload.len() as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// What is at one offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum At<'a> {
    /// A whole record whose CRC matches; the next one starts at `next`.
    Record {
        /// The record's kind.
        kind: u8,
        /// Its payload.
        payload: &'a [u8],
        /// Offset of the next frame.
        next: usize,
    },
    /// A zero length: nothing was written here.
    End,
    /// A frame that runs past the segment or whose CRC does not match: a torn write, or
    /// corruption.
    Bad,
}

/// Reads the frame at `at` of `segment`.
pub fn read(segment: &[u8], at: usize) -> At<'_> {
    let Some(head) = segment.get(at..at + HEADER) else {
        // Too close to the end for a header: nothing more can have been written.
        return if segment[at.min(segment.len())..].iter().all(|b| *b == 0) {
            At::End
        } else {
            At::Bad
        };
    };
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len == 0 {
        return if crc == 0 { At::End } else { At::Bad };
    }
    let Some(body) = segment.get(at + HEADER..at + HEADER + len) else {
        return At::Bad;
    };
    if crc32fast::hash(body) != crc {
        return At::Bad;
    }
    At::Record {
        kind: body[0],
        payload: &body[1..],
        next: at + HEADER + len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zeros_end_a_segment_and_a_flipped_bit_is_bad() {
        let mut seg = Vec::new();
        put(&mut seg, 2, b"payload");
        let end = seg.len();
        seg.resize(end + 32, 0);
        match read(&seg, 0) {
            At::Record {
                kind,
                payload,
                next,
            } => {
                assert_eq!((kind, payload, next), (2, &b"payload"[..], end));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read(&seg, end), At::End);
        assert_eq!(read(&seg, seg.len() - 3), At::End);
        let mut flipped = seg.clone();
        flipped[10] ^= 4;
        assert_eq!(read(&flipped, 0), At::Bad);
        // Cut short: the frame runs past the end.
        assert_eq!(read(&seg[..end - 1], 0), At::Bad);
    }

    proptest! {
        #[test]
        fn frames_read_back_in_order(payloads in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..300), 0..20)
        ) {
            let mut seg = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                put(&mut seg, i as u8, p);
            }
            seg.resize(seg.len() + 16, 0);
            let mut at = 0;
            for (i, p) in payloads.iter().enumerate() {
                match read(&seg, at) {
                    At::Record { kind, payload, next } => {
                        prop_assert_eq!(kind, i as u8);
                        prop_assert_eq!(payload, &p[..]);
                        at = next;
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            prop_assert_eq!(read(&seg, at), At::End);
        }

        #[test]
        fn a_torn_last_frame_never_reads_as_a_record(cut in 1usize..40) {
            let mut seg = Vec::new();
            put(&mut seg, 1, b"first");
            let first_end = seg.len();
            put(&mut seg, 2, b"the second record, torn");
            let whole = seg.len();
            prop_assume!(cut < whole - first_end);
            // The tail of the second frame never reached the disk.
            let mut torn = seg.clone();
            for b in &mut torn[whole - cut..] {
                *b = 0;
            }
            torn.resize(whole + 16, 0);
            let first_is_whole = matches!(read(&torn, 0), At::Record { .. });
            prop_assert!(first_is_whole);
            let second_is_record = matches!(read(&torn, first_end), At::Record { .. });
            prop_assert!(!second_is_record);
        }
    }
}
