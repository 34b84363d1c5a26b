//! Data keys in files, beside the file log: `<data_dir>/keys/<batch>.keys`, one file per batch
//! of fresh keys, one line per key: `<key id> <wrapped key>`, or `<key id> -` once destroyed.
//! Files and directory are readable by the owner only.
//!
//! Every change writes a whole new file (a temporary file, flushed to disk, renamed over the
//! old one, the directory flushed), so a crash leaves the old file or the new one, never half
//! of either. Destroying a key rewrites its batch's file without the key's bytes: the key
//! is gone from the live file at once (a copy a backup took, or a block the file system has
//! not reused yet, is outside Roster's reach: see docs/operations.md).

use super::{KeyError, KeyStore, Known};
use crate::datadir;
use async_trait::async_trait;
use roster_events::{KeyId, Sealed};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

const SUFFIX: &str = ".keys";
/// One line of a key file: a key id and its wrapped key (None once destroyed).
type Line = (KeyId, Option<Sealed>);
const DESTROYED: &str = "-";

/// The key files of one data directory.
pub struct FileKeys {
    dir: PathBuf,
    /// Which batch file holds each key.
    batch_of: Mutex<HashMap<KeyId, Uuid>>,
    /// One change at a time (the file log's process is the only writer of the directory).
    writing: tokio::sync::Mutex<()>,
}

impl FileKeys {
    /// The key files in `data_dir/keys` (created on first use).
    pub fn new(data_dir: &Path) -> FileKeys {
        FileKeys {
            dir: data_dir.join("keys"),
            batch_of: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    fn path(&self, batch: Uuid) -> PathBuf {
        self.dir.join(format!("{batch}{SUFFIX}"))
    }
}

fn io(context: &str, path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Unavailable(format!("{context} {}: {e}", path.display()))
}

/// The lines of one key file.
fn parse(path: &Path, text: &str) -> Result<Vec<Line>, KeyError> {
    let damaged = |n: usize| {
        KeyError::Damaged(format!(
            "{} line {}: not `<key id> <wrapped key>`; restore the file from a backup",
            path.display(),
            n + 1
        ))
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let (id, key) = line.split_once(' ').ok_or_else(|| damaged(n))?;
        let id = KeyId(Uuid::parse_str(id).map_err(|_| damaged(n))?);
        let key = match key {
            DESTROYED => None,
            k if k.starts_with("v1:") => Some(Sealed(k.to_owned())),
            _ => return Err(damaged(n)),
        };
        out.push((id, key));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(KeyError::Damaged(format!(
            "{} ends in the middle of a line; restore it from a backup",
            path.display()
        )));
    }
    Ok(out)
}

fn render(keys: &[Line]) -> String {
    let mut out = String::with_capacity(keys.len() * 128);
    for (id, key) in keys {
        out.push_str(&id.to_string());
        out.push(' ');
        out.push_str(key.as_ref().map_or(DESTROYED, |k| k.0.as_str()));
        out.push('\n');
    }
    out
}

/// Replaces `path` with `text` atomically and durably.
fn replace(dir: &Path, path: &Path, text: &str) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = datadir::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| io("writing", path, e))
}

/// Every key file of `dir`: its batch id and its lines.
fn load(dir: &Path) -> Result<Vec<(Uuid, Vec<Line>)>, KeyError> {
    datadir::create_dir(dir).map_err(|e| io("creating", dir, e))?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io("reading", dir, e))? {
        let path = entry.map_err(|e| io("reading", dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".tmp") {
            // A change that crashed before its rename: the old file is still in place.
            std::fs::remove_file(&path).map_err(|e| io("removing", &path, e))?;
            continue;
        }
        let Some(batch) = name
            .strip_suffix(SUFFIX)
            .and_then(|b| Uuid::parse_str(b).ok())
        else {
            return Err(KeyError::Damaged(format!(
                "{} is not a key file; key files are named <uuid>{SUFFIX}",
                path.display()
            )));
        };
        datadir::tighten(&path).map_err(|e| io("securing", &path, e))?;
        let text = std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))?;
        out.push((batch, parse(&path, &text)?));
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, KeyError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KeyError::Unavailable(format!("key file task: {e}")))?
}

#[async_trait]
impl KeyStore for FileKeys {
    async fn start(&self, known: Arc<Known>) -> Result<(), KeyError> {
        let dir = self.dir.clone();
        let batches = blocking(move || load(&dir)).await?;
        let mut batch_of = self.batch_of.lock().unwrap_or_else(|p| p.into_inner());
        for (batch, keys) in batches {
            for (id, key) in keys {
                known.learn(id, key.as_ref())?;
                batch_of.insert(id, batch);
            }
        }
        Ok(())
    }

    async fn create(&self, keys: &[(KeyId, Sealed)]) -> Result<(), KeyError> {
        let _one = self.writing.lock().await;
        let batch = Uuid::now_v7();
        let (dir, path) = (self.dir.clone(), self.path(batch));
        let lines: Vec<Line> = keys.iter().map(|(id, k)| (*id, Some(k.clone()))).collect();
        let text = render(&lines);
        blocking(move || {
            datadir::create_dir(&dir).map_err(|e| io("creating", &dir, e))?;
            replace(&dir, &path, &text)
        })
        .await?;
        let mut batch_of = self.batch_of.lock().unwrap_or_else(|p| p.into_inner());
        batch_of.extend(keys.iter().map(|(id, _)| (*id, batch)));
        Ok(())
    }

    async fn destroy(&self, id: KeyId) -> Result<(), KeyError> {
        let _one = self.writing.lock().await;
        let batch = self
            .batch_of
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied();
        let Some(batch) = batch else {
            return Err(KeyError::Damaged(format!(
                "data key {id} is not in the key files"
            )));
        };
        let (dir, path) = (self.dir.clone(), self.path(batch));
        blocking(move || {
            let text = std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))?;
            let mut keys = parse(&path, &text)?;
            for (k, key) in &mut keys {
                if *k == id {
                    *key = None;
                }
            }
            replace(&dir, &path, &render(&keys))
        })
        .await
    }

    fn shared(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keyring;
    use crate::sealing::SecretKey;
    use roster_events::personal::KeyState;

    #[tokio::test]
    async fn keys_survive_a_restart_and_a_destroyed_key_leaves_its_file() {
        let data = tempfile::tempdir().unwrap();
        let secret = SecretKey::load(None, data.path()).unwrap();
        let ring = Keyring::open(Arc::new(FileKeys::new(data.path())), secret.clone())
            .await
            .unwrap();
        let ring = Arc::new(ring);
        let ids = ring.take(3).await.unwrap();
        let KeyState::Key(kept) = ring.state(ids[0]) else {
            panic!("a fresh key is known")
        };
        ring.destroy(ids[1]).await.unwrap();
        assert!(matches!(ring.state(ids[1]), KeyState::Erased));

        let files: Vec<_> = std::fs::read_dir(data.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "one batch, one file: {files:?}");
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains(&format!("{} -\n", ids[1])), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");

        let again = Keyring::open(Arc::new(FileKeys::new(data.path())), secret.clone())
            .await
            .unwrap();
        assert!(matches!(again.state(ids[0]), KeyState::Key(k) if k == kept));
        assert!(matches!(again.state(ids[1]), KeyState::Erased));
        assert!(matches!(again.state(KeyId::new()), KeyState::Unknown));

        let other = SecretKey::load(None, tempfile::tempdir().unwrap().path()).unwrap();
        let refused = Keyring::open(Arc::new(FileKeys::new(data.path())), other).await;
        assert!(matches!(refused, Err(KeyError::Damaged(_))));

        std::fs::write(&files[0], text.replace(" v1:", " x1:")).unwrap();
        let damaged = Keyring::open(Arc::new(FileKeys::new(data.path())), secret).await;
        assert!(matches!(damaged, Err(KeyError::Damaged(m)) if m.contains("line 1")));
    }
}
