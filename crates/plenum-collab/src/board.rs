//! The whiteboard: freehand strokes that every peer orders the same way.
//!
//! A stroke is identified by its author and the author's sequence number, and ordered by a
//! key `(clock, author, seq)`, where `clock` is a Lamport clock: one more than the largest
//! clock the author had seen when the stroke began. Every peer draws strokes in key order,
//! so peers holding the same set of strokes draw the same picture, whatever order the
//! messages arrived in; eraser strokes (painted as "remove ink") are ordered like any other.
//!
//! The board is a set that only grows by union: strokes (whose points only grow), the ids of
//! strokes removed by undo, and the highest clear mark. Merging a peer's board (a `sync`
//! message, sent to every peer that joins) is therefore idempotent and commutative, so a
//! late joiner ends up with the same board as everyone else however many peers answer it.
//!
//! Only a stroke's author may extend, end or undo it: those messages name no author, the
//! sender is the author.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use plenum_proto::PeerId;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Points per `begin` or `points` message, at most.
pub const MAX_POINTS_PER_MSG: usize = 512;
/// Points per stroke, at most: a longer stroke is cut there.
pub const MAX_POINTS_PER_STROKE: usize = 8_000;
/// Strokes on one board, at most.
pub const MAX_STROKES: usize = 10_000;
/// Removed stroke ids remembered, at most.
pub const MAX_REMOVED: usize = 20_000;
/// Stroke width in thousandths of the board's width.
pub const WIDTH_RANGE: std::ops::RangeInclusive<f32> = 0.5..=100.0;

/// A point on the board: fractions of its width and height, each 0..=1, kept to four
/// decimals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, TS)]
pub struct Point(pub f32, pub f32);

impl Point {
    fn checked(self) -> Result<Self, BoardError> {
        let ok = |v: f32| (0.0..=1.0).contains(&v);
        if !ok(self.0) || !ok(self.1) {
            return Err(BoardError::PointOutOfRange);
        }
        let q = |v: f32| (v * 10_000.0).round() / 10_000.0;
        Ok(Self(q(self.0), q(self.1)))
    }
}

/// What a stroke does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// Lays down ink.
    Pen,
    /// Removes ink under it, from every stroke ordered before it.
    Eraser,
}

/// A colour, `#rrggbb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(try_from = "String", into = "String")]
#[ts(type = "string")]
pub struct Colour(String);

impl Colour {
    /// Validates `#rrggbb` (hex digits in either case); stored lower case.
    pub fn new(text: &str) -> Result<Self, BoardError> {
        let hex = text.strip_prefix('#').ok_or(BoardError::BadColour)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BoardError::BadColour);
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The colour as `#rrggbb`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Colour {
    type Error = BoardError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<Colour> for String {
    fn from(value: Colour) -> Self {
        value.0
    }
}

/// A stroke's identity: its author and the author's sequence number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS)]
pub struct StrokeId {
    /// The peer that drew it.
    #[ts(type = "string")]
    pub author: PeerId,
    /// Its number among the author's strokes.
    pub seq: u32,
}

/// The highest clear seen: every stroke ordered at or below `(clock, author)` is gone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
pub struct ClearMark {
    /// The clearing peer's clock when it cleared.
    #[ts(type = "number")]
    pub clock: u64,
    /// The peer that cleared.
    #[ts(type = "string")]
    pub author: PeerId,
}

impl ClearMark {
    fn covers(&self, clock: u64, author: &PeerId) -> bool {
        (clock, author) <= (self.clock, &self.author)
    }
}

/// One stroke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Stroke {
    /// Who drew it and its number.
    #[serde(flatten)]
    #[ts(flatten)]
    pub id: StrokeId,
    /// Its Lamport clock; strokes are drawn in `(clock, author, seq)` order.
    #[ts(type = "number")]
    pub clock: u64,
    /// Pen or eraser.
    pub tool: Tool,
    /// Ink colour (ignored by the eraser).
    #[ts(type = "string")]
    pub colour: Colour,
    /// Width in thousandths of the board's width.
    pub width: f32,
    /// The points so far.
    pub points: Vec<Point>,
    /// Whether the author lifted the pen.
    pub done: bool,
}

impl Stroke {
    fn key(&self) -> Key {
        Key {
            clock: self.clock,
            id: self.id.clone(),
        }
    }
}

/// A whiteboard operation as it travels on channel `board`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum BoardMsg {
    /// The sender starts stroke `seq`.
    Begin {
        /// The sender's number for it.
        seq: u32,
        /// Its Lamport clock.
        clock: u64,
        /// Pen or eraser.
        tool: Tool,
        /// Ink colour.
        colour: Colour,
        /// Width in thousandths of the board's width.
        width: f32,
        /// The first points.
        points: Vec<Point>,
    },
    /// More points of the sender's stroke `seq`, starting at index `from`.
    Points {
        /// Which stroke.
        seq: u32,
        /// Index of the first of these points in the stroke.
        from: u32,
        /// The points.
        points: Vec<Point>,
    },
    /// The sender lifted the pen.
    End {
        /// Which stroke.
        seq: u32,
    },
    /// The sender took back its stroke `seq`.
    Undo {
        /// Which stroke.
        seq: u32,
    },
    /// The sender cleared the board: every stroke ordered at or below `(clock, sender)` goes.
    Clear {
        /// The sender's Lamport clock for the clear.
        clock: u64,
    },
    /// (Part of) the sender's whole board, for a peer that just joined.
    Sync {
        /// Strokes, with their authors.
        strokes: Vec<Stroke>,
        /// Strokes taken back.
        removed: Vec<StrokeId>,
        /// The highest clear.
        cleared: Option<ClearMark>,
    },
}

impl BoardMsg {
    /// Decodes a message from a peer (structure only; [`Board::handle`] validates values).
    pub fn decode(bytes: &[u8]) -> Result<Self, BoardError> {
        serde_json::from_slice(bytes).map_err(|e| BoardError::Malformed(e.to_string()))
    }

    /// The message as it travels.
    pub fn encode(&self) -> Vec<u8> {
        // Validated floats, strings and integers always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A change to what the board shows, for the view to apply.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BoardChange {
    /// A stroke appeared (or its style and points should be replaced).
    Stroke {
        /// The whole stroke.
        stroke: Stroke,
    },
    /// Points were added to a stroke, starting at index `from`.
    Points {
        /// Which stroke.
        id: StrokeId,
        /// Index of the first new point.
        from: u32,
        /// The new points.
        points: Vec<Point>,
        /// Whether the stroke is now finished.
        done: bool,
    },
    /// Strokes went (undo or clear).
    Removed {
        /// Which.
        ids: Vec<StrokeId>,
    },
}

/// Why a board operation or message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// Not a board message.
    #[error("not a board message: {0}")]
    Malformed(String),
    /// A coordinate that is not a number within 0..=1.
    #[error("point out of range")]
    PointOutOfRange,
    /// Not `#rrggbb`.
    #[error("colour is not #rrggbb")]
    BadColour,
    /// Width outside 0.5..=100.
    #[error("stroke width out of range")]
    BadWidth,
    /// More than [`MAX_POINTS_PER_MSG`] points in one message.
    #[error("more than {MAX_POINTS_PER_MSG} points in one message")]
    TooManyPoints,
    /// The board holds [`MAX_STROKES`] strokes.
    #[error("the board is full ({MAX_STROKES} strokes)")]
    Full,
    /// The stroke is not ours, or not in progress.
    #[error("no stroke {0} in progress")]
    NoSuchStroke(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    clock: u64,
    id: StrokeId,
}

/// One peer's whiteboard. Local operations return the message to send and the change to
/// show; remote messages return the changes to show.
#[derive(Debug)]
pub struct Board {
    me: PeerId,
    clock: u64,
    next_seq: u32,
    strokes: BTreeMap<Key, Stroke>,
    keys: HashMap<StrokeId, Key>,
    removed: BTreeSet<StrokeId>,
    cleared: Option<ClearMark>,
    own: Vec<u32>,
}

fn check_points(points: Vec<Point>) -> Result<Vec<Point>, BoardError> {
    if points.len() > MAX_POINTS_PER_MSG {
        return Err(BoardError::TooManyPoints);
    }
    points.into_iter().map(Point::checked).collect()
}

fn check_width(width: f32) -> Result<f32, BoardError> {
    if WIDTH_RANGE.contains(&width) {
        Ok(width)
    } else {
        Err(BoardError::BadWidth)
    }
}

impl Board {
    /// An empty board for peer `me`.
    pub fn new(me: PeerId) -> Self {
        Self {
            me,
            clock: 0,
            next_seq: 0,
            strokes: BTreeMap::new(),
            keys: HashMap::new(),
            removed: BTreeSet::new(),
            cleared: None,
            own: Vec::new(),
        }
    }

    /// Our peer id.
    pub fn me(&self) -> &PeerId {
        &self.me
    }

    /// The strokes in drawing order.
    pub fn strokes(&self) -> impl Iterator<Item = &Stroke> {
        self.strokes.values()
    }

    /// How many strokes the board holds.
    pub fn len(&self) -> usize {
        self.strokes.len()
    }

    /// Whether the board is empty.
    pub fn is_empty(&self) -> bool {
        self.strokes.is_empty()
    }

    /// The highest clear so far.
    pub fn cleared(&self) -> Option<&ClearMark> {
        self.cleared.as_ref()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Starts one of our strokes.
    pub fn begin(
        &mut self,
        tool: Tool,
        colour: Colour,
        width: f32,
        points: Vec<Point>,
    ) -> Result<(BoardMsg, BoardChange), BoardError> {
        let width = check_width(width)?;
        let points = check_points(points)?;
        if self.strokes.len() >= MAX_STROKES {
            return Err(BoardError::Full);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let clock = self.tick();
        let stroke = Stroke {
            id: StrokeId {
                author: self.me.clone(),
                seq,
            },
            clock,
            tool,
            colour: colour.clone(),
            width,
            points: points.clone(),
            done: false,
        };
        self.insert(stroke.clone());
        self.own.push(seq);
        let msg = BoardMsg::Begin {
            seq,
            clock,
            tool,
            colour,
            width,
            points,
        };
        Ok((msg, BoardChange::Stroke { stroke }))
    }

    /// Adds points to our stroke `seq`.
    pub fn extend(
        &mut self,
        seq: u32,
        points: Vec<Point>,
    ) -> Result<(BoardMsg, BoardChange), BoardError> {
        let points = check_points(points)?;
        let id = StrokeId {
            author: self.me.clone(),
            seq,
        };
        let stroke = self
            .stroke_mut(&id)
            .filter(|s| !s.done)
            .ok_or(BoardError::NoSuchStroke(seq))?;
        let from = stroke.points.len();
        let room = MAX_POINTS_PER_STROKE.saturating_sub(from);
        let points: Vec<Point> = points.into_iter().take(room).collect();
        stroke.points.extend_from_slice(&points);
        let from = u32::try_from(from).unwrap_or(u32::MAX);
        let msg = BoardMsg::Points {
            seq,
            from,
            points: points.clone(),
        };
        Ok((
            msg,
            BoardChange::Points {
                id,
                from,
                points,
                done: false,
            },
        ))
    }

    /// Ends our stroke `seq`.
    pub fn end(&mut self, seq: u32) -> Result<(BoardMsg, BoardChange), BoardError> {
        let id = StrokeId {
            author: self.me.clone(),
            seq,
        };
        let stroke = self.stroke_mut(&id).ok_or(BoardError::NoSuchStroke(seq))?;
        stroke.done = true;
        let from = u32::try_from(stroke.points.len()).unwrap_or(u32::MAX);
        Ok((
            BoardMsg::End { seq },
            BoardChange::Points {
                id,
                from,
                points: Vec::new(),
                done: true,
            },
        ))
    }

    /// Takes back our latest stroke still on the board.
    pub fn undo(&mut self) -> Option<(BoardMsg, BoardChange)> {
        while let Some(seq) = self.own.pop() {
            let id = StrokeId {
                author: self.me.clone(),
                seq,
            };
            if self.keys.contains_key(&id) {
                self.remove(id.clone());
                return Some((
                    BoardMsg::Undo { seq },
                    BoardChange::Removed { ids: vec![id] },
                ));
            }
        }
        None
    }

    /// Clears the board for everyone.
    pub fn clear(&mut self) -> (BoardMsg, BoardChange) {
        let clock = self.tick();
        let ids = self.apply_clear(ClearMark {
            clock,
            author: self.me.clone(),
        });
        (BoardMsg::Clear { clock }, BoardChange::Removed { ids })
    }

    /// Our whole board as `sync` messages of at most about `max_bytes` each (a single stroke
    /// larger than that travels alone), for a peer that just joined.
    pub fn sync_messages(&self, max_bytes: usize) -> Vec<BoardMsg> {
        let mut out = Vec::new();
        let mut batch = Vec::new();
        let mut size = 0;
        for stroke in self.strokes.values() {
            // A stroke is about 20 bytes of JSON per point plus 150 of fields.
            let cost = 150 + 20 * stroke.points.len();
            if !batch.is_empty() && size + cost > max_bytes {
                out.push(BoardMsg::Sync {
                    strokes: std::mem::take(&mut batch),
                    removed: vec![],
                    cleared: None,
                });
                size = 0;
            }
            size += cost;
            batch.push(stroke.clone());
        }
        let removed: Vec<StrokeId> = self.removed.iter().cloned().collect();
        if !batch.is_empty() || !removed.is_empty() || self.cleared.is_some() || out.is_empty() {
            out.push(BoardMsg::Sync {
                strokes: batch,
                removed,
                cleared: self.cleared.clone(),
            });
        }
        out
    }

    /// A message from peer `from`. Returns the changes to show; refuses what is invalid,
    /// leaving the board as it was.
    pub fn handle(&mut self, from: &PeerId, msg: BoardMsg) -> Result<Vec<BoardChange>, BoardError> {
        // Every message but `sync` names no author: the sender is the author.
        let stroke_of = |seq| StrokeId {
            author: from.clone(),
            seq,
        };
        match msg {
            BoardMsg::Begin {
                seq,
                clock,
                tool,
                colour,
                width,
                points,
            } => {
                let stroke = Stroke {
                    id: stroke_of(seq),
                    clock,
                    tool,
                    colour,
                    width: check_width(width)?,
                    points: check_points(points)?,
                    done: false,
                };
                Ok(self.merge_stroke(stroke)?.into_iter().collect())
            }
            BoardMsg::Points {
                seq,
                from: start,
                points,
            } => {
                let points = check_points(points)?;
                let id = stroke_of(seq);
                Ok(self
                    .add_points(id, start, points, false)
                    .into_iter()
                    .collect())
            }
            BoardMsg::End { seq } => {
                let id = stroke_of(seq);
                Ok(self
                    .add_points(id, u32::MAX, Vec::new(), true)
                    .into_iter()
                    .collect())
            }
            BoardMsg::Undo { seq } => {
                let id = stroke_of(seq);
                Ok(self.remove(id).into_iter().collect())
            }
            BoardMsg::Clear { clock } => {
                self.clock = self.clock.max(clock);
                let ids = self.apply_clear(ClearMark {
                    clock,
                    author: from.clone(),
                });
                Ok(if ids.is_empty() {
                    vec![]
                } else {
                    vec![BoardChange::Removed { ids }]
                })
            }
            BoardMsg::Sync {
                strokes,
                removed,
                cleared,
            } => {
                // Validate everything before changing anything.
                let strokes = strokes
                    .into_iter()
                    .map(|s| {
                        if s.points.len() > MAX_POINTS_PER_STROKE {
                            return Err(BoardError::TooManyPoints);
                        }
                        let points = s
                            .points
                            .into_iter()
                            .map(Point::checked)
                            .collect::<Result<_, _>>()?;
                        Ok(Stroke {
                            width: check_width(s.width)?,
                            points,
                            ..s
                        })
                    })
                    .collect::<Result<Vec<_>, BoardError>>()?;
                let mut changes = Vec::new();
                if let Some(mark) = cleared {
                    self.clock = self.clock.max(mark.clock);
                    let ids = self.apply_clear(mark);
                    if !ids.is_empty() {
                        changes.push(BoardChange::Removed { ids });
                    }
                }
                let mut gone = Vec::new();
                for id in removed {
                    gone.extend(self.remove(id).into_iter().flat_map(|c| match c {
                        BoardChange::Removed { ids } => ids,
                        _ => vec![],
                    }));
                }
                if !gone.is_empty() {
                    changes.push(BoardChange::Removed { ids: gone });
                }
                for stroke in strokes {
                    changes.extend(self.merge_stroke(stroke)?);
                }
                Ok(changes)
            }
        }
    }

    fn stroke_mut(&mut self, id: &StrokeId) -> Option<&mut Stroke> {
        let key = self.keys.get(id)?;
        self.strokes.get_mut(key)
    }

    fn insert(&mut self, stroke: Stroke) {
        let key = stroke.key();
        self.keys.insert(stroke.id.clone(), key.clone());
        self.strokes.insert(key, stroke);
    }

    /// Adds a stroke from a peer, or merges it with the copy we hold (points only grow).
    fn merge_stroke(&mut self, stroke: Stroke) -> Result<Option<BoardChange>, BoardError> {
        self.clock = self.clock.max(stroke.clock);
        if self.removed.contains(&stroke.id)
            || self
                .cleared
                .as_ref()
                .is_some_and(|c| c.covers(stroke.clock, &stroke.id.author))
        {
            return Ok(None);
        }
        if let Some(held) = self.stroke_mut(&stroke.id) {
            if held.clock != stroke.clock {
                // The same id with another clock is a lie; the first one wins everywhere it
                // was seen first, so refuse it rather than fork the board.
                return Err(BoardError::Malformed(format!(
                    "stroke {} changed its clock",
                    stroke.id.seq
                )));
            }
            let from = u32::try_from(held.points.len()).unwrap_or(u32::MAX);
            let longer = stroke.points.len() > held.points.len();
            let finishes = stroke.done && !held.done;
            if !longer && !finishes {
                return Ok(None);
            }
            let points = if longer {
                stroke.points[held.points.len()..].to_vec()
            } else {
                vec![]
            };
            held.points.extend_from_slice(&points);
            held.done |= stroke.done;
            return Ok(Some(BoardChange::Points {
                id: stroke.id,
                from,
                points,
                done: held.done,
            }));
        }
        if self.strokes.len() >= MAX_STROKES {
            return Err(BoardError::Full);
        }
        self.insert(stroke.clone());
        Ok(Some(BoardChange::Stroke { stroke }))
    }

    /// Points `start..` of a peer's stroke. Points we hold already are skipped; a gap (points
    /// past the end of what we hold) is dropped: the author's own `sync`, which precedes its
    /// later points on the same ordered link, carries them.
    fn add_points(
        &mut self,
        id: StrokeId,
        start: u32,
        points: Vec<Point>,
        done: bool,
    ) -> Option<BoardChange> {
        let stroke = self.stroke_mut(&id)?;
        let held = stroke.points.len();
        let start = if done && points.is_empty() {
            held
        } else {
            usize::try_from(start).ok()?
        };
        if start > held {
            return None;
        }
        let skip = held - start;
        let room = MAX_POINTS_PER_STROKE.saturating_sub(held);
        let new: Vec<Point> = points.into_iter().skip(skip).take(room).collect();
        if new.is_empty() && (!done || stroke.done) {
            return None;
        }
        stroke.points.extend_from_slice(&new);
        stroke.done |= done;
        let from = u32::try_from(held).unwrap_or(u32::MAX);
        Some(BoardChange::Points {
            id,
            from,
            points: new,
            done: stroke.done,
        })
    }

    fn remove(&mut self, id: StrokeId) -> Option<BoardChange> {
        if self.removed.len() < MAX_REMOVED {
            self.removed.insert(id.clone());
        }
        let key = self.keys.remove(&id)?;
        self.strokes.remove(&key);
        Some(BoardChange::Removed { ids: vec![id] })
    }

    fn apply_clear(&mut self, mark: ClearMark) -> Vec<StrokeId> {
        if self.cleared.as_ref().is_some_and(|c| *c >= mark) {
            return Vec::new();
        }
        let gone: Vec<Key> = self
            .strokes
            .keys()
            .take_while(|k| mark.covers(k.clock, &k.id.author))
            .cloned()
            .collect();
        self.cleared = Some(mark);
        gone.into_iter()
            .map(|k| {
                self.keys.remove(&k.id);
                self.strokes.remove(&k);
                k.id
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "board_tests.rs"]
mod tests;
