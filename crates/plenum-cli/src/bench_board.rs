//! `plenum bench board`: the whiteboard's costs — stroke latency between two peers over a real
//! room, how fast a peer applies incoming points, and the size and speed of a late joiner's
//! board sync.

use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use plenum::{PeerId, RoomEvent, Target};
use plenum_collab::{BOARD, Board, BoardMsg, Colour, Point, Tool};
use serde_json::{Value, json};

use crate::bench::{summary, wait_for};

#[derive(Debug, clap::Args)]
pub(crate) struct BoardArgs {
    /// Point messages (8 points each) timed between two peers.
    #[arg(long, default_value_t = 500)]
    messages: usize,
    /// Strokes on the board whose sync is measured.
    #[arg(long, default_value_t = 2000)]
    strokes: usize,
    /// Points per stroke of that board.
    #[arg(long, default_value_t = 200)]
    points: usize,
}

fn pts(n: usize, phase: usize) -> Vec<Point> {
    (0..n)
        .map(|i| Point(((i + phase) % 1000) as f32 / 1000.0, 0.5))
        .collect()
}

pub(crate) async fn board(args: &BoardArgs) -> anyhow::Result<Value> {
    let crate::bench::Pair {
        _server,
        a,
        b,
        mut b_events,
        ..
    } = crate::bench::linked_pair("board").await?;
    let b_id = b.id().clone();
    let a_id: PeerId = a.id().clone();
    let channel = a.channel(BOARD)?;
    let mut board_a = Board::new(a_id.clone());
    let mut board_b = Board::new(b_id.clone());
    let colour = Colour::new("#2563eb").context("colour")?;
    let (begin, _) = board_a.begin(Tool::Pen, colour.clone(), 4.0, pts(1, 0))?;
    channel
        .send(Bytes::from(begin.encode()), Target::All)
        .await?;

    // Stroke latency: from encoding a points message at a to the change at b's board.
    let mut latency = Vec::with_capacity(args.messages);
    let mut received = 0;
    for i in 0..=args.messages {
        let started = Instant::now();
        if i > 0 {
            let (msg, _) = board_a.extend(0, pts(8, i * 8))?;
            channel.send(Bytes::from(msg.encode()), Target::All).await?;
        }
        let changes = wait_for(&mut b_events, "a board message", |e| match e {
            RoomEvent::Message {
                channel,
                from,
                data,
            } if channel.as_str() == BOARD => Some((from, data)),
            _ => None,
        })
        .await
        .and_then(|(from, data)| Ok(board_b.handle(&from, BoardMsg::decode(&data)?)?))?;
        anyhow::ensure!(!changes.is_empty(), "message {i} changed nothing");
        received += 1;
        if i > 0 {
            latency.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    a.leave().await;
    b.leave().await;

    // Applying points: decode + merge of remote point messages, no network.
    let mut sender = Board::new(a_id.clone());
    let mut receiver = Board::new(b_id.clone());
    let n_apply = 20_000;
    let mut wire = Vec::with_capacity(n_apply);
    let mut seq = 0;
    for i in 0..n_apply {
        if i % 400 == 0 {
            let (m, _) = sender.begin(Tool::Pen, colour.clone(), 3.0, pts(1, i))?;
            wire.push(m.encode());
            seq = match m {
                BoardMsg::Begin { seq, .. } => seq,
                _ => seq,
            };
        } else {
            wire.push(sender.extend(seq, pts(16, i))?.0.encode());
        }
    }
    let t = Instant::now();
    for bytes in &wire {
        receiver.handle(&a_id, BoardMsg::decode(bytes)?)?;
    }
    let apply_s = t.elapsed().as_secs_f64();

    // A late joiner's sync of a large board.
    let mut big = Board::new(a_id.clone());
    for s in 0..args.strokes {
        let (m, _) = big.begin(Tool::Pen, colour.clone(), 3.0, pts(1, s))?;
        let seq = match m {
            BoardMsg::Begin { seq, .. } => seq,
            _ => 0,
        };
        let mut left = args.points.saturating_sub(1);
        while left > 0 {
            let n = left.min(512);
            big.extend(seq, pts(n, s + left))?;
            left -= n;
        }
        big.end(seq)?;
    }
    let t = Instant::now();
    let msgs = big.sync_messages(192 * 1024);
    let encoded: Vec<Vec<u8>> = msgs.iter().map(BoardMsg::encode).collect();
    let encode_ms = t.elapsed().as_secs_f64() * 1000.0;
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    let largest = encoded.iter().map(Vec::len).max().unwrap_or(0);
    let mut late = Board::new(PeerId::new("late").context("id")?);
    let t = Instant::now();
    for e in &encoded {
        late.handle(&a_id, BoardMsg::decode(e)?)?;
    }
    let merge_ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(
        late.len() == args.strokes,
        "late joiner holds {} strokes",
        late.len()
    );

    Ok(json!({
        "bench": "board",
        "stroke_points_latency_ms": summary(latency),
        "messages_received": received,
        "apply_points_msgs_per_s": (n_apply as f64 / apply_s).round(),
        "apply_points_per_s": ((n_apply as f64 * 16.0) / apply_s).round(),
        "sync": {
            "strokes": args.strokes,
            "points_per_stroke": args.points,
            "messages": encoded.len(),
            "bytes": bytes,
            "largest_message_bytes": largest,
            "encode_ms": encode_ms,
            "merge_ms": merge_ms,
        },
    }))
}
