//! Reads a bbolt file's tree of buckets.

use std::collections::BTreeSet;

use super::page::{self, Header, Meta, BRANCH, BUCKET_HEADER, ELEMENT, LEAF, PAGE_HEADER};
use super::{Bucket, Entry, Error};

/// How deep branch pages and nested buckets may go together before the file is called damaged
/// (a real tree is a handful of levels; this only stops a crafted file).
const MAX_DEPTH: usize = 256;

/// Every bucket of the file, from the newer of its two valid meta pages.
pub fn read(file: &[u8]) -> Result<Bucket, Error> {
    let meta = newest_meta(file)?;
    let mut r = Reader::new(file, &meta)?;
    let mut root = r.bucket(meta.root, 0)?;
    root.sequence = meta.sequence;
    Ok(root)
}

/// The pages the newest meta's tree uses, with the meta and freelist pages, sorted; `Err` if a
/// page is used twice.
#[cfg(test)]
pub(super) fn reachable_pages(file: &[u8]) -> Result<Vec<u64>, Error> {
    let meta = newest_meta(file)?;
    let mut r = Reader::new(file, &meta)?;
    r.bucket(meta.root, 0)?;
    r.visit(0, 0)?;
    r.visit(1, 0)?;
    if meta.freelist != page::NO_FREELIST {
        let fl = r.page(meta.freelist)?;
        if Header::get(fl).flags != page::FREELIST {
            return Err(corrupt("freelist page has the wrong type"));
        }
    }
    Ok(r.visited.into_iter().collect())
}

fn corrupt(why: impl Into<String>) -> Error {
    Error::Corrupt(why.into())
}

/// The valid meta with the highest txid, as bbolt picks it.
fn newest_meta(file: &[u8]) -> Result<Meta, Error> {
    let at = |off: usize| -> Result<Meta, String> {
        let m = file
            .get(off + PAGE_HEADER..off + PAGE_HEADER + page::META)
            .ok_or_else(|| "file too short for a meta page".to_string())?;
        let meta = Meta::decode(m)?;
        if !(512..=1 << 20).contains(&meta.page_size) {
            return Err(format!("implausible page size {}", meta.page_size));
        }
        Ok(meta)
    };
    let m0 = at(0);
    let size = m0
        .as_ref()
        .map_or(page::PAGE_SIZE, |m| m.page_size as usize);
    let m1 = at(size);
    match (m0, m1) {
        (Ok(a), Ok(b)) => Ok(if b.txid > a.txid { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(e0), Err(e1)) => Err(Error::NoMeta(format!("meta 0: {e0}; meta 1: {e1}"))),
    }
}

struct Reader<'a> {
    file: &'a [u8],
    page_size: usize,
    high_water: u64,
    visited: BTreeSet<u64>,
}

impl<'a> Reader<'a> {
    fn new(file: &'a [u8], meta: &Meta) -> Result<Reader<'a>, Error> {
        if meta.root < 2 || meta.root >= meta.pgid {
            return Err(corrupt(format!(
                "root page {} outside 2..{}",
                meta.root, meta.pgid
            )));
        }
        Ok(Reader {
            file,
            page_size: meta.page_size as usize,
            high_water: meta.pgid,
            visited: BTreeSet::new(),
        })
    }

    /// Marks `pgid` and its `overflow` pages used; a page used twice means a damaged tree.
    fn visit(&mut self, pgid: u64, overflow: u32) -> Result<(), Error> {
        for id in pgid..=pgid.saturating_add(u64::from(overflow)) {
            if !self.visited.insert(id) {
                return Err(corrupt(format!("page {id} referenced twice")));
            }
        }
        Ok(())
    }

    /// The bytes of page `pgid` with its overflow pages, marked used.
    fn page(&mut self, pgid: u64) -> Result<&'a [u8], Error> {
        if pgid < 2 || pgid >= self.high_water {
            return Err(corrupt(format!(
                "page {pgid} outside 2..{}",
                self.high_water
            )));
        }
        let at = (pgid as usize)
            .checked_mul(self.page_size)
            .ok_or_else(|| corrupt("page offset overflows"))?;
        let head = self
            .file
            .get(at..at + PAGE_HEADER)
            .ok_or_else(|| corrupt(format!("page {pgid} past the end of the file")))?;
        let h = Header::get(head);
        if h.id != pgid {
            return Err(corrupt(format!("page {pgid} says it is page {}", h.id)));
        }
        let span = u64::from(h.overflow) + 1;
        if pgid + span > self.high_water {
            return Err(corrupt(format!(
                "page {pgid} overflows the high-water mark"
            )));
        }
        let end = at + span as usize * self.page_size;
        let bytes = self
            .file
            .get(at..end)
            .ok_or_else(|| corrupt(format!("page {pgid} past the end of the file")))?;
        self.visit(pgid, h.overflow)?;
        Ok(bytes)
    }

    /// The bucket whose root page is `root`.
    fn bucket(&mut self, root: u64, depth: usize) -> Result<Bucket, Error> {
        let mut out = Bucket::new();
        let p = self.page(root)?;
        self.node(p, depth, &mut out)?;
        Ok(out)
    }

    /// Adds the keys under the branch or leaf page `p` to `out`.
    fn node(&mut self, p: &'a [u8], depth: usize, out: &mut Bucket) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(corrupt("tree too deep"));
        }
        let h = Header::get(p);
        let count = usize::from(h.count);
        if PAGE_HEADER + count * ELEMENT > p.len() {
            return Err(corrupt(format!("page {} has too many elements", h.id)));
        }
        match h.flags {
            LEAF => {
                for i in 0..count {
                    let e = PAGE_HEADER + i * ELEMENT;
                    let flags = page::u32_at(p, e);
                    let pos = page::u32_at(p, e + 4) as usize;
                    let ksize = page::u32_at(p, e + 8) as usize;
                    let vsize = page::u32_at(p, e + 12) as usize;
                    let key = slice(p, e + pos, ksize)?;
                    let value = slice(p, e + pos + ksize, vsize)?;
                    let entry = if flags & page::BUCKET_LEAF != 0 {
                        Entry::Bucket(self.nested(value, depth + 1)?)
                    } else {
                        Entry::Value(value.to_vec())
                    };
                    if out.entries.insert(key.to_vec(), entry).is_some() {
                        return Err(corrupt("a key appears twice in one bucket"));
                    }
                }
            }
            BRANCH => {
                for i in 0..count {
                    let e = PAGE_HEADER + i * ELEMENT;
                    let child = page::u64_at(p, e + 8);
                    let c = self.page(child)?;
                    self.node(c, depth + 1, out)?;
                }
            }
            other => {
                return Err(corrupt(format!(
                    "page {} has type {other:#x}, not branch or leaf",
                    h.id
                )))
            }
        }
        Ok(())
    }

    /// The nested bucket stored in a leaf value: its root page, or an inline leaf page after the
    /// bucket header when the root is 0.
    fn nested(&mut self, value: &'a [u8], depth: usize) -> Result<Bucket, Error> {
        if value.len() < BUCKET_HEADER {
            return Err(corrupt("bucket value too short"));
        }
        let root = page::u64_at(value, 0);
        let sequence = page::u64_at(value, 8);
        let mut b = if root == 0 {
            let inline = &value[BUCKET_HEADER..];
            if inline.len() < PAGE_HEADER || Header::get(inline).flags != LEAF {
                return Err(corrupt("inline bucket without a leaf page"));
            }
            let mut b = Bucket::new();
            self.node(inline, depth, &mut b)?;
            b
        } else {
            self.bucket(root, depth)?
        };
        b.sequence = sequence;
        Ok(b)
    }
}

/// `len` bytes of `p` from `start`, or an error if they are not all inside it.
fn slice(p: &[u8], start: usize, len: usize) -> Result<&[u8], Error> {
    start
        .checked_add(len)
        .and_then(|end| p.get(start..end))
        .ok_or_else(|| corrupt("element data outside its page"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a one-page file by hand, with an inline bucket, as Go's bbolt writes small buckets.
    #[test]
    fn reads_an_inline_bucket() {
        let ps = page::PAGE_SIZE;
        let mut file = vec![0u8; 4 * ps];
        for i in 0..2u64 {
            let at = i as usize * ps;
            Header {
                id: i,
                flags: page::META_PAGE,
                count: 0,
                overflow: 0,
            }
            .put(&mut file[at..]);
            let meta = Meta {
                page_size: ps as u32,
                flags: 0,
                root: 3,
                sequence: 0,
                freelist: 2,
                pgid: 4,
                txid: i,
            };
            file[at + PAGE_HEADER..at + PAGE_HEADER + page::META].copy_from_slice(&meta.encode());
        }
        Header {
            id: 2,
            flags: page::FREELIST,
            count: 0,
            overflow: 0,
        }
        .put(&mut file[2 * ps..]);
        // The inline bucket's value: header (root 0, sequence 5) + a leaf page with "k" = "v".
        let mut inline = vec![0u8; BUCKET_HEADER + PAGE_HEADER + ELEMENT];
        page::put_u64(&mut inline, 8, 5);
        Header {
            id: 0,
            flags: LEAF,
            count: 1,
            overflow: 0,
        }
        .put(&mut inline[BUCKET_HEADER..]);
        let e = BUCKET_HEADER + PAGE_HEADER;
        page::put_u32(&mut inline, e + 4, ELEMENT as u32);
        page::put_u32(&mut inline, e + 8, 1);
        page::put_u32(&mut inline, e + 12, 1);
        inline.extend_from_slice(b"kv");
        // Page 3: the root leaf with one element, bucket "b".
        let at = 3 * ps;
        Header {
            id: 3,
            flags: LEAF,
            count: 1,
            overflow: 0,
        }
        .put(&mut file[at..]);
        let e = at + PAGE_HEADER;
        page::put_u32(&mut file, e, page::BUCKET_LEAF);
        page::put_u32(&mut file, e + 4, ELEMENT as u32);
        page::put_u32(&mut file, e + 8, 1);
        page::put_u32(&mut file, e + 12, inline.len() as u32);
        file[e + ELEMENT] = b'b';
        file[e + ELEMENT + 1..e + ELEMENT + 1 + inline.len()].copy_from_slice(&inline);
        // Go's files are longer than their high-water mark.
        file.resize(8 * ps, 0);

        let root = read(&file).unwrap();
        let b = root.bucket(b"b").unwrap();
        assert_eq!(b.get(b"k"), Some(&b"v"[..]));
        assert_eq!(b.sequence, 5);
    }
}
