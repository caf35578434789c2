//! Fencing by leadership epoch: the rule every store applies to the epoch a batch carries.
//!
//! When several replicas share a store, one of them leads each environment (the holder of a
//! lease) and only it writes that environment's history. A lease alone is not enough: a
//! leader that is paused (a long GC, `SIGSTOP`, a VM migration) can wake up after another
//! replica took the lease over, and write. So every leadership term has an *epoch*, a number
//! that grows with each new term, and the leader stamps it on every batch it writes
//! ([`ScanBatch::epoch`]). A store keeps, per environment, the highest epoch it has seen and
//! refuses a batch that carries a lower one: once the new leader has written (or claimed the
//! environment with an empty batch, [`ScanBatch::claim`]), nothing from an older term lands.
//!
//! A batch without an epoch (`None`: no leader election, a single server or the CLI) is
//! neither checked nor recorded.
//!
//! ```
//! use driftguard_core::fence::check;
//! // nothing kept yet: epoch 3 is admitted and recorded
//! assert_eq!(check("prod", None, Some(3)).unwrap(), Some(3));
//! // the same term writes again: admitted, nothing new to record
//! assert_eq!(check("prod", Some(3), Some(3)).unwrap(), None);
//! // an older term: refused
//! assert!(check("prod", Some(4), Some(3)).is_err());
//! // no election: not checked
//! assert_eq!(check("prod", Some(4), None).unwrap(), None);
//! ```
//!
//! [`ScanBatch::epoch`]: crate::ports::ScanBatch::epoch
//! [`ScanBatch::claim`]: crate::ports::ScanBatch::claim

use crate::ports::StoreError;

/// Whether a batch of `environment` carrying `incoming` may be written, given the highest
/// epoch the store keeps for it (`stored`). `Ok(Some(e))`: write it and keep `e` as the new
/// highest epoch (in the same transaction as the batch where the store has them);
/// `Ok(None)`: write it, nothing to record; `Err`: refuse the whole batch
/// ([`StoreError::Conflict`], see [`refused`]).
pub fn check(
    environment: &str,
    stored: Option<u64>,
    incoming: Option<u64>,
) -> Result<Option<u64>, StoreError> {
    match (stored, incoming) {
        (_, None) => Ok(None),
        (Some(current), Some(epoch)) if epoch < current => {
            Err(refused(environment, epoch, Some(current)))
        }
        (Some(current), Some(epoch)) if epoch == current => Ok(None),
        (_, Some(epoch)) => Ok(Some(epoch)),
    }
}

/// The error of a refused batch: `epoch` is older than `current` (the highest epoch kept, when
/// the store can tell it).
pub fn refused(environment: &str, epoch: u64, current: Option<u64>) -> StoreError {
    let since = match current {
        Some(c) => format!("epoch {c} has written since"),
        None => "a newer epoch has written since".to_owned(),
    };
    StoreError::Conflict {
        what: format!(
            "environment {environment}: a write of leadership epoch {epoch} was refused \
             ({since}): another replica leads this environment"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_older_epochs_are_refused() {
        assert_eq!(check("e", None, None).expect("unchecked"), None);
        assert_eq!(check("e", None, Some(1)).expect("first"), Some(1));
        assert_eq!(check("e", Some(1), Some(2)).expect("newer"), Some(2));
        assert_eq!(check("e", Some(2), Some(2)).expect("same"), None);
        assert_eq!(check("e", Some(9), None).expect("no election"), None);
        let err = check("prod", Some(4), Some(3)).expect_err("older");
        assert!(matches!(err, StoreError::Conflict { .. }));
        assert_eq!(
            err.to_string(),
            "conflict: environment prod: a write of leadership epoch 3 was refused \
             (epoch 4 has written since): another replica leads this environment"
        );
    }
}
