use proptest::prelude::*;

use super::*;

fn peer(name: &str) -> PeerId {
    PeerId::new(name).unwrap()
}

fn red() -> Colour {
    Colour::new("#FF0000").unwrap()
}

fn pts(n: usize) -> Vec<Point> {
    (0..n).map(|i| Point(i as f32 / 10_000.0, 0.5)).collect()
}

/// What a board shows: its strokes in order, compared by id, clock and points.
fn picture(board: &Board) -> Vec<(StrokeId, u64, usize, bool)> {
    board
        .strokes()
        .map(|s| (s.id.clone(), s.clock, s.points.len(), s.done))
        .collect()
}

#[test]
fn a_stroke_travels_and_is_drawn_the_same() {
    let (mut a, mut b) = (Board::new(peer("a")), Board::new(peer("b")));
    let (m1, _) = a.begin(Tool::Pen, red(), 3.0, pts(2)).unwrap();
    let (m2, _) = a.extend(0, pts(3)).unwrap();
    let (m3, _) = a.end(0).unwrap();
    for m in [m1, m2, m3] {
        let wire = BoardMsg::decode(&m.encode()).unwrap();
        b.handle(&peer("a"), wire).unwrap();
    }
    assert_eq!(picture(&a), picture(&b));
    assert_eq!(b.strokes().next().unwrap().points.len(), 5);
    assert!(b.strokes().next().unwrap().done);
    assert_eq!(b.strokes().next().unwrap().colour.as_str(), "#ff0000");
}

#[test]
fn concurrent_strokes_are_ordered_the_same_everywhere() {
    let (mut a, mut b) = (Board::new(peer("a")), Board::new(peer("b")));
    let (ma, _) = a.begin(Tool::Pen, red(), 3.0, pts(1)).unwrap();
    let (mb, _) = b.begin(Tool::Eraser, red(), 9.0, pts(1)).unwrap();
    a.handle(&peer("b"), mb).unwrap();
    b.handle(&peer("a"), ma).unwrap();
    assert_eq!(picture(&a), picture(&b));
    // Same clock: the author breaks the tie.
    let order: Vec<_> = a
        .strokes()
        .map(|s| s.id.author.as_str().to_owned())
        .collect();
    assert_eq!(order, ["a", "b"]);
    // A stroke begun after seeing both comes after both.
    let (mc, _) = a.begin(Tool::Pen, red(), 3.0, pts(1)).unwrap();
    b.handle(&peer("a"), mc).unwrap();
    assert_eq!(picture(&a), picture(&b));
    assert_eq!(a.strokes().last().unwrap().clock, 2);
}

#[test]
fn undo_takes_back_only_own_strokes() {
    let (mut a, mut b) = (Board::new(peer("a")), Board::new(peer("b")));
    let (ma, _) = a.begin(Tool::Pen, red(), 3.0, pts(1)).unwrap();
    b.handle(&peer("a"), ma).unwrap();
    assert!(b.undo().is_none(), "b has no strokes of its own");
    let (mb, _) = b.begin(Tool::Pen, red(), 3.0, pts(1)).unwrap();
    a.handle(&peer("b"), mb).unwrap();
    let (undo, change) = a.undo().unwrap();
    assert_eq!(
        change,
        BoardChange::Removed {
            ids: vec![StrokeId {
                author: peer("a"),
                seq: 0
            }]
        }
    );
    b.handle(&peer("a"), undo).unwrap();
    assert_eq!(picture(&a), picture(&b));
    assert_eq!(a.len(), 1);
    assert_eq!(a.strokes().next().unwrap().id.author, peer("b"));
    // b's undo names b's stroke 0; sent by a it would name a's stroke 0, already gone.
    assert!(
        a.handle(&peer("b"), BoardMsg::Undo { seq: 0 })
            .unwrap()
            .len()
            == 1
    );
    assert!(a.is_empty());
}

#[test]
fn clear_removes_what_came_before_and_keeps_concurrent_later_strokes() {
    let (mut a, mut b) = (Board::new(peer("a")), Board::new(peer("b")));
    for _ in 0..3 {
        let (m, _) = a.begin(Tool::Pen, red(), 3.0, pts(1)).unwrap();
        b.handle(&peer("a"), m).unwrap();
    }
    let (clear, change) = b.clear();
    assert!(matches!(change, BoardChange::Removed { ref ids } if ids.len() == 3));
    // a draws again before seeing the clear: its clock (4) is above the clear's (4, "b")? No:
    // the clear's clock is 4 and a's next stroke also has clock 4, author "a" < "b", so it is
    // covered, consistently on both sides.
    let (late, _) = a.begin(Tool::Pen, red(), 3.0, pts(1)).unwrap();
    let (later, _) = a.begin(Tool::Pen, red(), 3.0, pts(1)).unwrap();
    a.handle(&peer("b"), clear).unwrap();
    b.handle(&peer("a"), late).unwrap();
    b.handle(&peer("a"), later).unwrap();
    assert_eq!(picture(&a), picture(&b));
    assert_eq!(
        a.len(),
        1,
        "the stroke with clock 5 survives the clear at 4"
    );
}

#[test]
fn a_late_joiner_gets_the_board_from_a_sync() {
    let (mut a, mut b) = (Board::new(peer("a")), Board::new(peer("b")));
    for i in 0..50 {
        let (m, _) = a.begin(Tool::Pen, red(), 3.0, pts(400)).unwrap();
        b.handle(&peer("a"), m).unwrap();
        if i % 10 == 0 {
            let (u, _) = a.undo().unwrap();
            b.handle(&peer("a"), u).unwrap();
        }
    }
    let mut late = Board::new(peer("c"));
    let msgs = a.sync_messages(64 * 1024);
    assert!(msgs.len() > 1, "chunked");
    for m in &msgs {
        assert!(m.encode().len() < 100 * 1024);
    }
    // Both existing peers answer; merging twice changes nothing.
    for m in msgs.into_iter().chain(b.sync_messages(64 * 1024)) {
        let wire = BoardMsg::decode(&m.encode()).unwrap();
        late.handle(&peer("a"), wire).unwrap();
    }
    assert_eq!(picture(&late), picture(&a));
    assert_eq!(late.len(), 45);
    // Its next stroke is ordered after everything it received.
    let (m, _) = late.begin(Tool::Pen, red(), 3.0, pts(1)).unwrap();
    a.handle(&peer("c"), m).unwrap();
    assert_eq!(a.strokes().last().unwrap().id.author, peer("c"));
}

#[test]
fn an_empty_board_syncs_as_one_empty_message() {
    let a = Board::new(peer("a"));
    assert_eq!(
        a.sync_messages(1000),
        vec![BoardMsg::Sync {
            strokes: vec![],
            removed: vec![],
            cleared: None
        }]
    );
}

#[test]
fn bad_messages_are_refused_and_change_nothing() {
    let mut b = Board::new(peer("b"));
    let (good, _) = Board::new(peer("a"))
        .begin(Tool::Pen, red(), 3.0, pts(1))
        .unwrap();
    b.handle(&peer("a"), good).unwrap();
    let before = picture(&b);
    let bad_json: &[&[u8]] = &[
        b"",
        b"{",
        br#"{"t":"scribble"}"#,
        br#"{"t":"begin","seq":1}"#,
        br#"{"t":"end","seq":-1}"#,
        br#"{"t":"end","seq":1,"extra":true}"#,
        br##"{"t":"begin","seq":1,"clock":1,"tool":"laser","colour":"#000000","width":2,"points":[]}"##,
        br#"{"t":"begin","seq":1,"clock":1,"tool":"pen","colour":"black","width":2,"points":[]}"#,
        br##"{"t":"begin","seq":1,"clock":1,"tool":"pen","colour":"#000000","width":2,"points":[[0.1]]}"##,
        br##"{"t":"begin","seq":1,"clock":1,"tool":"pen","colour":"#000000","width":2,"points":[[0.1,"x"]]}"##,
    ];
    for bytes in bad_json {
        assert!(
            matches!(BoardMsg::decode(bytes), Err(BoardError::Malformed(_))),
            "{bytes:?}"
        );
    }
    let begin = |width: f32, points: Vec<Point>| BoardMsg::Begin {
        seq: 7,
        clock: 1,
        tool: Tool::Pen,
        colour: red(),
        width,
        points,
    };
    assert_eq!(
        b.handle(&peer("x"), begin(0.0, pts(1))),
        Err(BoardError::BadWidth)
    );
    assert_eq!(
        b.handle(&peer("x"), begin(3.0, vec![Point(1.5, 0.0)])),
        Err(BoardError::PointOutOfRange)
    );
    assert_eq!(
        b.handle(&peer("x"), begin(3.0, vec![Point(f32::NAN, 0.0)])),
        Err(BoardError::PointOutOfRange)
    );
    assert_eq!(
        b.handle(&peer("x"), begin(3.0, pts(MAX_POINTS_PER_MSG + 1))),
        Err(BoardError::TooManyPoints)
    );
    let bad_sync = BoardMsg::Sync {
        strokes: vec![Stroke {
            id: StrokeId {
                author: peer("z"),
                seq: 0,
            },
            clock: 9,
            tool: Tool::Pen,
            colour: red(),
            width: 3.0,
            points: vec![Point(0.1, 0.1), Point(2.0, 0.0)],
            done: true,
        }],
        removed: vec![StrokeId {
            author: peer("a"),
            seq: 0,
        }],
        cleared: None,
    };
    assert_eq!(
        b.handle(&peer("x"), bad_sync),
        Err(BoardError::PointOutOfRange)
    );
    // A stroke id reused with another clock is refused.
    let forged = BoardMsg::Begin {
        seq: 0,
        clock: 99,
        tool: Tool::Pen,
        colour: red(),
        width: 3.0,
        points: vec![],
    };
    assert!(matches!(
        b.handle(&peer("a"), forged),
        Err(BoardError::Malformed(_))
    ));
    assert_eq!(picture(&b), before);
    // Points for a stroke we never saw, and gaps, are dropped quietly.
    assert_eq!(
        b.handle(
            &peer("q"),
            BoardMsg::Points {
                seq: 3,
                from: 0,
                points: pts(2)
            }
        ),
        Ok(vec![])
    );
    assert_eq!(
        b.handle(
            &peer("a"),
            BoardMsg::Points {
                seq: 0,
                from: 5,
                points: pts(2)
            }
        ),
        Ok(vec![])
    );
    assert_eq!(picture(&b), before);
}

#[test]
fn local_operations_validate_too() {
    let mut a = Board::new(peer("a"));
    assert_eq!(
        a.begin(Tool::Pen, red(), 101.0, pts(1)).err(),
        Some(BoardError::BadWidth)
    );
    assert_eq!(a.extend(0, pts(1)).err(), Some(BoardError::NoSuchStroke(0)));
    assert!(
        Colour::new("#12345").is_err()
            && Colour::new("123456").is_err()
            && Colour::new("#12345g").is_err()
    );
    a.begin(Tool::Pen, red(), 1.0, pts(1)).unwrap();
    for _ in 0..20 {
        a.extend(0, pts(MAX_POINTS_PER_MSG)).unwrap();
    }
    assert_eq!(
        a.strokes().next().unwrap().points.len(),
        MAX_POINTS_PER_STROKE,
        "cut at the limit"
    );
    a.end(0).unwrap();
    assert_eq!(
        a.extend(0, pts(1)).err(),
        Some(BoardError::NoSuchStroke(0)),
        "ended"
    );
}

/// One operation of the convergence property: which peer acts, and how.
#[derive(Debug, Clone)]
enum Op {
    Draw {
        points: usize,
    },
    Undo,
    Clear,
    /// Deliver the oldest message in flight from peer `from` to peer `to`.
    Deliver {
        from: usize,
        to: usize,
    },
}

fn op() -> impl Strategy<Value = (usize, Op)> {
    (
        0..3usize,
        prop_oneof![
            4 => (1..40usize).prop_map(|points| Op::Draw { points }),
            1 => Just(Op::Undo),
            1 => Just(Op::Clear),
            8 => (0..3usize, 0..3usize).prop_map(|(from, to)| Op::Deliver { from, to }),
        ],
    )
}

proptest! {
    /// Three peers draw, undo and clear concurrently while links deliver in any interleaving
    /// (each link in order, as the room's data channel does). Once everything is delivered
    /// every peer shows the same strokes in the same order, and a peer that joins late and
    /// merges everyone's sync shows it too.
    #[test]
    fn boards_converge(ops in proptest::collection::vec(op(), 1..120)) {
        let names = [peer("p0"), peer("p1"), peer("p2")];
        let mut boards: Vec<Board> = names.iter().cloned().map(Board::new).collect();
        // links[from][to]: messages in flight, in order.
        let mut links: Vec<Vec<std::collections::VecDeque<BoardMsg>>> =
            vec![vec![Default::default(); 3]; 3];
        let broadcast = |links: &mut Vec<Vec<std::collections::VecDeque<BoardMsg>>>, from: usize, msg: BoardMsg| {
            for (to, q) in links[from].iter_mut().enumerate() {
                if to != from {
                    q.push_back(msg.clone());
                }
            }
        };
        for (who, op) in ops {
            match op {
                Op::Draw { points } => {
                    let (m, _) = boards[who].begin(Tool::Pen, red(), 2.0, pts(points)).unwrap();
                    broadcast(&mut links, who, m);
                    let seq = boards[who].next_seq - 1;
                    let (m, _) = boards[who].extend(seq, pts(3)).unwrap();
                    broadcast(&mut links, who, m);
                    let (m, _) = boards[who].end(seq).unwrap();
                    broadcast(&mut links, who, m);
                }
                Op::Undo => {
                    if let Some((m, _)) = boards[who].undo() {
                        broadcast(&mut links, who, m);
                    }
                }
                Op::Clear => {
                    let (m, _) = boards[who].clear();
                    broadcast(&mut links, who, m);
                }
                Op::Deliver { from, to } => {
                    if let Some(m) = links[from][to].pop_front() {
                        let wire = BoardMsg::decode(&m.encode()).unwrap();
                        boards[to].handle(&names[from], wire).unwrap();
                    }
                }
            }
        }
        for from in 0..3 {
            for to in 0..3 {
                while let Some(m) = links[from][to].pop_front() {
                    boards[to].handle(&names[from], m).unwrap();
                }
            }
        }
        let first = picture(&boards[0]);
        prop_assert_eq!(&picture(&boards[1]), &first);
        prop_assert_eq!(&picture(&boards[2]), &first);
        let mut late = Board::new(peer("late"));
        for (i, b) in boards.iter().enumerate() {
            for m in b.sync_messages(4096) {
                late.handle(&names[i], m).unwrap();
            }
        }
        prop_assert_eq!(picture(&late), first);
    }
}
