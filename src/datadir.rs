//! The data directory's files and folders: created readable by their owner only, since they
//! hold personal data, password hashes and sealed secrets, and tightened at start when an
//! older release (or a restore) left them readable by others. Which files live there is up
//! to their owners (the file log, the secret key, the providers' state); this module owns
//! only how they are created.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every folder Roster creates.
const DIR_MODE: u32 = 0o700;
/// Mode of every file Roster creates.
const FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents, each readable by the owner only; tightens `path`
/// itself when it exists with looser permissions.
///
/// Fails when a folder cannot be created or its permissions changed.
pub fn create_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    tighten(path)
}

/// Options that create a file readable by the owner only (permissions of an existing file
/// are left as they are: see [`tighten`]).
pub fn file_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Removes group and other permissions from an existing file or folder, saying so in the log
/// when it had to.
///
/// Fails when the permissions cannot be read or changed.
pub fn tighten(path: &Path) -> io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if current & 0o077 != 0 {
        let now = current & !0o077;
        std::fs::set_permissions(path, Permissions::from_mode(now))?;
        tracing::warn!(
            path = %path.display(),
            was = format!("{current:o}"),
            now = format!("{now:o}"),
            "made readable by its owner only"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn folders_and_files_are_created_and_tightened_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let file = dir.join("f");
        file_options().write(true).create(true).open(&file).unwrap();
        assert_eq!(mode(&file), 0o600);

        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        tighten(&file).unwrap();
        create_dir(&dir).unwrap();
        assert_eq!((mode(&file), mode(&dir)), (0o600, 0o700));
    }
}
