//! The WAL on the simulated directory: round trips, rolling, purging, torn tails, corruption,
//! and a property test of crashes against a model of what was synced.

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use proptest::prelude::*;

use super::*;
use crate::io::fs::{Dir, SimDir};

fn id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Record {
    Record::Entry(Entry {
        log_id: id(term, index),
        payload: EntryPayload::Blank,
    })
}

fn indexes(r: &Recovered) -> Vec<(u64, u64)> {
    r.entries
        .values()
        .map(|e| (e.log_id.index, e.log_id.leader_id.term))
        .collect()
}

async fn reopen(dir: &SimDir, segment_bytes: u64) -> io::Result<(Wal, Recovered)> {
    Wal::open(Dir::Sim(dir.clone()), segment_bytes).await
}

#[tokio::test]
async fn entries_and_state_survive_a_reopen() {
    let dir = SimDir::new();
    let (wal, rec) = reopen(&dir, 4096).await.unwrap();
    assert!(rec.entries.is_empty());
    wal.write(&[entry(1, 0), entry(1, 1), Record::Vote(Vote::new(1, 1))])
        .await
        .unwrap();
    wal.write(&[Record::Committed(Some(id(1, 1)))])
        .await
        .unwrap();
    wal.sync().await.unwrap();
    let (_, rec) = reopen(&dir, 4096).await.unwrap();
    assert_eq!(indexes(&rec), vec![(0, 1), (1, 1)]);
    assert_eq!(rec.state.vote, Some(Vote::new(1, 1)));
    assert_eq!(rec.state.committed, Some(id(1, 1)));
}

#[tokio::test]
async fn segments_roll_and_purge_drops_whole_old_segments() {
    let dir = SimDir::new();
    let (wal, _) = reopen(&dir, 512).await.unwrap();
    wal.write(&[Record::Vote(Vote::new(3, 1))]).await.unwrap();
    for i in 0..100 {
        wal.write(&[entry(3, i)]).await.unwrap();
    }
    wal.sync().await.unwrap();
    let before = wal.segments().len();
    assert!(before > 3, "{before} segments");
    wal.purge(id(3, 60)).await.unwrap();
    let after = wal.segments();
    assert!(after.len() < before);
    assert!(after[0].first_index <= 61 && after.len() > 1);
    let (_, rec) = reopen(&dir, 512).await.unwrap();
    assert_eq!(rec.entries.keys().next(), Some(&61));
    assert_eq!(rec.entries.keys().next_back(), Some(&99));
    assert_eq!(rec.state.purged, Some(id(3, 60)));
    // The vote was in a removed segment; the heads carried it.
    assert_eq!(rec.state.vote, Some(Vote::new(3, 1)));
}

#[tokio::test]
async fn a_later_entry_at_a_known_index_replaces_the_suffix() {
    let dir = SimDir::new();
    let (wal, _) = reopen(&dir, 4096).await.unwrap();
    for i in 0..5 {
        wal.write(&[entry(1, i)]).await.unwrap();
    }
    wal.write(&[Record::Truncate(3), entry(2, 3)])
        .await
        .unwrap();
    wal.write(&[entry(3, 2)]).await.unwrap();
    wal.sync().await.unwrap();
    let (_, rec) = reopen(&dir, 4096).await.unwrap();
    assert_eq!(indexes(&rec), vec![(0, 1), (1, 1), (2, 3)]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_later_writes_do_not_resurrect_it() {
    let dir = SimDir::new();
    let (wal, _) = reopen(&dir, 8192).await.unwrap();
    for i in 0..10 {
        wal.write(&[entry(1, i)]).await.unwrap();
    }
    wal.sync().await.unwrap();
    for i in 10..40 {
        wal.write(&[entry(1, i)]).await.unwrap();
    }
    dir.crash();
    let (wal, rec) = reopen(&dir, 8192).await.unwrap();
    let n = rec.entries.len() as u64;
    assert!((10..=40).contains(&n), "{n}");
    assert_eq!(
        rec.entries.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
    // New entries after the cut, then a clean reopen: exactly those.
    wal.write(&[entry(2, n)]).await.unwrap();
    wal.sync().await.unwrap();
    let (_, rec) = reopen(&dir, 8192).await.unwrap();
    assert_eq!(rec.entries.len() as u64, n + 1);
    assert_eq!(rec.entries[&n].log_id.leader_id.term, 2);
}

#[tokio::test]
async fn corruption_before_the_last_segment_refuses_to_open() {
    let dir = SimDir::new();
    let (wal, _) = reopen(&dir, 512).await.unwrap();
    for i in 0..30 {
        wal.write(&[entry(1, i)]).await.unwrap();
    }
    wal.sync().await.unwrap();
    let first = wal.segments()[0].name.clone();
    let mut data = Dir::Sim(dir.clone()).read(&first).unwrap();
    // Flip a bit inside the first segment's second record.
    data[MAGIC.len() + 120] ^= 0x10;
    let d = Dir::Sim(dir.clone());
    d.write_at(&first, 0, &data).unwrap();
    d.sync(&first).await.unwrap();
    let err = reopen(&dir, 512).await.unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

/// Flips one bit of the last segment at `at`, durably.
async fn flip(dir: &SimDir, wal: &Wal, at: u64) {
    let name = wal.segments().last().unwrap().name.clone();
    let d = Dir::Sim(dir.clone());
    let byte = d.read_at(&name, at, 1).unwrap()[0];
    d.write_at(&name, at, &[byte ^ 0x08]).unwrap();
    d.sync(&name).await.unwrap();
}

#[tokio::test]
async fn damage_to_synced_records_of_the_last_segment_refuses_to_open() {
    let dir = SimDir::new();
    let (wal, _) = reopen(&dir, 1 << 20).await.unwrap();
    for i in 0..10 {
        wal.write(&[entry(1, i)]).await.unwrap();
    }
    wal.sync().await.unwrap();
    // A later sync's marker proves the first records were durable.
    wal.write(&[entry(1, 10)]).await.unwrap();
    wal.sync().await.unwrap();
    wal.write(&[entry(1, 11)]).await.unwrap();
    wal.sync().await.unwrap();
    flip(&dir, &wal, MAGIC.len() as u64 + 150).await;
    let err = reopen(&dir, 1 << 20).await.unwrap_err();
    assert!(err.to_string().contains("completed sync"), "{err}");
}

#[tokio::test]
async fn damage_after_the_last_sync_is_a_torn_write_and_cut() {
    let dir = SimDir::new();
    let (wal, _) = reopen(&dir, 1 << 20).await.unwrap();
    for i in 0..10 {
        wal.write(&[entry(1, i)]).await.unwrap();
    }
    wal.sync().await.unwrap();
    let end = {
        let d = Dir::Sim(dir.clone());
        let name = wal.segments()[0].name.clone();
        let data = d.read(&name).unwrap();
        data.iter().rposition(|b| *b != 0).unwrap() as u64 + 1
    };
    for i in 10..20 {
        wal.write(&[entry(1, i)]).await.unwrap();
    }
    // Damage in what no sync covered: the log ends before it.
    flip(&dir, &wal, end + 30).await;
    let (_, rec) = reopen(&dir, 1 << 20).await.unwrap();
    assert!(
        (10..20).contains(&rec.entries.len()),
        "{}",
        rec.entries.len()
    );
}

#[tokio::test]
async fn a_missing_segment_refuses_to_open() {
    let dir = SimDir::new();
    let (wal, _) = reopen(&dir, 512).await.unwrap();
    for i in 0..100 {
        wal.write(&[entry(1, i)]).await.unwrap();
    }
    wal.sync().await.unwrap();
    let segs = wal.segments();
    assert!(segs.len() >= 3);
    Dir::Sim(dir.clone()).remove(&segs[1].name).await.unwrap();
    let err = reopen(&dir, 512).await.unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Truncate(u8),
    Vote(u8),
    Sync,
    Purge,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1u8..6).prop_map(Op::Append),
        1 => (0u8..4).prop_map(Op::Truncate),
        1 => (0u8..3).prop_map(Op::Vote),
        3 => Just(Op::Sync),
        1 => Just(Op::Purge),
        2 => Just(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After any crash the log is exactly what it was at some moment between the last sync
    /// and the crash (a crash keeps a prefix of the unsynced writes): nothing synced is lost,
    /// nothing is invented or reordered; the vote is never older than the last synced one.
    #[test]
    fn crashes_never_lose_synced_entries(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = SimDir::new();
            let (mut wal, _) = reopen(&dir, 600).await.unwrap();
            // The model: the log as written, and every state it passed through since the last
            // sync (the first one is the synced state).
            let mut log: Vec<(u64, u64)> = Vec::new();
            let mut purged: u64 = 0;
            let mut since_sync: Vec<Vec<(u64, u64)>> = vec![Vec::new()];
            let mut synced_vote = 0u64;
            let mut vote = 0u64;
            let mut term = 1;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        for _ in 0..n {
                            let index = log.last().map_or(purged, |(i, _)| i + 1);
                            wal.write(&[entry(term, index)]).await.unwrap();
                            log.push((index, term));
                            since_sync.push(log.clone());
                        }
                    }
                    Op::Truncate(k) => {
                        let keep = log.len().saturating_sub(k as usize);
                        if keep < log.len() {
                            wal.write(&[Record::Truncate(log[keep].0)]).await.unwrap();
                            log.truncate(keep);
                            since_sync.push(log.clone());
                            term += 1;
                        }
                    }
                    Op::Vote(t) => {
                        vote = vote.max(t as u64 + term);
                        wal.write(&[Record::Vote(Vote::new(vote, 1))]).await.unwrap();
                        wal.sync().await.unwrap();
                        synced_vote = vote;
                        since_sync = vec![log.clone()];
                    }
                    Op::Sync => {
                        wal.sync().await.unwrap();
                        synced_vote = vote;
                        since_sync = vec![log.clone()];
                    }
                    Op::Purge => {
                        if log.len() > 2 {
                            let (i, t) = log[log.len() / 2];
                            wal.purge(LogId::new(CommittedLeaderId::new(t, 1), i)).await.unwrap();
                            log.retain(|(j, _)| *j > i);
                            purged = i + 1;
                            synced_vote = vote;
                            since_sync = vec![log.clone()];
                        }
                    }
                    Op::Crash => {
                        dir.crash();
                        let (w, rec) = reopen(&dir, 600).await.unwrap();
                        wal = w;
                        let got = indexes(&rec);
                        prop_assert!(
                            since_sync.contains(&got),
                            "recovered {:?}, possible {:?}", got, since_sync
                        );
                        prop_assert!(rec.state.vote.map_or(0, |v| v.leader_id.term) >= synced_vote);
                        log = got;
                        vote = rec.state.vote.map_or(0, |v| v.leader_id.term);
                        synced_vote = vote;
                        since_sync = vec![log.clone()];
                        term += 1;
                    }
                }
            }
            Ok(())
        })?;
    }
}
