//! How many sessions one destination address gets at once ([`NetConfig::per_destination`]), so
//! a scan of thousands of domains hosted by one provider never hammers that provider.
//!
//! [`NetConfig::per_destination`]: crate::NetConfig::per_destination

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One semaphore per destination address with sessions open or waiting; an address without
/// either is forgotten, so memory follows what is in flight, not how many addresses a run saw.
#[derive(Debug)]
pub(crate) struct Destinations {
    /// Sessions at once per address; 0: no cap.
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, Arc<Semaphore>>>>,
}

/// A session's place at its destination; dropping it lets the next one in.
#[derive(Debug)]
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, Arc<Semaphore>>>>,
}

impl Destinations {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::default(),
        }
    }

    /// Waits until `ip` has fewer than the limit of sessions open, and takes a place.
    pub(crate) async fn slot(&self, ip: IpAddr) -> Option<Slot> {
        if self.limit == 0 {
            return None;
        }
        let semaphore = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                open.entry(ip)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.limit))),
            )
        };
        // The semaphore is never closed, so acquiring only waits.
        let permit = semaphore.acquire_owned().await.ok()?;
        Some(Slot {
            permit: Some(permit),
            ip,
            open: Arc::clone(&self.open),
        })
    }

    /// Addresses with sessions open or waiting.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        // Only the map holds it: no session open, none waiting.
        if open
            .get(&self.ip)
            .is_some_and(|semaphore| Arc::strong_count(semaphore) == 1)
        {
            open.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_destination_gets_at_most_the_limit_at_once_and_is_forgotten_when_idle() {
        let destinations = Arc::new(Destinations::new(2));
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        let a = destinations.slot(ip).await;
        let b = destinations.slot(ip).await;
        // Another address is not held up by the full one.
        let c = destinations.slot(other).await;
        assert!(a.is_some() && b.is_some() && c.is_some());
        let waiting = {
            let destinations = Arc::clone(&destinations);
            tokio::spawn(async move { destinations.slot(ip).await.is_some() })
        };
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "a third session got in");
        drop(a);
        assert!(waiting.await.unwrap());
        drop((b, c));
        assert_eq!(destinations.tracked(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_limit_takes_no_slot() {
        assert!(
            Destinations::new(0)
                .slot([127, 0, 0, 1].into())
                .await
                .is_none()
        );
    }
}
