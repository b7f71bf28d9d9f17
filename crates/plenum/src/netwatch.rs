//! Noticing a network change: our interface addresses, compared between polls.

use std::collections::BTreeSet;
use std::net::IpAddr;

/// The non-loopback addresses of this machine's interfaces, as last polled.
#[derive(Debug)]
pub(crate) struct Addresses(BTreeSet<IpAddr>);

fn poll() -> BTreeSet<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| !ip.is_loopback())
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list interface addresses");
            BTreeSet::new()
        }
    }
}

impl Addresses {
    pub(crate) fn now() -> Self {
        Self(poll())
    }

    /// Polls again; true if an address went away. (A new address alone changes no path
    /// in use: the next restart or link gathers it anyway.)
    pub(crate) fn changed(&mut self) -> bool {
        let fresh = poll();
        let lost = self.0.difference(&fresh).next().is_some();
        self.0 = fresh;
        lost
    }
}
