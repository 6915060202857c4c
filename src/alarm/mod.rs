//! Alarms (etcd's `v3alarm`): a member raises NOSPACE when a write would take the store past
//! `--quota-backend-bytes`, and CORRUPT when its data disagrees with the cluster. Alarms are
//! replicated: raising, clearing and listing them are raft entries applied in log order
//! ([`crate::apply`]), and the raised set is persisted under `s/alarm/` with the state (so
//! snapshots carry it and a restart keeps it).
//!
//! What a raised alarm does, as in etcd: with NOSPACE, puts, txns that put and lease grants are
//! refused (`etcdserver: mvcc: database space exceeded`) while reads, deletes and compaction go
//! on; with CORRUPT every read and write is refused (`etcdserver: corrupt cluster`).

pub mod corrupt;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use prost::Message;

use crate::io::disk::{prefix_end, WriteBatch};
use crate::io::Disk;
use crate::proto::etcdserverpb::{AlarmMember, AlarmType};

const ALARMS: &[u8] = b"s/alarm/";

/// The raised alarms of the cluster, as this member has applied them.
#[derive(Debug, Default)]
pub struct AlarmStore {
    /// (alarm type, member ID): ordered, so listings are stable.
    raised: Mutex<BTreeSet<(i32, u64)>>,
}

fn key(alarm: i32, member: u64) -> Vec<u8> {
    let mut k = ALARMS.to_vec();
    k.extend_from_slice(&alarm.to_be_bytes());
    k.extend_from_slice(&member.to_be_bytes());
    k
}

fn member(alarm: i32, member_id: u64) -> AlarmMember {
    AlarmMember { member_id, alarm }
}

impl AlarmStore {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<(i32, u64)>> {
        self.raised.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the raised set with what `disk` holds (at open, and after a snapshot install).
    pub fn load(&self, disk: &Disk) -> std::io::Result<()> {
        let mut raised = BTreeSet::new();
        for (_, v) in disk.scan(ALARMS, &prefix_end(ALARMS))? {
            let m = AlarmMember::decode(v).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "alarm record")
            })?;
            raised.insert((m.alarm, m.member_id));
        }
        *self.lock() = raised;
        Ok(())
    }

    /// The raised alarms of type `alarm` (every type for `NONE`), by type then member.
    pub fn get(&self, alarm: i32) -> Vec<AlarmMember> {
        self.lock()
            .iter()
            .filter(|(a, _)| alarm == AlarmType::None as i32 || *a == alarm)
            .map(|&(a, m)| member(a, m))
            .collect()
    }

    /// Raises `alarm` for member `member_id`; the alarm as raised (also when it already was).
    pub fn activate(&self, member_id: u64, alarm: i32, batch: &mut WriteBatch) -> AlarmMember {
        let m = member(alarm, member_id);
        if self.lock().insert((alarm, member_id)) {
            batch.put(key(alarm, member_id), m.encode_to_vec());
        }
        m
    }

    /// Clears `alarm` of member `member_id`; the cleared alarm, or `None` if it was not raised.
    pub fn deactivate(
        &self,
        member_id: u64,
        alarm: i32,
        batch: &mut WriteBatch,
    ) -> Option<AlarmMember> {
        if !self.lock().remove(&(alarm, member_id)) {
            return None;
        }
        batch.delete(key(alarm, member_id));
        Some(member(alarm, member_id))
    }

    /// Whether any member raised `alarm`.
    pub fn raised(&self, alarm: AlarmType) -> bool {
        let a = alarm as i32;
        self.lock().iter().any(|(t, _)| *t == a)
    }

    /// The raised alarms as etcd's Status lists them (`memberID:<id> alarm:<TYPE> `, the text
    /// form of the message).
    pub fn status_errors(&self) -> Vec<String> {
        self.get(AlarmType::None as i32)
            .iter()
            .map(|m| {
                let name = AlarmType::try_from(m.alarm)
                    .map(|t| t.as_str_name().to_string())
                    .unwrap_or_else(|_| m.alarm.to_string());
                format!("memberID:{} alarm:{} ", m.member_id, name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::disk::SimDisk;

    #[test]
    fn alarms_are_raised_once_cleared_once_and_persisted() {
        let disk = Disk::Sim(SimDisk::new());
        let alarms = AlarmStore::default();
        let mut b = WriteBatch::new();
        let nospace = AlarmType::Nospace as i32;
        alarms.activate(7, nospace, &mut b);
        alarms.activate(7, nospace, &mut b);
        alarms.activate(3, AlarmType::Corrupt as i32, &mut b);
        assert_eq!(b.ops().len(), 2, "raising a raised alarm writes nothing");
        disk.write(b).unwrap();
        assert!(alarms.raised(AlarmType::Nospace));
        assert_eq!(alarms.get(AlarmType::None as i32).len(), 2);
        assert_eq!(alarms.get(nospace), vec![member(nospace, 7)]);
        assert_eq!(
            alarms.status_errors(),
            vec!["memberID:7 alarm:NOSPACE ", "memberID:3 alarm:CORRUPT "]
        );

        let again = AlarmStore::default();
        again.load(&disk).unwrap();
        assert_eq!(
            again.get(AlarmType::None as i32),
            alarms.get(AlarmType::None as i32)
        );

        let mut b = WriteBatch::new();
        assert_eq!(
            again.deactivate(7, nospace, &mut b),
            Some(member(nospace, 7))
        );
        assert_eq!(again.deactivate(7, nospace, &mut b), None);
        assert!(!again.raised(AlarmType::Nospace));
        disk.write(b).unwrap();
        let third = AlarmStore::default();
        third.load(&disk).unwrap();
        assert_eq!(
            third.get(AlarmType::None as i32),
            vec![member(AlarmType::Corrupt as i32, 3)]
        );
    }
}
