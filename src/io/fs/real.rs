//! The real directory: files on the local filesystem. Creation allocates the whole file with
//! `fallocate` (blocks reserved, so writes inside it never hit a full disk), writes use
//! `pwrite` into the page cache, and `sync` is `fdatasync` on the blocking pool so the runtime
//! never waits on the disk.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The suffix of a file being created.
const TMP_SUFFIX: &str = ".tmp";

/// A directory on disk, with its files kept open.
#[derive(Clone)]
pub struct RealDir {
    path: PathBuf,
    open: Arc<Mutex<BTreeMap<String, Arc<File>>>>,
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(io::Error::other(format!("file task: {e}"))),
    }
}

/// Allocates `len` bytes of `file` (zeros), falling back to writing zeros where the
/// filesystem has no `fallocate`.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on a valid, open file descriptor with in-range arguments.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(e);
    }
    let zeros = vec![0u8; 1 << 20];
    let mut at = file.metadata()?.len();
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

impl RealDir {
    /// Opens directory `path`, creating it if needed, and removes what an interrupted
    /// creation left behind.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        std::fs::create_dir_all(&path)?;
        for e in std::fs::read_dir(&path)? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
                tracing::warn!(file = %e.path().display(), "removing a file whose creation did not finish");
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(RealDir {
            path,
            open: Arc::new(Mutex::new(BTreeMap::new())),
        })
    }

    /// Where the directory is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, name: &str) -> io::Result<Arc<File>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = open.get(name) {
            return Ok(f.clone());
        }
        let f = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path.join(name))?,
        );
        open.insert(name.to_string(), f.clone());
        Ok(f)
    }

    pub(super) fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&self.path)? {
            let e = e?;
            if e.file_type()?.is_file() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    pub(super) fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        std::fs::read(self.path.join(name))
    }

    pub(super) fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.file(name)?.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    pub(super) async fn create(&self, name: &str, len: u64, head: &[u8]) -> io::Result<()> {
        let path = self.path.clone();
        let file_path = path.join(name);
        let tmp_path = path.join(format!("{name}{TMP_SUFFIX}"));
        let head = head.to_vec();
        let file = blocking(move || {
            if file_path.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", file_path.display()),
                ));
            }
            // Made whole under a temporary name, then renamed: a crash halfway leaves no file
            // that looks like a finished one.
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp_path)?;
            let made = allocate(&f, len).and_then(|()| {
                f.write_all(&head)?;
                f.sync_all()?;
                std::fs::rename(&tmp_path, &file_path)?;
                sync_dir(&path)
            });
            if let Err(e) = made {
                // Never leave a half-made file behind (a full disk must not break the next
                // start).
                drop(f);
                let _ = std::fs::remove_file(&tmp_path);
                return Err(e);
            }
            Ok(f)
        })
        .await?;
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::new(file));
        Ok(())
    }

    pub(super) fn write_at(&self, name: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file(name)?.write_all_at(data, offset)
    }

    pub(super) async fn sync(&self, name: &str) -> io::Result<()> {
        let f = self.file(name)?;
        blocking(move || f.sync_data()).await
    }

    pub(super) async fn zero_from(&self, name: &str, offset: u64) -> io::Result<()> {
        let f = self.file(name)?;
        blocking(move || {
            let len = f.metadata()?.len();
            if offset >= len {
                return Ok(());
            }
            // Zeroed in place: the blocks stay allocated (freeing and reallocating them could
            // fail on a full disk).
            // SAFETY: fallocate on a valid, open file descriptor with in-range arguments.
            let r = unsafe {
                libc::fallocate(
                    f.as_raw_fd(),
                    libc::FALLOC_FL_ZERO_RANGE,
                    offset as libc::off_t,
                    (len - offset) as libc::off_t,
                )
            };
            if r != 0 {
                let zeros = vec![0u8; 1 << 20];
                let mut at = offset;
                while at < len {
                    let n = (len - at).min(zeros.len() as u64) as usize;
                    f.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
            }
            f.sync_all()
        })
        .await
    }

    pub(super) async fn remove(&self, name: &str) -> io::Result<()> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let path = self.path.clone();
        let name = name.to_string();
        blocking(move || {
            std::fs::remove_file(path.join(&name))?;
            sync_dir(&path)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_preallocated_written_zeroed_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let d = RealDir::open(tmp.path().join("wal")).unwrap();
        d.create("a", 4096, b"head").await.unwrap();
        assert!(d.create("a", 4096, b"x").await.is_err(), "no overwrite");
        d.write_at("a", 100, b"data").unwrap();
        d.sync("a").await.unwrap();
        let content = d.read("a").unwrap();
        assert_eq!(content.len(), 4096);
        assert_eq!(&content[..4], b"head");
        assert_eq!(&content[100..104], b"data");
        d.zero_from("a", 102).await.unwrap();
        let content = d.read("a").unwrap();
        assert_eq!(content.len(), 4096, "still allocated");
        assert_eq!(&content[100..104], b"da\0\0");
        assert_eq!(d.list().unwrap(), vec!["a".to_string()]);
        d.remove("a").await.unwrap();
        assert!(d.list().unwrap().is_empty());
    }
}
