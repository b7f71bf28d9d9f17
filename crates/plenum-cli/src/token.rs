//! `plenum token`: mints a room token with the server's secret.

use plenum::{Claims, Grants};
use plenum_proto::{DisplayName, RoomName};

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// The file holding the secret `plenum serve --token-secret-file` was started with.
    #[arg(long)]
    secret_file: std::path::PathBuf,
    /// The room the token admits to.
    #[arg(long)]
    room: String,
    /// The display name its holder appears under.
    #[arg(long)]
    name: String,
    /// How long it is valid: seconds, or a number with s, m, h or d (default 1h).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
    /// Receive only: the holder may not publish audio, video or a screen.
    #[arg(long)]
    viewer: bool,
    /// Grant room administration.
    #[arg(long, conflicts_with = "viewer")]
    admin: bool,
}

/// `90`, `90s`, `15m`, `1h`, `2d` as seconds.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 2d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?}; use s, m, h or d")),
    };
    n.checked_mul(scale)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("{text:?} is not a positive duration"))
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    let secret = crate::serve::read_secret(&args.secret_file)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let grants = if args.viewer {
        Grants::VIEWER
    } else {
        Grants {
            admin: args.admin,
            ..Grants::PARTICIPANT
        }
    };
    let claims = Claims {
        room: RoomName::new(args.room)?,
        name: DisplayName::new(args.name)?,
        exp: now + args.ttl,
        grants,
    };
    println!("{}", claims.mint(&secret));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("2d"), Ok(172_800));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("99999999999999999999d").is_err());
    }
}
