//! Which events a watcher wants: its key range and its event-type filters.

use bytes::Bytes;

use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::mvccpb::{event::EventType, Event};

/// The keys a watcher covers, normalised the way etcd's watch server normalises a create request:
/// an empty key means `"\0"` (the smallest key), an empty range end means the single key, and a
/// range end of `"\0"` means every key `>= key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// The first key.
    pub key: Bytes,
    /// etcd's range end after normalisation: empty (single key), `"\0"` (from `key` on) or an
    /// exclusive end strictly above `key`.
    pub range_end: Bytes,
}

/// A create request whose explicit range end is not above its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mvcc: watcher range is empty")]
pub struct EmptyRange;

impl KeyRange {
    /// Normalises a create request's `(key, range_end)`.
    pub fn new(key: Bytes, range_end: Bytes) -> Result<KeyRange, EmptyRange> {
        let key = if key.is_empty() {
            Bytes::from_static(b"\0")
        } else {
            key
        };
        if !range_end.is_empty() && range_end.as_ref() != b"\0" && key >= range_end {
            return Err(EmptyRange);
        }
        Ok(KeyRange { key, range_end })
    }

    /// True if `k` is in the range.
    pub fn contains(&self, k: &[u8]) -> bool {
        if self.range_end.is_empty() {
            k == self.key.as_ref()
        } else if self.range_end.as_ref() == b"\0" {
            k >= self.key.as_ref()
        } else {
            k >= self.key.as_ref() && k < self.range_end.as_ref()
        }
    }
}

/// The event types a watcher asked not to see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filters {
    /// `NOPUT`: drop put events.
    pub no_put: bool,
    /// `NODELETE`: drop delete events.
    pub no_delete: bool,
}

impl Filters {
    /// From a create request's `filters` field; unknown values are ignored, as etcd ignores them.
    pub fn from_request(filters: &[i32]) -> Filters {
        let mut f = Filters::default();
        for v in filters {
            match FilterType::try_from(*v) {
                Ok(FilterType::Noput) => f.no_put = true,
                Ok(FilterType::Nodelete) => f.no_delete = true,
                Err(_) => {}
            }
        }
        f
    }

    /// True if the watcher wants `e`.
    pub fn keeps(&self, e: &Event) -> bool {
        if e.r#type == EventType::Delete as i32 {
            !self.no_delete
        } else {
            !self.no_put
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    fn range(k: &str, e: &str) -> Result<KeyRange, EmptyRange> {
        KeyRange::new(Bytes::from(k.to_string()), Bytes::from(e.to_string()))
    }

    #[test]
    fn ranges_as_etcd_normalises_them() {
        let single = range("foo", "").unwrap();
        assert!(single.contains(b"foo"));
        assert!(!single.contains(b"foo1"));
        let prefix = range("fo", "fp").unwrap();
        assert!(prefix.contains(b"fo") && prefix.contains(b"foo") && !prefix.contains(b"fp"));
        let from = range("b", "\0").unwrap();
        assert!(from.contains(b"b") && from.contains(b"zzz") && !from.contains(b"a"));
        let all = range("", "\0").unwrap();
        assert_eq!(all.key.as_ref(), b"\0");
        assert!(all.contains(b"a") && all.contains(b"\0"));
        let empty_key = range("", "").unwrap();
        assert!(empty_key.contains(b"\0") && !empty_key.contains(b"a"));
        assert_eq!(range("b", "a"), Err(EmptyRange));
        assert_eq!(range("b", "b"), Err(EmptyRange));
        assert_eq!(EmptyRange.to_string(), "mvcc: watcher range is empty");
    }

    #[test]
    fn filters_drop_what_they_name() {
        let put = Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue::default()),
            prev_kv: None,
        };
        let del = Event {
            r#type: EventType::Delete as i32,
            ..put.clone()
        };
        let none = Filters::from_request(&[]);
        assert!(none.keeps(&put) && none.keeps(&del));
        let no_put = Filters::from_request(&[FilterType::Noput as i32, 7]);
        assert!(!no_put.keeps(&put) && no_put.keeps(&del));
        let no_del = Filters::from_request(&[FilterType::Nodelete as i32]);
        assert!(no_del.keeps(&put) && !no_del.keeps(&del));
    }
}
