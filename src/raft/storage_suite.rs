//! openraft's own storage test suite over detcd's log store and state machine, on the
//! simulated disk (as openraft's examples run it over theirs): appends, truncation, purging,
//! votes, applied state and snapshots behave as openraft requires.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};

use crate::io::disk::{Disk, SimDisk};
use crate::watch::Hub;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::TypeConfig;

/// A fresh log store and state machine sharing one empty simulated disk.
struct OnSimDisk;

impl StoreBuilder<TypeConfig, LogStore, StateMachine> for OnSimDisk {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError<u64>> {
        let disk = Disk::Sim(SimDisk::new());
        let log = LogStore::open(disk.clone(), 4096)
            .await
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let machine = StateMachine::open(disk, Arc::new(Hub::new()), Default::default())
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        Ok(((), log, machine))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(OnSimDisk).expect("openraft's storage suite");
}
