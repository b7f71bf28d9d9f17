//! The broadcast tree (after Genet's webrtc-tree-overlay): one root, every other node with
//! one parent and at most `max_degree` children, join requests that enter at the root and
//! travel down to a node with room, and healing that the original lacks: a node whose
//! parent is gone rejoins with its whole subtree through its grandparent (or the root).
//!
//! A [`TreeNode`] decides; the engine carries its messages. It is told link events, the
//! application's broadcasts and time as every topology is ([`Input`]), and tree messages
//! with [`TreeNode::handle_msg`]. [`TreeMsg`]s go either over a
//! link (`via_link`) or through the signaling server, addressed to a peer or to the room's
//! root ([`Addressee`]). The server's part is to relay, and to know which peer is root.
//!
//! - **Join.** A node that has room (children and candidates below `max_degree`) takes
//!   the requester as a candidate, tells it (`Accept`, through the server) and opens a link
//!   to it. A node without room hands the request to its connected child with the smallest
//!   subtree, so the tree fills level by level. A candidate whose link does not open within
//!   `request_timeout` is dropped and its slot freed; a requester that got two offers
//!   declines the second.
//! - **Depth and sizes.** A parent tells each child its depth and its grandparent
//!   (`Welcome`); a child tells its parent the size of its subtree (`Subtree`).
//! - **Healing.** A node that loses its parent keeps its children and asks its
//!   grandparent (or, without one, the root) to take it with its subtree. A request that
//!   is not answered within `retry_after` (5 s) goes to the root again.
//! - **Broadcast.** `Data` goes to the parent and the children except where it came from;
//!   `(origin, seq)` filters copies. Each node keeps the last `history` of broadcasts and
//!   sends them over a link that opens to a new parent or child, so a broadcast in flight
//!   while a subtree rejoins reaches it afterwards (copies stop at the filter).
//! - **Hands and the stage.** A viewer's raised hand goes up, parent by parent, to the
//!   root, which alone decides whose voice the stage carries ([`TreeNode::set_stage`]).
//!   Its word goes down: a node takes the stage's speaker only from its parent, passes it
//!   to its children, and tells each child that links to it, so the whole tree agrees
//!   and no child can put anyone on stage.
//! - **Root and standby.** The server makes the first peer that claims the root with the
//!   room's secret the root; a later claimant with the same secret is a standby
//!   ([`TreeNode::standby`]), outside the tree, until the server hands it the root
//!   ([`TreeNode::promote`]). The old root's children then rejoin through it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use plenum_proto::{DisplayName, PeerId};

mod codec;
mod config;
pub use codec::TreeFrameError;
pub use config::{TreeConfig, TreeConfigBuilder};

use crate::{Appearance, DropReason, FullMesh, Input, Output, Topology};

/// What tree nodes tell each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeMsg {
    /// `requester` asks to join, bringing a subtree of `subtree` nodes (itself included).
    Join {
        /// The node that wants a parent.
        requester: PeerId,
        /// Its subtree's size.
        subtree: u32,
        /// The parent it lost, if it lost one: not handed the request (it may be gone
        /// before its own parent notices).
        lost: Option<PeerId>,
    },
    /// The sender takes the receiver as a child at `depth`; a link follows.
    Accept {
        /// The receiver's depth under the sender.
        depth: u32,
    },
    /// The receiver's offer to be a parent is not needed (the sender has one).
    Decline,
    /// Parent to child: the child's depth, grandparent and the tree's root.
    Welcome {
        /// The child's depth.
        depth: u32,
        /// The child's grandparent (the parent's parent), if any.
        grandparent: Option<PeerId>,
        /// The root, as the parent knows it (whose media the tree carries down).
        root: Option<PeerId>,
        /// The root's name, as the parent knows it (most of the tree is not linked to
        /// the root, and the server hands out no roster).
        root_name: Option<DisplayName>,
    },
    /// Child to parent: the child's subtree size.
    Subtree {
        /// Nodes in it, the child included.
        size: u32,
    },
    /// The application's bytes for this neighbour alone (not passed on).
    Direct {
        /// The bytes.
        data: Vec<u8>,
    },
    /// Child to parent, passed up to the root: `peer` raised (or lowered) its hand.
    Hand {
        /// Whose hand.
        peer: PeerId,
        /// Its name (the root has no link to most of the tree, so no other way to know it).
        name: DisplayName,
        /// Raised or lowered.
        raised: bool,
    },
    /// Parent to child, from the root down: whose voice the stage carries (`None`:
    /// nobody's).
    Stage {
        /// The peer on stage.
        speaker: Option<PeerId>,
        /// Its name, as its hand said (most of the tree is not linked to it); `None` when
        /// the root had none (it put on stage a peer that raised no hand).
        name: Option<DisplayName>,
    },
    /// A broadcast along tree edges.
    Data {
        /// The node that broadcast it.
        origin: PeerId,
        /// Its number at the origin.
        seq: u64,
        /// Links crossed so far.
        hops: u8,
        /// The application's bytes.
        data: Vec<u8>,
    },
}

/// Whom [`TreeNode::send`] sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeTarget {
    /// Our parent.
    Parent,
    /// Each of our connected children.
    Children,
    /// One tree neighbour (our parent or a child).
    Peer(PeerId),
}

/// Why [`TreeNode::send`] (or a hand, or the stage) sent nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeSendError {
    /// Only the root decides who is on stage.
    #[error("only the tree's root puts a peer on stage")]
    NotRoot,
    /// We have no parent (we are the root, or not in the tree yet).
    #[error("no parent: this node is the root or not in the tree yet")]
    NoParent,
    /// The peer is not our parent or a connected child.
    #[error("{0} is not a tree neighbour")]
    NotNeighbour(PeerId),
}

/// Whom a message through the signaling server is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressee {
    /// The room's root, whoever it is.
    Root,
    /// One peer.
    Peer(PeerId),
}

/// What a [`TreeNode`] asks of the engine, or tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeOutput {
    /// Open a link to `peer`; with `initiate`, send the offer.
    Connect {
        /// The peer.
        peer: PeerId,
        /// Whether this side offers.
        initiate: bool,
    },
    /// Close the link to `peer`.
    Disconnect {
        /// The peer.
        peer: PeerId,
    },
    /// Send a liveness probe over the link to `peer`.
    Heartbeat {
        /// The peer.
        peer: PeerId,
    },
    /// Send `msg` over the open link to `peer`.
    Send {
        /// The peer.
        peer: PeerId,
        /// The message.
        msg: TreeMsg,
    },
    /// Send `msg` through the signaling server.
    Signal {
        /// Whom to.
        to: Addressee,
        /// The message.
        msg: TreeMsg,
    },
    /// A link to our parent opened.
    ParentConnect(PeerId),
    /// The link to our parent closed.
    ParentClose(PeerId),
    /// A child's link opened.
    ChildConnect(PeerId),
    /// A child's link closed.
    ChildClose(PeerId),
    /// Our place changed.
    State {
        /// Our parent.
        parent: Option<PeerId>,
        /// Our connected children.
        children: Vec<PeerId>,
        /// Our depth (root 0), once known.
        depth: Option<u32>,
        /// Whether we are the root.
        is_root: bool,
        /// The root, once known (ourselves, or as our parent's welcome named it).
        root: Option<PeerId>,
        /// The root's name, once known.
        root_name: Option<DisplayName>,
        /// Nodes in our subtree, ourselves included, as our children last said (at the
        /// root: the whole tree).
        subtree: u32,
    },
    /// At the root: a viewer raised (or lowered) its hand.
    Hand {
        /// Whose hand.
        peer: PeerId,
        /// Its name, as it said.
        name: DisplayName,
        /// Raised or lowered.
        raised: bool,
    },
    /// The root put `speaker` on stage (`None`: took everyone off): told at the root when
    /// it decides, and at every other node when its parent passes the word on.
    Stage {
        /// The peer on stage.
        speaker: Option<PeerId>,
        /// Its name, as its hand said, when it raised one.
        name: Option<DisplayName>,
    },
    /// A broadcast reached us, once.
    Message {
        /// The node that broadcast it.
        origin: PeerId,
        /// The neighbour it came from.
        from: PeerId,
        /// Whether that neighbour is our parent.
        from_parent: bool,
        /// Links it crossed.
        hops: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Nothing more until this instant.
    Timeout(Instant),
}

#[derive(Debug, Clone)]
struct Child {
    /// `None` once linked; while a candidate, the instant it is given up.
    deadline: Option<Instant>,
    subtree: u32,
}

/// One node of a broadcast tree. See the module docs.
#[derive(Debug)]
pub struct TreeNode {
    me: PeerId,
    config: TreeConfig,
    now: Instant,
    root: bool,
    links: FullMesh,
    parent: Option<PeerId>,
    /// A node that accepted us, until its link opens (or the deadline passes).
    pending_parent: Option<(PeerId, Instant)>,
    /// When our last join request is given up and sent to the root instead.
    rejoin_deadline: Option<Instant>,
    grandparent: Option<PeerId>,
    /// The parent we lost, until we have a new one (our requests name it).
    lost: Option<PeerId>,
    /// The root as our parent's welcome last named it, and its name.
    known_root: Option<PeerId>,
    known_root_name: Option<DisplayName>,
    /// The subtree size our last state said.
    told_subtree: u32,
    /// Our own name, which our welcomes give as the root's while we are the root.
    name: Option<DisplayName>,
    depth: Option<u32>,
    children: BTreeMap<PeerId, Child>,
    /// Join requests waiting for a child to link (all slots held by candidates).
    waiting: VecDeque<(PeerId, u32, Option<PeerId>)>,
    seen: HashSet<(PeerId, u64)>,
    history: VecDeque<(Instant, TreeMsg)>,
    next_seq: u64,
    /// Whose voice the stage carries, as the root said.
    stage: Option<PeerId>,
    /// The stage's speaker's name, as its hand said.
    stage_name: Option<DisplayName>,
    /// At the root: the names hands came with, to tell the tree who is on stage.
    hand_names: HashMap<PeerId, DisplayName>,
    outputs: VecDeque<TreeOutput>,
}

/// The depth of a complete tree of `nodes` nodes with `degree` children each: the least
/// depth any tree of them can have.
pub fn complete_depth(nodes: usize, degree: usize) -> u32 {
    let (mut depth, mut level, mut total) = (0u32, 1usize, 1usize);
    while total < nodes {
        level = level.saturating_mul(degree.max(1));
        total = total.saturating_add(level.max(1));
        depth += 1;
    }
    depth
}

/// Join requests held while every slot is a candidate (a root that many join at once
/// holds them until its first children link).
const WAITING_MAX: usize = 4096;
/// Names of raised hands the root keeps at most (a hand past it is still reported; its
/// peer, put on stage, goes without a name).
const MAX_HAND_NAMES: usize = 4096;

impl TreeNode {
    /// The root of a tree (the server has granted it the root's secret).
    pub fn root(me: PeerId, config: TreeConfig, now: Instant, seed: u64) -> Self {
        let mut node = Self::new(me, config, now, seed, true);
        node.depth = Some(0);
        node.state();
        node
    }

    /// A node that joins the tree: its request goes to the root.
    pub fn join(me: PeerId, config: TreeConfig, now: Instant, seed: u64) -> Self {
        let mut node = Self::new(me, config, now, seed, false);
        node.request(Addressee::Root);
        node
    }

    /// A root claimant while another peer is root: outside the tree, sending nothing,
    /// until [`promote`](Self::promote)d.
    pub fn standby(me: PeerId, config: TreeConfig, now: Instant, seed: u64) -> Self {
        Self::new(me, config, now, seed, false)
    }

    /// The server made us the root (the first claimant, or a standby whose root went).
    /// A node that was in the tree gives up its parent; its subtree stays under it.
    pub fn promote(&mut self) {
        if self.root {
            return;
        }
        if let Some(parent) = self.parent.take() {
            self.unlink(&parent);
            self.outputs.push_back(TreeOutput::ParentClose(parent));
        }
        if let Some((pending, _)) = self.pending_parent.take() {
            self.unlink(&pending);
        }
        self.rejoin_deadline = None;
        self.grandparent = None;
        self.root = true;
        self.depth = Some(0);
        self.welcome_children();
        self.state();
        self.retry_waiting();
    }

    /// Whether we are the root.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Our name: the tree is told it as the root's while we are the root.
    pub fn named(mut self, name: DisplayName) -> Self {
        self.name = Some(name);
        self
    }

    fn new(me: PeerId, config: TreeConfig, now: Instant, seed: u64, root: bool) -> Self {
        let links = FullMesh::with_seed(config.links.clone(), now, seed);
        Self {
            me,
            config,
            now,
            root,
            links,
            parent: None,
            pending_parent: None,
            rejoin_deadline: None,
            grandparent: None,
            lost: None,
            known_root: None,
            known_root_name: None,
            told_subtree: 1,
            name: None,
            depth: None,
            children: BTreeMap::new(),
            waiting: VecDeque::new(),
            seen: HashSet::new(),
            history: VecDeque::new(),
            next_seq: 1,
            stage: None,
            stage_name: None,
            hand_names: HashMap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Our parent.
    pub fn parent(&self) -> Option<&PeerId> {
        self.parent.as_ref()
    }

    /// Our connected children.
    pub fn children(&self) -> Vec<PeerId> {
        self.children
            .iter()
            .filter(|(_, c)| c.deadline.is_none())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Whether `peer` is our child, or one we accepted whose link is not up yet.
    pub fn has_child(&self, peer: &PeerId) -> bool {
        self.children.contains_key(peer)
    }

    /// Our depth, once known (the root's is 0).
    pub fn depth(&self) -> Option<u32> {
        self.depth
    }

    /// Nodes in our subtree, ourselves included, as our children last said.
    pub fn subtree(&self) -> u32 {
        // Children say their own sizes: a lie must not overflow ours.
        self.children
            .values()
            .filter(|c| c.deadline.is_none())
            .fold(1u32, |n, c| n.saturating_add(c.subtree))
    }

    /// Whether we are in the tree: the root, or linked to a parent.
    pub fn attached(&self) -> bool {
        self.root || self.parent.is_some()
    }

    fn state(&mut self) {
        let subtree = self.subtree();
        self.told_subtree = subtree;
        self.outputs.push_back(TreeOutput::State {
            parent: self.parent.clone(),
            children: self.children(),
            depth: self.depth,
            is_root: self.root,
            root: self.root_id(),
            root_name: self.root_name(),
            subtree,
        });
    }

    /// The root's name: ours, or as our parent's welcome said it.
    fn root_name(&self) -> Option<DisplayName> {
        if self.root {
            self.name.clone()
        } else {
            self.known_root_name.clone()
        }
    }

    /// The tree's root: ourselves, or as our parent's welcome named it.
    pub fn root_id(&self) -> Option<PeerId> {
        if self.root {
            Some(self.me.clone())
        } else {
            self.known_root.clone()
        }
    }

    fn request(&mut self, to: Addressee) {
        self.rejoin_deadline = Some(self.now + self.config.retry_after);
        let msg = TreeMsg::Join {
            requester: self.me.clone(),
            subtree: self.subtree(),
            lost: self.lost.clone(),
        };
        self.outputs.push_back(TreeOutput::Signal { to, msg });
    }

    fn link(&mut self, peer: &PeerId, initiate: bool) {
        let origin = if initiate {
            Appearance::Roster
        } else {
            Appearance::Joined
        };
        self.links.handle_input(Input::PeerAppeared {
            peer: peer.clone(),
            origin,
            now: self.now,
        });
    }

    fn unlink(&mut self, peer: &PeerId) {
        self.links.handle_input(Input::PeerGone {
            peer: peer.clone(),
            now: self.now,
        });
    }

    fn on_join(&mut self, requester: PeerId, subtree: u32, lost: Option<PeerId>) {
        if requester == self.me
            || self.parent.as_ref() == Some(&requester)
            || self.children.contains_key(&requester)
        {
            return;
        }
        if !self.attached() {
            // Not in the tree ourselves: the requester must look elsewhere.
            let msg = TreeMsg::Join {
                requester,
                subtree,
                lost,
            };
            self.outputs.push_back(TreeOutput::Signal {
                to: Addressee::Root,
                msg,
            });
            return;
        }
        if self.children.len() < self.config.degree(self.is_root()) {
            let deadline = self.now + self.config.request_timeout;
            self.children.insert(
                requester.clone(),
                Child {
                    deadline: Some(deadline),
                    subtree,
                },
            );
            let depth = self.depth.unwrap_or(0) + 1;
            self.outputs.push_back(TreeOutput::Signal {
                to: Addressee::Peer(requester.clone()),
                msg: TreeMsg::Accept { depth },
            });
            self.link(&requester, true);
            return;
        }
        // Full: the child with the smallest subtree takes it on, counting what was handed
        // to it already and has not shown in its reports yet. If that child is still a
        // candidate, the request waits for its link: joins that arrive together spread
        // over all children instead of piling onto the first one linked.
        let smallest = self
            .children
            .iter()
            .filter(|(p, _)| lost.as_ref() != Some(*p))
            .min_by_key(|(p, c)| (c.subtree, (*p).clone()))
            .map(|(p, c)| (p.clone(), c.deadline.is_none()));
        match smallest {
            Some((child, true)) => {
                if let Some(c) = self.children.get_mut(&child) {
                    c.subtree = c.subtree.saturating_add(subtree);
                }
                self.outputs.push_back(TreeOutput::Send {
                    peer: child,
                    msg: TreeMsg::Join {
                        requester,
                        subtree,
                        lost,
                    },
                });
            }
            _ => {
                if self.waiting.iter().any(|(r, _, _)| *r == requester) {
                    return;
                }
                if self.waiting.len() >= WAITING_MAX {
                    self.waiting.pop_front();
                }
                self.waiting.push_back((requester, subtree, lost));
            }
        }
    }

    fn on_accept(&mut self, from: PeerId, depth: u32) {
        if self.root || self.parent.is_some() || self.pending_parent.is_some() {
            self.outputs.push_back(TreeOutput::Signal {
                to: Addressee::Peer(from),
                msg: TreeMsg::Decline,
            });
            return;
        }
        self.pending_parent = Some((from.clone(), self.now + self.config.request_timeout));
        self.rejoin_deadline = None;
        self.depth = Some(depth);
        self.link(&from, false);
    }

    fn drop_child(&mut self, peer: &PeerId) {
        if let Some(child) = self.children.remove(peer) {
            self.unlink(peer);
            if child.deadline.is_none() {
                self.outputs.push_back(TreeOutput::ChildClose(peer.clone()));
                self.state();
            }
            // Even a candidate's: our parent counted it as handed to us until we say.
            self.report_subtree();
            self.retry_waiting();
        }
    }

    /// A slot freed or a child linked: the waiting requests are handled again.
    fn retry_waiting(&mut self) {
        for (requester, subtree, lost) in std::mem::take(&mut self.waiting) {
            self.on_join(requester, subtree, lost);
        }
    }

    fn report_subtree(&mut self) {
        if let Some(parent) = self.parent.clone() {
            let size = self.subtree();
            self.outputs.push_back(TreeOutput::Send {
                peer: parent,
                msg: TreeMsg::Subtree { size },
            });
        }
    }

    fn welcome_children(&mut self) {
        let depth = self.depth.map(|d| d + 1);
        let grandparent = self.parent.clone();
        let (root, root_name) = (self.root_id(), self.root_name());
        for child in self.children() {
            if let Some(depth) = depth {
                self.outputs.push_back(TreeOutput::Send {
                    peer: child,
                    msg: TreeMsg::Welcome {
                        depth,
                        grandparent: grandparent.clone(),
                        root: root.clone(),
                        root_name: root_name.clone(),
                    },
                });
            }
        }
    }

    fn lose_parent(&mut self) {
        let Some(parent) = self.parent.take() else {
            return;
        };
        self.unlink(&parent);
        self.outputs
            .push_back(TreeOutput::ParentClose(parent.clone()));
        self.lost = Some(parent.clone());
        self.depth = None;
        self.state();
        // Rejoin with our subtree: through the grandparent when we know it.
        let to = match self.grandparent.take() {
            Some(g) if g != parent => Addressee::Peer(g),
            _ => Addressee::Root,
        };
        self.request(to);
    }

    fn on_link_up(&mut self, peer: PeerId) {
        if self
            .pending_parent
            .as_ref()
            .is_some_and(|(p, _)| *p == peer)
        {
            self.pending_parent = None;
            self.parent = Some(peer.clone());
            self.lost = None;
            self.outputs
                .push_back(TreeOutput::ParentConnect(peer.clone()));
            self.report_subtree();
            self.replay(&peer);
            self.welcome_children();
            self.state();
            return;
        }
        if let Some(child) = self.children.get_mut(&peer)
            && child.deadline.is_some()
        {
            child.deadline = None;
            self.outputs
                .push_back(TreeOutput::ChildConnect(peer.clone()));
            if let Some(depth) = self.depth {
                self.outputs.push_back(TreeOutput::Send {
                    peer: peer.clone(),
                    msg: TreeMsg::Welcome {
                        depth: depth + 1,
                        grandparent: self.parent.clone(),
                        root: self.root_id(),
                        root_name: self.root_name(),
                    },
                });
            }
            self.tell_stage(peer.clone());
            self.replay(&peer);
            self.report_subtree();
            self.state();
            self.retry_waiting();
        }
    }

    fn on_link_down(&mut self, peer: &PeerId) {
        if self.parent.as_ref() == Some(peer) {
            self.lose_parent();
        } else if self.children.contains_key(peer) {
            self.drop_child(peer);
        } else if self.pending_parent.as_ref().is_some_and(|(p, _)| p == peer) {
            // It did not link (it refused us, or died on the way): ask again after a while,
            // not at once, or a refused node would bounce through the tree without rest.
            self.pending_parent = None;
            self.unlink(peer);
            self.rejoin_deadline = Some(self.now + self.config.retry_after);
        }
    }

    /// Sends the kept broadcasts over a link that just opened.
    fn replay(&mut self, peer: &PeerId) {
        let kept: Vec<TreeMsg> = self.history.iter().map(|(_, m)| m.clone()).collect();
        for msg in kept {
            self.outputs.push_back(TreeOutput::Send {
                peer: peer.clone(),
                msg,
            });
        }
    }

    fn keep(&mut self, msg: TreeMsg) {
        self.history
            .push_back((self.now + self.config.history, msg));
    }

    fn neighbours_but(&self, except: Option<&PeerId>) -> Vec<PeerId> {
        self.parent
            .iter()
            .cloned()
            .chain(self.children())
            .filter(|p| Some(p) != except)
            .collect()
    }

    fn on_data(&mut self, from: PeerId, origin: PeerId, seq: u64, hops: u8, data: Vec<u8>) {
        if origin == self.me || !self.seen.insert((origin.clone(), seq)) {
            return;
        }
        let from_parent = self.parent.as_ref() == Some(&from);
        self.outputs.push_back(TreeOutput::Message {
            origin: origin.clone(),
            from: from.clone(),
            from_parent,
            hops: hops.saturating_add(1),
            data: data.clone(),
        });
        let msg = TreeMsg::Data {
            origin,
            seq,
            hops: hops.saturating_add(1),
            data,
        };
        self.keep(msg.clone());
        for peer in self.neighbours_but(Some(&from)) {
            self.outputs.push_back(TreeOutput::Send {
                peer,
                msg: msg.clone(),
            });
        }
    }

    fn broadcast(&mut self, data: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seen.insert((self.me.clone(), seq));
        let msg = TreeMsg::Data {
            origin: self.me.clone(),
            seq,
            hops: 0,
            data,
        };
        self.keep(msg.clone());
        for peer in self.neighbours_but(None) {
            self.outputs.push_back(TreeOutput::Send {
                peer,
                msg: msg.clone(),
            });
        }
    }

    /// Raises or lowers our hand: the word goes up to the root (which is told with
    /// [`TreeOutput::Hand`]). A hand raised while we have no parent is not sent.
    pub fn raise_hand(&mut self, raised: bool, name: DisplayName) -> Result<(), TreeSendError> {
        // The root has none.
        let parent = self.parent.clone().ok_or(TreeSendError::NoParent)?;
        self.outputs.push_back(TreeOutput::Send {
            peer: parent,
            msg: TreeMsg::Hand {
                peer: self.me.clone(),
                name,
                raised,
            },
        });
        Ok(())
    }

    /// At the root: puts `speaker` on stage (`None`: nobody), for the whole tree.
    pub fn set_stage(&mut self, speaker: Option<PeerId>) -> Result<(), TreeSendError> {
        if !self.root {
            return Err(TreeSendError::NotRoot);
        }
        let name = speaker
            .as_ref()
            .and_then(|p| self.hand_names.get(p))
            .cloned();
        self.take_stage(speaker, name);
        Ok(())
    }

    /// Whose voice the stage carries, as the root said.
    pub fn stage(&self) -> Option<&PeerId> {
        self.stage.as_ref()
    }

    /// Takes the stage's speaker and passes it on to the children, if it changed.
    fn take_stage(&mut self, speaker: Option<PeerId>, name: Option<DisplayName>) {
        if self.stage == speaker && self.stage_name == name {
            return;
        }
        self.stage = speaker.clone();
        self.stage_name = name.clone();
        self.outputs.push_back(TreeOutput::Stage { speaker, name });
        for child in self.children() {
            self.tell_stage(child);
        }
    }

    /// Tells `child` who is on stage.
    fn tell_stage(&mut self, child: PeerId) {
        let (speaker, name) = (self.stage.clone(), self.stage_name.clone());
        self.outputs.push_back(TreeOutput::Send {
            peer: child,
            msg: TreeMsg::Stage { speaker, name },
        });
    }

    /// Sends the application's bytes to tree neighbours, one hop (they do not pass them
    /// on). Sending to children when there are none sends nothing and is not an error.
    pub fn send(&mut self, to: TreeTarget, data: Vec<u8>) -> Result<(), TreeSendError> {
        let peers = match to {
            TreeTarget::Parent => vec![self.parent.clone().ok_or(TreeSendError::NoParent)?],
            TreeTarget::Children => self.children(),
            TreeTarget::Peer(peer) => {
                if !self.neighbours_but(None).contains(&peer) {
                    return Err(TreeSendError::NotNeighbour(peer));
                }
                vec![peer]
            }
        };
        for peer in peers {
            self.outputs.push_back(TreeOutput::Send {
                peer,
                msg: TreeMsg::Direct { data: data.clone() },
            });
        }
        Ok(())
    }

    fn on_msg(&mut self, from: PeerId, msg: TreeMsg) {
        match msg {
            TreeMsg::Direct { data } => {
                let from_parent = self.parent.as_ref() == Some(&from);
                if from_parent
                    || self
                        .children
                        .get(&from)
                        .is_some_and(|c| c.deadline.is_none())
                {
                    self.outputs.push_back(TreeOutput::Message {
                        origin: from.clone(),
                        from,
                        from_parent,
                        hops: 1,
                        data,
                    });
                }
            }
            TreeMsg::Join {
                requester,
                subtree,
                lost,
            } => self.on_join(requester, subtree, lost),
            TreeMsg::Accept { depth } => self.on_accept(from, depth),
            TreeMsg::Decline => {
                if self
                    .children
                    .get(&from)
                    .is_some_and(|c| c.deadline.is_some())
                {
                    self.children.remove(&from);
                    self.unlink(&from);
                    self.retry_waiting();
                }
            }
            TreeMsg::Welcome {
                depth,
                grandparent,
                root,
                root_name,
            } => {
                if self.parent.as_ref() == Some(&from) {
                    let changed = self.depth != Some(depth)
                        || self.known_root != root
                        || self.known_root_name != root_name;
                    self.depth = Some(depth);
                    self.grandparent = grandparent;
                    self.known_root = root;
                    self.known_root_name = root_name;
                    if changed {
                        self.welcome_children();
                        self.state();
                    }
                }
            }
            TreeMsg::Subtree { size } => {
                if let Some(child) = self.children.get_mut(&from)
                    && child.deadline.is_none()
                {
                    // What we counted as handed to it may be what it says now: our own
                    // report and state follow what changed since we last told them.
                    let changed = child.subtree != size;
                    child.subtree = size;
                    if changed {
                        self.report_subtree();
                    }
                    if self.subtree() != self.told_subtree {
                        self.state();
                    }
                }
            }
            TreeMsg::Hand { peer, name, raised } => {
                // Only up the tree, from a linked child: the root hears it.
                if self
                    .children
                    .get(&from)
                    .is_none_or(|c| c.deadline.is_some())
                {
                    return;
                }
                if self.root {
                    if self.hand_names.len() < MAX_HAND_NAMES || self.hand_names.contains_key(&peer)
                    {
                        self.hand_names.insert(peer.clone(), name.clone());
                    }
                    self.outputs
                        .push_back(TreeOutput::Hand { peer, name, raised });
                } else if let Some(parent) = self.parent.clone() {
                    self.outputs.push_back(TreeOutput::Send {
                        peer: parent,
                        msg: TreeMsg::Hand { peer, name, raised },
                    });
                }
            }
            TreeMsg::Stage { speaker, name } => {
                // Only the root's word, down from our parent.
                if !self.root && self.parent.as_ref() == Some(&from) {
                    self.take_stage(speaker, name);
                }
            }
            TreeMsg::Data {
                origin,
                seq,
                hops,
                data,
            } => {
                // Only from a tree neighbour: a frame from elsewhere would bypass the tree.
                if self.parent.as_ref() == Some(&from) || self.children.contains_key(&from) {
                    self.on_data(from, origin, seq, hops, data);
                }
            }
        }
    }

    fn on_tick(&mut self) {
        let now = self.now;
        let expired: Vec<PeerId> = self
            .children
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| now >= d))
            .map(|(p, _)| p.clone())
            .collect();
        for peer in expired {
            self.children.remove(&peer);
            self.unlink(&peer);
            // Our parent counted it as handed to us until we say.
            self.report_subtree();
            self.retry_waiting();
        }
        if let Some((peer, deadline)) = self.pending_parent.clone()
            && now >= deadline
        {
            self.pending_parent = None;
            self.unlink(&peer);
            self.request(Addressee::Root);
        }
        if self
            .rejoin_deadline
            .is_some_and(|d| now >= d && !self.attached() && self.pending_parent.is_none())
        {
            self.request(Addressee::Root);
        }
        while self.history.front().is_some_and(|(at, _)| *at <= now) {
            self.history.pop_front();
        }
        self.links.handle_input(Input::Tick { now });
    }

    fn deadline(&self, links: Instant) -> Instant {
        let mut at = links;
        for c in self.children.values() {
            if let Some(d) = c.deadline {
                at = at.min(d);
            }
        }
        if let Some((_, d)) = &self.pending_parent {
            at = at.min(*d);
        }
        if let Some(d) = self.rejoin_deadline
            && !self.attached()
        {
            at = at.min(d);
        }
        if let Some((d, _)) = self.history.front() {
            at = at.min(*d);
        }
        at.max(self.now)
    }

    /// A tree message from `from`, over a link or relayed by the server.
    pub fn handle_msg(&mut self, from: PeerId, msg: TreeMsg, now: Instant) {
        self.now = self.now.max(now);
        self.links.handle_input(Input::Heard {
            peer: from.clone(),
            now,
        });
        self.on_msg(from, msg);
    }

    /// Link events, goodbyes, broadcasts and time, as every topology is told them;
    /// appearances, plans and mesh frames are not the tree's and are ignored.
    pub fn handle_input(&mut self, input: Input) {
        match input {
            Input::LinkUp { peer, now } => {
                self.now = self.now.max(now);
                self.links.handle_input(Input::LinkUp {
                    peer: peer.clone(),
                    now,
                });
                self.on_link_up(peer);
            }
            Input::LinkDown { peer, now } => {
                self.now = self.now.max(now);
                self.on_link_down(&peer);
            }
            Input::Heard { peer, now } => {
                self.now = self.now.max(now);
                self.links.handle_input(Input::Heard { peer, now });
            }
            Input::Broadcast { data, now } => {
                self.now = self.now.max(now);
                self.broadcast(data);
            }
            Input::Tick { now } => {
                self.now = self.now.max(now);
                self.on_tick();
            }
            // A neighbour that said goodbye is gone now, not when its link times out.
            Input::PeerGone { peer, now } => {
                self.now = self.now.max(now);
                self.on_link_down(&peer);
            }
            Input::PeerAppeared { .. } | Input::Plan { .. } | Input::Frame { .. } => {}
        }
    }

    /// Produces the next output; the last of a drain is always [`TreeOutput::Timeout`].
    pub fn poll_output(&mut self) -> TreeOutput {
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        match self.links.poll_output() {
            Output::Connect { peer, initiate } => TreeOutput::Connect { peer, initiate },
            Output::Disconnect { peer, reason } => {
                // The link layer gave a link up (silent, or never opened): the tree
                // treats it as gone; a plain `Left` is our own doing.
                if reason != DropReason::Left {
                    self.on_link_down(&peer);
                }
                TreeOutput::Disconnect { peer }
            }
            Output::Heartbeat { peer } => TreeOutput::Heartbeat { peer },
            Output::Timeout(at) => TreeOutput::Timeout(self.deadline(at)),
            // A full mesh over our tree links sends no frames and delivers nothing.
            _ => self.poll_output(),
        }
    }
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
