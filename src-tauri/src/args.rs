//! The app's command line: `plenum-app [--server URL --room NAME --name NAME] [--role R]
//! [--access-code C] [INVITE]`.

use std::net::SocketAddr;

use clap::Parser;
use plenum::Invite;

use crate::types::{CommandError, JoinRequest, Role, RoomShape};

/// Plenum: calls, chat and a shared whiteboard, peer to peer.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "plenum-app", version)]
pub struct Args {
    /// Signaling server to join through (ws://HOST:PORT).
    #[arg(long)]
    pub server: Option<String>,
    /// Room to join.
    #[arg(long)]
    pub room: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Room password.
    #[arg(long)]
    pub password: Option<String>,
    /// Create the room as a large room (cells of peers joined by bridges): --shape cells.
    #[arg(long)]
    pub cells: bool,
    /// How a new room links its peers: mesh, cells, tree or relay (default: cells, a mesh
    /// up to its cell size; to present or watch, a star up to 8 viewers, a tree beyond).
    #[arg(long, value_enum)]
    pub shape: Option<ShapeArg>,
    /// What we do in the room: both (the default, or the invite's role), publisher
    /// (present) or viewer.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// The access code a presenter asks for.
    #[arg(long)]
    pub access_code: Option<String>,
    /// Where "Host on this computer" listens (default: every interface, port 7878).
    #[arg(long, env = "PLENUM_HOST_BIND")]
    pub host_bind: Option<SocketAddr>,
    /// Asks the update server instead of opening a call: `check` prints what it offers,
    /// `install` also installs a newer version (the answer is one JSON line on stdout; the
    /// exit status is 0 when up to date or installed, 1 when refused or failed).
    #[arg(long, value_enum)]
    pub update: Option<UpdateArg>,
    /// An invite link (plenum://join?server=...&room=...).
    pub invite: Option<String>,
}

impl Args {
    /// What the command line asks to join: server and room from `--server`/`--room` or an
    /// invite link, name from `--name` (the join screen asks for what is missing).
    pub fn request(&self) -> Result<Option<JoinRequest>, CommandError> {
        let (server, room, invited_as) = match &self.invite {
            Some(link) => {
                let invite = Invite::parse(link).map_err(CommandError::bad_input)?;
                let role = invite.role.map(Role::from);
                (
                    Some(invite.server),
                    Some(invite.room.as_str().to_owned()),
                    role,
                )
            }
            None => (self.server.clone(), self.room.clone(), None),
        };
        let (Some(server), Some(room)) = (server, room) else {
            return Ok(None);
        };
        let role = match self.role {
            Some(RoleArg::Both) => Role::Both,
            Some(RoleArg::Publisher) => Role::Publisher,
            Some(RoleArg::Viewer) => Role::Viewer,
            None => invited_as.unwrap_or_default(),
        };
        Ok(Some(JoinRequest {
            server,
            room,
            name: self.name.clone().unwrap_or_default(),
            password: self.password.clone(),
            shape: match (self.shape, self.cells) {
                (Some(ShapeArg::Mesh), _) => RoomShape::Mesh,
                // A room grows by default: a call a mesh up to its cell size, cells beyond;
                // a presentation a star up to 8 viewers, a tree beyond.
                (Some(ShapeArg::Cells), _) | (None, _) => RoomShape::Cells,
                (Some(ShapeArg::Tree), _) => RoomShape::Tree,
                (Some(ShapeArg::Relay), _) => RoomShape::Relay,
            },
            role,
            access_code: self.access_code.clone(),
            viewer_code: None,
        }))
    }
}

/// `--update` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpdateArg {
    /// Say what the update server offers.
    Check,
    /// Install a newer version if one is offered.
    Install,
}

/// `--role` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Take part.
    Both,
    /// Present.
    Publisher,
    /// Watch.
    Viewer,
}

/// `--shape` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShapeArg {
    /// Everyone links to everyone.
    Mesh,
    /// Cells joined by bridges.
    Cells,
    /// A broadcast tree.
    Tree,
    /// A relay network.
    Relay,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("plenum-app").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn flags_or_an_invite_give_a_join_request() {
        let req = parse(&["--server", "ws://h:1", "--room", "r", "--name", "Ada"])
            .request()
            .unwrap()
            .unwrap();
        assert_eq!(
            (req.server.as_str(), req.room.as_str(), req.name.as_str()),
            ("ws://h:1", "r", "Ada")
        );
        let req = parse(&["plenum://join?server=ws%3A%2F%2Fh%3A2&room=s"])
            .request()
            .unwrap()
            .unwrap();
        assert_eq!(
            (req.server.as_str(), req.room.as_str(), req.name.as_str()),
            ("ws://h:2", "s", "")
        );
        assert_eq!(req.role, Role::Both);
        assert_eq!(parse(&["--name", "Ada"]).request().unwrap(), None);
        assert!(parse(&["not-an-invite"]).request().is_err());
    }

    #[test]
    fn a_presenters_invite_joins_as_a_viewer_unless_told_otherwise() {
        let link = "plenum://join?server=ws%3A%2F%2Fh%3A2&room=s&role=viewer&credentials=required";
        let req = parse(&[link, "--access-code", "k"])
            .request()
            .unwrap()
            .unwrap();
        assert_eq!(req.role, Role::Viewer);
        assert_eq!(req.access_code.as_deref(), Some("k"));
        let req = parse(&[link, "--role", "both"]).request().unwrap().unwrap();
        assert_eq!(req.role, Role::Both);
    }

    #[test]
    fn a_room_and_a_presentation_grow_by_default() {
        let shape = |args: &[&str]| {
            let mut all = vec!["--server", "ws://h:1", "--room", "r", "--name", "Ada"];
            all.extend_from_slice(args);
            parse(&all).request().unwrap().unwrap().shape
        };
        assert_eq!(shape(&[]), RoomShape::Cells);
        assert_eq!(shape(&["--shape", "mesh"]), RoomShape::Mesh);
        assert_eq!(shape(&["--role", "publisher"]), RoomShape::Cells);
        assert_eq!(shape(&["--role", "viewer"]), RoomShape::Cells);
        assert_eq!(
            shape(&["--role", "publisher", "--shape", "tree"]),
            RoomShape::Tree
        );
    }
}
