//! Members of a `.tar`, `.tar.gz` or `.tar.xz` archive (recognised by content), read into memory with a cap
//! on the decompressed size, so a wrong path or a decompression bomb cannot exhaust memory.
use crate::error::DataError;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The most bytes an archive may decompress to.
pub const MAX_ARCHIVE_BYTES: usize = 1 << 30;

/// One member: its path shown in errors (`archive/member`) and its bytes.
pub struct Member {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Reads the members whose file name `want` maps to a key; a key found twice is an error
/// naming both members.
pub fn read_members(
    path: &Path,
    want: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<String, Member>, DataError> {
    read_members_by_path(path, |member| {
        member.file_name().and_then(|f| f.to_str()).and_then(&want)
    })
}

/// As [`read_members`], with `want` given the member's whole path inside the archive.
pub fn read_members_by_path(
    path: &Path,
    want: impl Fn(&Path) -> Option<String>,
) -> Result<HashMap<String, Member>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let tar_bytes = if raw.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        let mut out = CappedWriter {
            buf: Vec::new(),
            cap: MAX_ARCHIVE_BYTES,
        };
        lzma_rs::xz_decompress(&mut &raw[..], &mut out)
            .map_err(|e| DataError::format(path, format!("cannot decompress xz data: {e}")))?;
        out.buf
    } else if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = CappedWriter {
            buf: Vec::new(),
            cap: MAX_ARCHIVE_BYTES,
        };
        std::io::copy(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .map_err(|e| DataError::format(path, format!("cannot decompress gzip data: {e}")))?;
        out.buf
    } else {
        raw
    };
    let corrupt =
        |e: std::io::Error| DataError::format(path, format!("not a readable tar archive: {e}"));
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut found: HashMap<String, Member> = HashMap::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let member = entry.path().map_err(corrupt)?.into_owned();
        let Some(key) = want(&member) else {
            continue;
        };
        let shown = path.join(&member);
        if let Some(other) = found.get(&key) {
            return Err(DataError::format(
                path,
                format!(
                    "the archive holds {} twice ({} and {}); unpack it and pass the folder",
                    member.file_name().unwrap_or_default().to_string_lossy(),
                    other.path.display(),
                    shown.display()
                ),
            ));
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(corrupt)?;
        found.insert(key, Member { path: shown, bytes });
    }
    Ok(found)
}

struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
}

impl Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            return Err(std::io::Error::other(format!(
                "decompressed archive is larger than {} bytes (refused)",
                self.cap
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
