//! The embedded default: objects, state and locks of one partway process in
//! one local directory, with nothing else to run. It follows S3's multipart
//! rules rather than being lenient, so the core's unit tests run on it.

mod lock;
mod objects;
mod outbox;
mod state;

pub use lock::LocalLocker;
pub use objects::LocalObjects;
pub use state::LocalState;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract;
    use crate::upload::plan::PartLimits;

    #[tokio::test]
    async fn the_embedded_state_store_keeps_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let locker = LocalLocker::new();
        contract::state_store(&LocalState::new(dir.path(), &locker), &locker).await;
    }

    #[tokio::test]
    async fn the_embedded_outbox_keeps_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let locker = LocalLocker::new();
        contract::outbox(&LocalState::new(dir.path(), &locker), &locker, false).await;
    }

    #[tokio::test]
    async fn the_embedded_object_store_keeps_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = PartLimits {
            min_part_size: 1024,
            ..PartLimits::S3
        };
        let objects = LocalObjects::new(dir.path(), limits);
        let rules = contract::Rules {
            min_part: 1024,
            aborted_is_not_found: true,
        };
        contract::object_store(&objects, "contract/", rules).await;
    }
}
