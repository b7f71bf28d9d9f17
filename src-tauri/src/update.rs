//! Updates: a signed manifest checked at start and on request, installed only on consent.
//!
//! The release build carries the public half of the release key (`plugins.updater.pubkey`,
//! put there by `scripts/release.sh`) and the manifest's address (`endpoints`;
//! `PLENUM_UPDATE_URL` overrides it). A package is installed only when its minisign signature
//! verifies against that key and was made for the version the manifest announces, and only
//! when that version is newer than ours: a bad signature, a downgrade and an unreachable
//! server each end in a sentence for the user and leave the installed app as it was (the
//! updater writes a package only once it has verified all of it).

use std::sync::{Arc, Mutex};

use tauri::utils::config::BundleType;
use tauri::{AppHandle, Runtime};
use tauri_plugin_updater::{Error as UpdaterError, Update, UpdaterExt};
use url::Url;

use crate::types::{CommandError, ErrorKind, UpdateInfo, UpdateView};

/// Overrides the manifest's address given at build time.
pub const URL_ENV: &str = "PLENUM_UPDATE_URL";

/// The manifest's address: `PLENUM_UPDATE_URL`, else the first configured endpoint. HTTPS, or
/// plain HTTP to this machine only (a test's or a mirror's local server): the signature
/// guards the package, TLS guards which version is announced.
pub fn endpoint(configured: &[Url], env: Option<&str>) -> Result<Option<Url>, CommandError> {
    let url = match env.map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => Url::parse(text).map_err(|e| {
            CommandError::new(
                ErrorKind::Update,
                format!("{URL_ENV} is not a URL ({text:?}: {e})"),
            )
        })?,
        None => match configured.first() {
            Some(url) => url.clone(),
            None => return Ok(None),
        },
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(Some(url)),
        "http" if loopback => Ok(Some(url)),
        _ => Err(CommandError::new(
            ErrorKind::Update,
            format!("updates are fetched over https only, not from {url}"),
        )),
    }
}

/// Finds out whether the update server offers a newer version: what to show, and the update
/// to install.
async fn find<R: Runtime>(
    app: &AppHandle<R>,
) -> Result<(UpdateView, Option<Update>), CommandError> {
    let current = app.package_info().version.to_string();
    let config = app.config().plugins.0.get("updater").cloned();
    let setting = |key: &str| config.as_ref().and_then(|c| c.get(key)).cloned();
    let has_key = setting("pubkey")
        .and_then(|k| k.as_str().map(|k| !k.trim().is_empty()))
        .unwrap_or(false);
    let configured: Vec<Url> = setting("endpoints")
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    let env = std::env::var(URL_ENV).ok();
    let url = match endpoint(&configured, env.as_deref())? {
        Some(url) if has_key => url,
        _ => {
            return Err(CommandError::new(
                ErrorKind::Update,
                "this build of Plenum has no update server or release key: it was not built by the release script",
            ));
        }
    };
    // The version the server announced, for a refusal that says what was offered.
    let offered: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = Arc::clone(&offered);
    let updater = app
        .updater_builder()
        .endpoints(vec![url.clone()])
        .and_then(|b| {
            b.version_comparator(move |current, remote| {
                if let Ok(mut slot) = seen.lock() {
                    *slot = Some(remote.version.to_string());
                }
                remote.version > current
            })
            .build()
        })
        .map_err(|e| explain(e, &url))?;
    let update = updater.check().await.map_err(|e| explain(e, &url))?;
    let offered = offered.lock().ok().and_then(|o| o.clone());
    let view = UpdateView {
        current: current.clone(),
        server: url.to_string(),
        available: update.as_ref().map(|u| UpdateInfo {
            version: u.version.clone(),
            notes: u.body.clone().unwrap_or_default(),
            date: u.date.map(|d| d.to_string()),
        }),
        note: match (&update, offered) {
            (Some(_), _) => None,
            (None, Some(v)) if v != current => Some(format!(
                "The update server offers {v}, which is older than this Plenum {current}: it is not installed."
            )),
            (None, _) => Some(format!("Plenum {current} is up to date.")),
        },
    };
    Ok((view, update))
}

/// What the update server offers.
pub async fn check<R: Runtime>(app: &AppHandle<R>) -> Result<UpdateView, CommandError> {
    find(app).await.map(|(view, _)| view)
}

/// Downloads, verifies and installs the newer version the server offers (the user said yes),
/// and answers the version installed. The caller restarts into it.
pub async fn install<R: Runtime>(app: &AppHandle<R>) -> Result<String, CommandError> {
    let (view, update) = find(app).await?;
    let Some(update) = update else {
        return Err(CommandError::new(
            ErrorKind::Update,
            view.note.unwrap_or_else(|| "no update to install".into()),
        ));
    };
    let url = update.download_url.clone();
    let version = update.version.clone();
    update
        .download_and_install(|_, _| {}, || {})
        .await
        .map_err(|e| explain(e, &url))?;
    tracing::info!(%version, "update installed");
    Ok(version)
}

/// Ends this app and starts the version just installed. An AppImage restarts from its file
/// (which now holds the new version), once this one's files are gone: its runtime removes
/// (or unmounts) them when this process ends, and a new start must not unpack into them
/// meanwhile. Run without FUSE (`--appimage-extract-and-run`), the app runs from an
/// extracted copy, which is what Tauri's own restart would start again.
pub fn restart<R: Runtime>(app: &AppHandle<R>) -> ! {
    let appimage = std::env::var_os("APPIMAGE")
        .filter(|_| tauri::utils::platform::bundle_type() == Some(BundleType::AppImage));
    if let Some(appimage) = appimage {
        let appdir = std::env::var_os("APPDIR").unwrap_or_default();
        let mounted = appdir.to_string_lossy().contains("/.mount_");
        // Waits (10 s at most) for this instance's files to go, then starts the AppImage.
        let script = r#"i=0; while [ -n "$1" ] && [ -e "$1" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done; shift; exec "$@""#;
        let mut command = std::process::Command::new("/bin/sh");
        command
            .args(["-c", script, "plenum-restart"])
            .arg(&appdir)
            .arg(&appimage)
            .args(std::env::args_os().skip(1))
            .current_dir("/");
        if !mounted {
            command.env("APPIMAGE_EXTRACT_AND_RUN", "1");
        }
        // The new process must find the single-instance name free.
        app.cleanup_before_exit();
        match command.spawn() {
            Ok(_) => std::process::exit(0),
            Err(e) => {
                tracing::warn!(error = %e, "the new version did not start; restarting as before")
            }
        }
    }
    app.restart()
}

/// A sentence for an updater error.
fn explain(error: UpdaterError, url: &Url) -> CommandError {
    let message = match &error {
        UpdaterError::Minisign(_) | UpdaterError::Base64(_) | UpdaterError::SignatureUtf8(_) => {
            format!(
                "the update's signature does not match this app's release key ({error}); nothing was installed"
            )
        }
        UpdaterError::SignedVersionMismatch { .. } | UpdaterError::MissingSignedVersion => {
            format!("{error}; nothing was installed")
        }
        UpdaterError::Reqwest(_) | UpdaterError::Network(_) => {
            format!("the update server at {url} could not be reached ({error})")
        }
        UpdaterError::ReleaseNotFound | UpdaterError::Serialization(_) => {
            format!("the update server at {url} did not answer with an update manifest ({error})")
        }
        _ => format!("the update failed: {error}"),
    };
    CommandError::new(ErrorKind::Update, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<Url> {
        list.iter().map(|u| Url::parse(u).unwrap()).collect()
    }

    #[test]
    fn the_manifest_comes_over_https_or_from_this_machine() {
        let https = urls(&["https://updates.example/latest.json"]);
        assert_eq!(endpoint(&https, None).unwrap(), Some(https[0].clone()));
        assert_eq!(endpoint(&[], None).unwrap(), None);
        for local in [
            "http://127.0.0.1:8000/l.json",
            "http://[::1]:80/l.json",
            "http://localhost/l.json",
        ] {
            assert!(endpoint(&https, Some(local)).unwrap().is_some(), "{local}");
        }
        for refused in [
            "http://updates.example/l.json",
            "http://10.0.0.5/l.json",
            "ftp://127.0.0.1/l.json",
            "not a url",
        ] {
            let e = endpoint(&[], Some(refused)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Update, "{refused}");
        }
        // The environment overrides the built-in address; blank does not.
        let local = endpoint(&https, Some("http://127.0.0.1:9/x"))
            .unwrap()
            .unwrap();
        assert_eq!(local.port(), Some(9));
        assert_eq!(
            endpoint(&https, Some("  ")).unwrap(),
            Some(https[0].clone())
        );
    }
}
