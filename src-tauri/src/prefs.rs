//! What the app remembers between runs: the last name and server, and recent rooms.

use std::path::{Path, PathBuf};

use tracing::warn;

use crate::types::{Prefs, RecentRoom};

/// Recent rooms kept.
pub const MAX_RECENT: usize = 8;

/// The prefs file inside a config directory.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("prefs.json")
}

/// Reads the prefs; a missing or unreadable file gives the defaults (and a log line).
pub fn load(path: &Path) -> Prefs {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!(path = %path.display(), error = %e, "prefs unreadable; starting afresh");
            Prefs::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Prefs::default(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "prefs unreadable; starting afresh");
            Prefs::default()
        }
    }
}

/// Records a join: the name, the server, and the room first among the recent ones. A user
/// who has been in a call is past the first run (the device check is not shown again).
pub fn remember(prefs: &mut Prefs, name: &str, server: &str, room: &str) {
    prefs.checked = true;
    prefs.name = name.to_owned();
    prefs.server = server.to_owned();
    let entry = RecentRoom {
        server: server.to_owned(),
        room: room.to_owned(),
    };
    prefs.recent.retain(|r| *r != entry);
    prefs.recent.insert(0, entry);
    prefs.recent.truncate(MAX_RECENT);
}

/// Writes the prefs (via a temporary file, so a crash never leaves half a file).
pub fn save(path: &Path, prefs: &Prefs) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(prefs).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_rooms_most_recent_first_without_duplicates() {
        let mut prefs = Prefs::default();
        for i in 0..10 {
            remember(&mut prefs, "Ada", "ws://a", &format!("room{i}"));
        }
        remember(&mut prefs, "Ada L", "ws://a", "room5");
        assert_eq!(prefs.name, "Ada L");
        assert!(prefs.checked, "past the first run once in a call");
        assert_eq!(prefs.recent.len(), MAX_RECENT);
        assert_eq!(prefs.recent[0].room, "room5");
        assert_eq!(prefs.recent.iter().filter(|r| r.room == "room5").count(), 1);
    }

    #[test]
    fn survives_a_missing_or_corrupt_file_and_round_trips() {
        let dir = std::env::temp_dir().join(format!("plenum-prefs-{}", std::process::id()));
        let path = path_in(&dir);
        assert_eq!(load(&path), Prefs::default());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(load(&path), Prefs::default());
        let mut prefs = Prefs::default();
        remember(&mut prefs, "Bob", "ws://b", "standup");
        save(&path, &prefs).unwrap();
        assert_eq!(load(&path), prefs);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
