//! bbolt's on-disk layout: the page header, the branch and leaf element headers, the meta page and
//! its checksum. Every integer is little-endian (bbolt writes its structs in the byte order of the
//! machine, and etcd runs on little-endian machines).
//!
//! ```text
//! page header (16 bytes):  id u64 | flags u16 | count u16 | overflow u32
//! branch element (16):     pos u32 | ksize u32 | pgid u64           (key at element + pos)
//! leaf element (16):       flags u32 | pos u32 | ksize u32 | vsize u32 (key, then value, at element + pos)
//! meta (64, after the page header of pages 0 and 1):
//!   magic u32 | version u32 | page_size u32 | flags u32 | root: {pgid u64, sequence u64}
//!   | freelist pgid u64 | high-water pgid u64 | txid u64 | checksum u64 (FNV-1a 64 of the 56 before)
//! bucket value (16, in a leaf element with flag 1): root pgid u64 | sequence u64,
//!   followed by the bucket's one leaf page when root is 0 (an inline bucket)
//! freelist page: count page ids u64 after the header (count 0xFFFF: the first u64 is the count)
//! ```
//!
//! A page whose content is longer than one page size spans `overflow` more pages after it.

/// The page header's length.
pub const PAGE_HEADER: usize = 16;
/// A branch or leaf element header's length.
pub const ELEMENT: usize = 16;
/// A bucket value's header length (root pgid, sequence).
pub const BUCKET_HEADER: usize = 16;
/// The meta struct's length.
pub const META: usize = 64;
/// bbolt's magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The data file version bbolt 1.3 writes and reads.
pub const VERSION: u32 = 2;
/// The page size written (the usual OS page size, which etcd's bbolt picks on Linux).
pub const PAGE_SIZE: usize = 4096;

/// Page flag: a branch page.
pub const BRANCH: u16 = 0x01;
/// Page flag: a leaf page.
pub const LEAF: u16 = 0x02;
/// Page flag: a meta page.
pub const META_PAGE: u16 = 0x04;
/// Page flag: the freelist page.
pub const FREELIST: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket.
pub const BUCKET_LEAF: u32 = 0x01;
/// The meta's freelist pgid when no freelist was written (bbolt's NoFreelistSync).
pub const NO_FREELIST: u64 = u64::MAX;

/// A page header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The page's id.
    pub id: u64,
    /// Its kind (one of the page flags).
    pub flags: u16,
    /// Elements on it (or freelist ids).
    pub count: u16,
    /// Pages after this one that it also spans.
    pub overflow: u32,
}

impl Header {
    /// Writes the header at the start of `page`.
    pub fn put(&self, page: &mut [u8]) {
        put_u64(page, 0, self.id);
        page[8..10].copy_from_slice(&self.flags.to_le_bytes());
        page[10..12].copy_from_slice(&self.count.to_le_bytes());
        put_u32(page, 12, self.overflow);
    }

    /// Reads the header at the start of `page`, which must hold at least [`PAGE_HEADER`] bytes.
    pub fn get(page: &[u8]) -> Header {
        Header {
            id: u64_at(page, 0),
            flags: u16::from_le_bytes([page[8], page[9]]),
            count: u16::from_le_bytes([page[10], page[11]]),
            overflow: u32_at(page, 12),
        }
    }
}

/// The meta struct of pages 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Page size of the whole file.
    pub page_size: u32,
    /// Meta flags (unused by bbolt 1.3, written 0).
    pub flags: u32,
    /// Root page of the root bucket.
    pub root: u64,
    /// The root bucket's sequence.
    pub sequence: u64,
    /// The freelist page, or [`NO_FREELIST`].
    pub freelist: u64,
    /// The high-water mark: the number of pages in use.
    pub pgid: u64,
    /// The transaction that wrote this meta.
    pub txid: u64,
}

impl Meta {
    /// Encodes the meta with magic, version and checksum.
    pub fn encode(&self) -> [u8; META] {
        let mut m = [0u8; META];
        put_u32(&mut m, 0, MAGIC);
        put_u32(&mut m, 4, VERSION);
        put_u32(&mut m, 8, self.page_size);
        put_u32(&mut m, 12, self.flags);
        put_u64(&mut m, 16, self.root);
        put_u64(&mut m, 24, self.sequence);
        put_u64(&mut m, 32, self.freelist);
        put_u64(&mut m, 40, self.pgid);
        put_u64(&mut m, 48, self.txid);
        let sum = fnv1a64(&m[..56]);
        put_u64(&mut m, 56, sum);
        m
    }

    /// Decodes a meta struct; `Err` says why it is not a valid bbolt 1.3 meta. A zero checksum
    /// is accepted, as bbolt does.
    pub fn decode(m: &[u8]) -> Result<Meta, String> {
        if m.len() < META {
            return Err("meta page cut short".into());
        }
        if u32_at(m, 0) != MAGIC {
            return Err("bad magic".into());
        }
        if u32_at(m, 4) != VERSION {
            return Err(format!("unsupported version {}", u32_at(m, 4)));
        }
        let sum = u64_at(m, 56);
        if sum != 0 && sum != fnv1a64(&m[..56]) {
            return Err("meta checksum mismatch".into());
        }
        Ok(Meta {
            page_size: u32_at(m, 8),
            flags: u32_at(m, 12),
            root: u64_at(m, 16),
            sequence: u64_at(m, 24),
            freelist: u64_at(m, 32),
            pgid: u64_at(m, 40),
            txid: u64_at(m, 48),
        })
    }
}

/// FNV-1a, 64 bits (the meta checksum).
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Writes `v` little-endian at `off`.
pub fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `off`.
pub fn put_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads a little-endian u32 at `off` (the caller checked the bounds).
pub fn u32_at(buf: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[off..off + 4]);
    u32::from_le_bytes(b)
}

/// Reads a little-endian u64 at `off` (the caller checked the bounds).
pub fn u64_at(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn meta_round_trip_and_checksum() {
        let m = Meta {
            page_size: 4096,
            flags: 0,
            root: 7,
            sequence: 0,
            freelist: 2,
            pgid: 9,
            txid: 3,
        };
        let mut bytes = m.encode();
        assert_eq!(Meta::decode(&bytes), Ok(m));
        bytes[20] ^= 1;
        assert!(Meta::decode(&bytes).is_err());
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            id: 5,
            flags: LEAF,
            count: 3,
            overflow: 2,
        };
        let mut page = [0u8; PAGE_HEADER];
        h.put(&mut page);
        assert_eq!(Header::get(&page), h);
    }
}
