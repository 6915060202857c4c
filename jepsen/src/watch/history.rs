//! What a watch test records: the committed writes (the ground truth) and
//! every watch stream with everything it received, in the JSON form the
//! CLI reads. The checks compare the two; nothing here judges anything.

use serde::{Deserialize, Serialize};

/// Put or delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change to one key at one revision (both a committed write and a
/// delivered watch event).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The revision of the change (the key's new `mod_revision`).
    pub revision: u64,
    /// The key.
    pub key: String,
    /// Put or delete.
    pub kind: EventKind,
    /// The new value for puts; ignored for deletes.
    #[serde(default)]
    pub value: Option<String>,
}

/// One message received on a watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchResponse {
    /// A batch of events.
    Events {
        /// The events, in delivery order.
        events: Vec<WatchEvent>,
    },
    /// A progress notification (bookmark): the stream claims to be caught
    /// up to `revision`.
    Progress {
        /// The header revision of the notification.
        revision: u64,
    },
}

/// A recorded watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    /// A name for reports.
    pub name: String,
    /// First key of the watched range.
    pub key: String,
    /// End of the range (exclusive); `None` watches exactly `key`; `""`
    /// means every key from `key` on (etcd's `"\0"`).
    #[serde(default)]
    pub range_end: Option<String>,
    /// The requested start revision; 0 means "from now" (see
    /// `created_revision`).
    #[serde(default)]
    pub start_revision: u64,
    /// For a "from now" stream: the header revision of the watch-creation
    /// response, if recorded. etcd starts such a watch right after it, so
    /// every matching event after it must be delivered and none at or
    /// before it. Without it the start is bounded by the first progress
    /// notification or delivered event. Ignored when `start_revision > 0`.
    #[serde(default)]
    pub created_revision: Option<u64>,
    /// Everything received, in order.
    pub responses: Vec<WatchResponse>,
    /// The stream was canceled because its start revision had been compacted: etcd's
    /// `compact_revision`, the oldest revision it can still watch from. A watch resumed over
    /// several streams may continue from there; what changed between its start and this
    /// revision is lost to it, and it was told so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted: Option<u64>,
}

impl WatchStream {
    /// Whether `key` is inside the watched range.
    pub fn matches(&self, key: &str) -> bool {
        match &self.range_end {
            None => key == self.key,
            Some(end) if end.is_empty() => key >= self.key.as_str(),
            Some(end) => key >= self.key.as_str() && key < end.as_str(),
        }
    }

    /// The range end that watches every key with this prefix.
    pub fn prefix_end(prefix: &str) -> String {
        let mut b = prefix.as_bytes().to_vec();
        while let Some(last) = b.pop() {
            if last < 0xff {
                b.push(last + 1);
                return String::from_utf8_lossy(&b).into_owned();
            }
        }
        String::new()
    }
}

/// Everything the watch checker needs: the write history and the streams.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchHistory {
    /// Every committed change, in any order (sorted by the checker).
    pub writes: Vec<WatchEvent>,
    /// The watch streams.
    pub streams: Vec<WatchStream>,
}
