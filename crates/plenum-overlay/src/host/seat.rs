//! The signaling server's side of a host room: who holds the seat, at which epoch.

use plenum_proto::PeerId;

/// What came of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The claimant holds the seat at this new epoch.
    Granted(u64),
    /// Someone holds the seat, or the claim names an epoch that is over: the seat as it is.
    Refused {
        /// The holder, if any.
        holder: Option<PeerId>,
        /// The current epoch.
        epoch: u64,
    },
}

/// A host room's seat. Every change goes through one of its methods, one at a time, so a
/// seat has at most one holder and each vacancy is filled once: a claim wins only while
/// the seat is vacant and names the epoch of the holder that went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSeat {
    holder: Option<PeerId>,
    epoch: u64,
}

impl HostSeat {
    /// A room's seat before anyone joined.
    pub fn new() -> Self {
        Self::default()
    }

    /// The holder, if any, and the epoch (0 before the first holder; each holder's is one
    /// more than the last's).
    pub fn holder(&self) -> (Option<&PeerId>, u64) {
        (self.holder.as_ref(), self.epoch)
    }

    /// A peer entered the room: the first one of a new room takes the seat (its epoch is
    /// returned).
    pub fn joined(&mut self, peer: &PeerId) -> Option<u64> {
        if self.holder.is_none() && self.epoch == 0 {
            self.holder = Some(peer.clone());
            self.epoch = 1;
            return Some(1);
        }
        None
    }

    /// A peer claims the seat vacated at `epoch`.
    pub fn claim(&mut self, peer: &PeerId, epoch: u64) -> Claim {
        if self.holder.is_some() || epoch != self.epoch {
            return Claim::Refused {
                holder: self.holder.clone(),
                epoch: self.epoch,
            };
        }
        self.holder = Some(peer.clone());
        self.epoch += 1;
        Claim::Granted(self.epoch)
    }

    /// A peer left or went away: if it held the seat, the seat is vacant (true).
    pub fn vacate(&mut self, peer: &PeerId) -> bool {
        if self.holder.as_ref() == Some(peer) {
            self.holder = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(i: u8) -> PeerId {
        PeerId::new(format!("p{i}")).unwrap()
    }

    #[test]
    fn the_first_peer_holds_and_one_claim_fills_a_vacancy() {
        let mut seat = HostSeat::new();
        assert_eq!(seat.joined(&peer(1)), Some(1));
        assert_eq!(seat.joined(&peer(2)), None);
        assert_eq!(
            seat.claim(&peer(2), 1),
            Claim::Refused {
                holder: Some(peer(1)),
                epoch: 1
            }
        );
        assert!(!seat.vacate(&peer(2)));
        assert!(seat.vacate(&peer(1)));
        assert_eq!(seat.claim(&peer(3), 1), Claim::Granted(2));
        assert_eq!(
            seat.claim(&peer(2), 1),
            Claim::Refused {
                holder: Some(peer(3)),
                epoch: 2
            }
        );
        assert!(seat.vacate(&peer(3)));
        // A claim for a vacancy that is over does not fill this one.
        assert_eq!(
            seat.claim(&peer(2), 1),
            Claim::Refused {
                holder: None,
                epoch: 2
            }
        );
        assert_eq!(seat.claim(&peer(2), 2), Claim::Granted(3));
        // A room whose seat was held once is not taken by joining.
        seat.vacate(&peer(2));
        assert_eq!(seat.joined(&peer(4)), None);
    }

    proptest! {
        /// Whatever the order of claims and departures, each epoch has exactly one holder
        /// and the seat never has two.
        #[test]
        fn each_epoch_is_granted_once(ops in proptest::collection::vec((0u8..3, 0u8..6, 0u64..5), 1..200)) {
            let mut seat = HostSeat::new();
            let mut granted = std::collections::BTreeMap::new();
            seat.joined(&peer(0));
            granted.insert(1u64, peer(0));
            for (op, who, epoch) in ops {
                match op {
                    0 => {
                        if let Claim::Granted(e) = seat.claim(&peer(who), epoch) {
                            prop_assert!(granted.insert(e, peer(who)).is_none(), "epoch {} granted twice", e);
                            prop_assert_eq!(e, epoch + 1);
                        }
                    }
                    _ => { seat.vacate(&peer(who)); }
                }
                let (holder, epoch) = seat.holder();
                if let Some(h) = holder {
                    prop_assert_eq!(granted.get(&epoch), Some(h));
                }
            }
        }
    }
}
