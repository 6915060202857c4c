//! Lays a [`Bucket`] tree out as a compact bbolt file.

use std::borrow::Cow;

use super::page::{self, Header, Meta, BRANCH, BUCKET_HEADER, ELEMENT, LEAF, PAGE_HEADER};
use super::{Bucket, Entry};

/// The txid of the meta pages written: both metas describe the same tree, page 1 (txid 1) is the
/// newer, as in a freshly created bbolt file.
const TXIDS: [u64; 2] = [0, 1];

/// The whole file for the tree under `root`: `pgid * 4096` bytes (a multiple of 512, as
/// etcdctl's checksum detection expects).
pub fn write(root: &Bucket) -> Vec<u8> {
    let mut w = Writer {
        file: vec![0u8; 3 * page::PAGE_SIZE],
        next: 3,
    };
    // Page 2: an empty freelist (every page of the file is in use).
    Header {
        id: 2,
        flags: page::FREELIST,
        count: 0,
        overflow: 0,
    }
    .put(&mut w.file[2 * page::PAGE_SIZE..]);
    let root_pgid = w.bucket(root);
    for (i, txid) in TXIDS.into_iter().enumerate() {
        let meta = Meta {
            page_size: page::PAGE_SIZE as u32,
            flags: 0,
            root: root_pgid,
            sequence: root.sequence,
            freelist: 2,
            pgid: w.next,
            txid,
        };
        let at = i * page::PAGE_SIZE;
        Header {
            id: i as u64,
            flags: page::META_PAGE,
            count: 0,
            overflow: 0,
        }
        .put(&mut w.file[at..]);
        w.file[at + PAGE_HEADER..at + PAGE_HEADER + page::META].copy_from_slice(&meta.encode());
    }
    w.file
}

/// One element of a leaf page before layout.
struct LeafItem<'a> {
    flags: u32,
    key: &'a [u8],
    value: Cow<'a, [u8]>,
}

struct Writer {
    file: Vec<u8>,
    /// The next free page id (the high-water mark).
    next: u64,
}

impl Writer {
    /// Writes `bucket` and its nested buckets; returns the pgid of its root page.
    fn bucket(&mut self, bucket: &Bucket) -> u64 {
        let mut items = Vec::with_capacity(bucket.entries.len());
        for (key, entry) in &bucket.entries {
            let item = match entry {
                Entry::Value(v) => LeafItem {
                    flags: 0,
                    key,
                    value: Cow::Borrowed(v),
                },
                Entry::Bucket(child) => {
                    let root = self.bucket(child);
                    let mut value = vec![0u8; BUCKET_HEADER];
                    page::put_u64(&mut value, 0, root);
                    page::put_u64(&mut value, 8, child.sequence);
                    LeafItem {
                        flags: page::BUCKET_LEAF,
                        key,
                        value: Cow::Owned(value),
                    }
                }
            };
            items.push(item);
        }

        // Leaves, then branch levels over them until one page holds the level.
        let sizes: Vec<usize> = items
            .iter()
            .map(|i| ELEMENT + i.key.len() + i.value.len())
            .collect();
        let mut level: Vec<(&[u8], u64)> = Vec::new();
        for range in pack(&sizes) {
            let first: &[u8] = items.get(range.start).map_or(&[], |i| i.key);
            let pgid = self.leaf(&items[range]);
            level.push((first, pgid));
        }
        while level.len() > 1 {
            let sizes: Vec<usize> = level.iter().map(|(k, _)| ELEMENT + k.len()).collect();
            let mut up = Vec::new();
            for range in pack(&sizes) {
                let first = level[range.start].0;
                let pgid = self.branch(&level[range]);
                up.push((first, pgid));
            }
            level = up;
        }
        level[0].1
    }

    /// Allocates pages for `len` bytes of page content; returns the first pgid and the page.
    fn alloc(&mut self, len: usize, flags: u16, count: usize) -> (u64, usize) {
        let pages = len.div_ceil(page::PAGE_SIZE).max(1);
        let pgid = self.next;
        self.next += pages as u64;
        let at = self.file.len();
        self.file.resize(at + pages * page::PAGE_SIZE, 0);
        Header {
            id: pgid,
            flags,
            count: u16::try_from(count).expect("pack keeps pages under 65535 elements"),
            overflow: (pages - 1) as u32,
        }
        .put(&mut self.file[at..]);
        (pgid, at)
    }

    fn leaf(&mut self, items: &[LeafItem<'_>]) -> u64 {
        let len = PAGE_HEADER
            + items
                .iter()
                .map(|i| ELEMENT + i.key.len() + i.value.len())
                .sum::<usize>();
        let (pgid, at) = self.alloc(len, LEAF, items.len());
        let mut data = at + PAGE_HEADER + ELEMENT * items.len();
        for (n, item) in items.iter().enumerate() {
            let elem = at + PAGE_HEADER + ELEMENT * n;
            page::put_u32(&mut self.file, elem, item.flags);
            page::put_u32(&mut self.file, elem + 4, (data - elem) as u32);
            page::put_u32(&mut self.file, elem + 8, item.key.len() as u32);
            page::put_u32(&mut self.file, elem + 12, item.value.len() as u32);
            self.file[data..data + item.key.len()].copy_from_slice(item.key);
            data += item.key.len();
            self.file[data..data + item.value.len()].copy_from_slice(&item.value);
            data += item.value.len();
        }
        pgid
    }

    fn branch(&mut self, children: &[(&[u8], u64)]) -> u64 {
        let len = PAGE_HEADER
            + children
                .iter()
                .map(|(k, _)| ELEMENT + k.len())
                .sum::<usize>();
        let (pgid, at) = self.alloc(len, BRANCH, children.len());
        let mut data = at + PAGE_HEADER + ELEMENT * children.len();
        for (n, (key, child)) in children.iter().enumerate() {
            let elem = at + PAGE_HEADER + ELEMENT * n;
            page::put_u32(&mut self.file, elem, (data - elem) as u32);
            page::put_u32(&mut self.file, elem + 4, key.len() as u32);
            page::put_u64(&mut self.file, elem + 8, *child);
            self.file[data..data + key.len()].copy_from_slice(key);
            data += key.len();
        }
        pgid
    }
}

/// Splits elements of the given sizes into runs that each fit one page (a run of one element may
/// need more: it gets overflow pages). No elements: one empty run (an empty leaf page).
fn pack(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut used = PAGE_HEADER;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && used + size > page::PAGE_SIZE {
            runs.push(start..i);
            start = i;
            used = PAGE_HEADER;
        }
        used += size;
    }
    runs.push(start..sizes.len());
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_fills_pages() {
        assert_eq!(pack(&[]), vec![0..0]);
        assert_eq!(pack(&[10, 10]), vec![0..2]);
        let half = (page::PAGE_SIZE - PAGE_HEADER) / 2;
        assert_eq!(pack(&[half, half, 1]), vec![0..2, 2..3]);
        assert_eq!(pack(&[1, 10_000, 1]), vec![0..1, 1..2, 2..3]);
    }
}
