//! A bbolt (etcd's backend database) file, written and read whole in memory.
//!
//! [`write`] lays out a compact file that Go's bbolt 1.3 (etcd 3.4) opens, checks (`tx.Check`:
//! every page below the high-water mark reachable exactly once) and keeps writing to: two meta
//! pages, an empty freelist page, then every bucket's pages, children before parents. Every
//! bucket gets pages of its own (none inline); leaf pages are filled up to the page size, a value
//! longer than a page spills into overflow pages.
//!
//! [`read`] walks the tree from the newest valid meta page and returns every bucket with its keys
//! and values; it reads files written by Go's bbolt too (inline buckets, branch pages, free pages
//! and a file longer than its high-water mark). It is defensive: a damaged file gives an
//! [`Error`], never a panic or a loop.

pub mod page;
mod read;
mod write;

use std::collections::BTreeMap;

pub use read::read;
pub use write::write;

/// Why a file could not be read as bbolt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Neither meta page is valid (magic, version or checksum).
    #[error("not a bbolt file: {0}")]
    NoMeta(String),
    /// The tree of pages is damaged.
    #[error("damaged bbolt file: {0}")]
    Corrupt(String),
}

/// One bucket: its keys in byte order, each holding a value or a nested bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's keys.
    pub entries: BTreeMap<Vec<u8>, Entry>,
    /// The bucket's sequence (bbolt's `NextSequence` counter; etcd leaves it 0).
    pub sequence: u64,
}

/// What a key of a bucket holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A plain value.
    Value(Vec<u8>),
    /// A nested bucket.
    Bucket(Bucket),
}

impl Bucket {
    /// An empty bucket.
    pub fn new() -> Bucket {
        Bucket::default()
    }

    /// Sets `key` to the value `value` (replacing whatever was there).
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.entries.insert(key.into(), Entry::Value(value.into()));
    }

    /// The value of `key`, if it holds a value.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        match self.entries.get(key) {
            Some(Entry::Value(v)) => Some(v),
            _ => None,
        }
    }

    /// The nested bucket `name`, if there is one.
    pub fn bucket(&self, name: &[u8]) -> Option<&Bucket> {
        match self.entries.get(name) {
            Some(Entry::Bucket(b)) => Some(b),
            _ => None,
        }
    }

    /// The nested bucket `name`, created empty if missing (replacing a value of that name).
    pub fn bucket_mut(&mut self, name: &[u8]) -> &mut Bucket {
        let e = self
            .entries
            .entry(name.to_vec())
            .or_insert_with(|| Entry::Bucket(Bucket::new()));
        if !matches!(e, Entry::Bucket(_)) {
            *e = Entry::Bucket(Bucket::new());
        }
        match e {
            Entry::Bucket(b) => b,
            Entry::Value(_) => unreachable!("replaced above"),
        }
    }

    /// The plain values of this bucket, in key order.
    pub fn values(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries.iter().filter_map(|(k, e)| match e {
            Entry::Value(v) => Some((k.as_slice(), v.as_slice())),
            Entry::Bucket(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bucket {
        let mut root = Bucket::new();
        let b = root.bucket_mut(b"small");
        b.put("a", "1");
        b.put("b", "");
        root.bucket_mut(b"empty");
        let big = root.bucket_mut(b"big");
        for i in 0..3000u32 {
            big.put(
                format!("key-{i:06}"),
                format!("value {i} ").repeat((i % 7) as usize),
            );
        }
        big.put("huge", vec![7u8; 3 * page::PAGE_SIZE + 100]);
        big.put("exactly-one-page", vec![1u8; page::PAGE_SIZE]);
        let nested = big.bucket_mut(b"nested");
        nested.sequence = 42;
        nested.bucket_mut(b"deeper").put("x", "y");
        root
    }

    #[test]
    fn round_trip() {
        let root = sample();
        let file = write(&root);
        assert_eq!(file.len() % page::PAGE_SIZE, 0);
        assert_eq!(read(&file), Ok(root));
    }

    #[test]
    fn empty_root_round_trip() {
        let file = write(&Bucket::new());
        assert_eq!(file.len(), 4 * page::PAGE_SIZE);
        assert_eq!(read(&file), Ok(Bucket::new()));
    }

    #[test]
    fn every_page_is_used_once() {
        // What Go's tx.Check demands: each page below the high-water mark is a meta page, the
        // freelist page, or reachable from exactly one parent.
        let file = write(&sample());
        let meta = page::Meta::decode(&file[page::PAGE_HEADER..]).unwrap();
        assert_eq!(meta.pgid as usize * page::PAGE_SIZE, file.len());
        let pages = read::reachable_pages(&file).unwrap();
        let expected: Vec<u64> = (0..meta.pgid).collect();
        assert_eq!(pages, expected);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let file = write(&sample());
        assert!(matches!(read(&file[..50]), Err(Error::NoMeta(_))));
        assert!(matches!(read(&file[..100]), Err(Error::Corrupt(_))));
        let mut bad_magic = file.clone();
        bad_magic[page::PAGE_HEADER] ^= 0xff;
        bad_magic[page::PAGE_SIZE + page::PAGE_HEADER] ^= 0xff;
        assert!(matches!(read(&bad_magic), Err(Error::NoMeta(_))));
        // Cut short, or any byte after the metas flipped: an error or a different tree, never a
        // panic.
        for cut in (0..file.len()).step_by(997) {
            let _ = read(&file[..cut]);
        }
        for i in (2 * page::PAGE_SIZE..file.len()).step_by(509) {
            let mut f = file.clone();
            f[i] ^= 0xa5;
            let _ = read(&f);
        }
    }

    #[test]
    fn one_meta_damaged_uses_the_other() {
        let root = sample();
        let mut file = write(&root);
        file[page::PAGE_SIZE + page::PAGE_HEADER + 20] ^= 1;
        assert_eq!(read(&file), Ok(root));
    }
}
