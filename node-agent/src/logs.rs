//! Container logs: one file per container instance, a line per write, in the CRI format
//! Kubernetes uses (`<RFC 3339 nanos> <stdout|stderr> <F|P> <text>`), rotated by size.
//!
//! `F` marks a full line, `P` a partial one (a line longer than the buffer, or output
//! without a final newline). Rotation renames `x.log` to `x.log.1` (and `.1` to `.2`, …),
//! keeping `max_files` files in all.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Size limits of one container's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate when the current file would grow beyond this.
    pub max_bytes: u64,
    /// Files kept, the current one included (at least 1).
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Appends timestamped lines to a container's log file, rotating it by size.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    written: u64,
    rotation: Rotation,
}

impl LogWriter {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<LogWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            written,
            rotation,
        })
    }

    /// Writes one entry; `partial` when `text` does not end a line.
    pub fn write_entry(&mut self, stream: Stream, text: &[u8], partial: bool) -> io::Result<()> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let tag = if partial { "P" } else { "F" };
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(now.as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.as_str().as_bytes());
        line.push(b' ');
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(text.strip_suffix(b"\n").unwrap_or(text));
        line.push(b'\n');
        if self.written > 0 && self.written + line.len() as u64 > self.rotation.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.max_files.max(1);
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if keep == 1 {
            self.file.set_len(0)?;
        } else {
            let _ = std::fs::remove_file(numbered(keep - 1));
            for n in (1..keep - 1).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.written = 0;
        Ok(())
    }
}

/// One log entry, parsed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub text: &'a str,
}

/// Parses a line written by [`LogWriter`]; None for anything else.
pub fn parse_line(line: &str) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    if !matches!(stream, "stdout" | "stderr") || !matches!(tag, "F" | "P") {
        return None;
    }
    Some(Entry {
        time,
        stream,
        partial: tag == "P",
        text,
    })
}

/// What `logs` prints for an entry: the text (a newline unless it was partial), with the
/// timestamp in front when asked, as `kubectl logs --timestamps` does.
pub fn render(entry: &Entry, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(entry.time.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(entry.text.as_bytes());
    if !entry.partial {
        out.push(b'\n');
    }
}

/// The files of one log, oldest first: `x.log.N`, …, `x.log.1`, `x.log`.
pub fn files_of(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let prefix = format!("{}.", name.to_string_lossy());
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if let Some(n) = file.strip_prefix(&prefix).and_then(|n| n.parse().ok()) {
                    rotated.push((n, entry.path()));
                }
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    files.push(path.to_path_buf());
    files
}

/// Deletes a container's older logs: in the directory of `kept` (one container's logs,
/// `<attempt>.log` and their rotated `<attempt>.log.N`), every log file that is not one of
/// `kept`'s. The agent keeps the current and the previous attempt's, as the kubelet does, so
/// a crash-looping container cannot fill the disk with attempts. Returns what was deleted.
pub fn keep_only(kept: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let Some(dir) = kept.first().and_then(|p| p.parent()) else {
        return Ok(Vec::new());
    };
    let keep: std::collections::HashSet<PathBuf> = kept.iter().flat_map(|p| files_of(p)).collect();
    let is_log = |name: &str| {
        let (attempt, rest) = name.split_once(".log").unwrap_or(("", ""));
        !attempt.is_empty()
            && attempt.bytes().all(|b| b.is_ascii_digit())
            && (rest.is_empty()
                || rest
                    .strip_prefix('.')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
    };
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if keep.contains(&path) || !name.as_deref().is_some_and(is_log) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    removed.sort();
    Ok(removed)
}

/// The rendered log (rotated files included), or its last `tail` entries.
pub fn read(path: &Path, tail: Option<usize>, timestamps: bool) -> io::Result<Vec<u8>> {
    read_since(path, tail, timestamps, None)
}

/// [`read`], with `since` (a time as [`LogWriter`] writes them) only the entries written
/// from then on (kubectl's --since; `tail` counts from the end of those).
pub fn read_since(
    path: &Path,
    tail: Option<usize>,
    timestamps: bool,
    since: Option<&str>,
) -> io::Result<Vec<u8>> {
    let mut lines = Vec::new();
    for file in files_of(path) {
        match std::fs::read_to_string(&file) {
            Ok(text) => lines.extend(text.lines().map(str::to_string)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    // The times are fixed-width UTC (nanoseconds, `Z`): they sort as text.
    let entries: Vec<Entry> = lines
        .iter()
        .filter_map(|l| parse_line(l))
        .filter(|e| since.is_none_or(|since| e.time >= since))
        .collect();
    let skip = tail.map(|n| entries.len().saturating_sub(n)).unwrap_or(0);
    let mut out = Vec::new();
    for entry in &entries[skip..] {
        render(entry, timestamps, &mut out);
    }
    Ok(out)
}

/// Follows the current log file from its end (or from `offset`), across rotations.
pub struct Follower {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
}

impl Follower {
    /// Starts after everything the file holds now.
    pub fn from_end(path: &Path) -> Follower {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Follower {
            path: path.to_path_buf(),
            offset,
            pending: Vec::new(),
        }
    }

    /// Rendered entries written since the last call.
    pub fn poll(&mut self, timestamps: bool) -> io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len < self.offset {
            // Rotated: the current file is a new one.
            self.offset = 0;
            self.pending.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)?;
        self.offset += fresh.len() as u64;
        self.pending.extend_from_slice(&fresh);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Some(entry) = parse_line(&line) {
                render(&entry, timestamps, &mut out);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_timestamped_and_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
        w.write_entry(Stream::Stdout, b"hello\n", false).unwrap();
        w.write_entry(Stream::Stderr, b"par", true).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let (time, rest) = lines[0].split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert_eq!(rest, "stdout F hello");
        assert!(lines[1].ends_with(" stderr P par"));
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = Rotation {
            max_bytes: 200,
            max_files: 3,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        for i in 0..40 {
            w.write_entry(Stream::Stdout, format!("line {i:03}").as_bytes(), false)
                .unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["0.log", "0.log.1", "0.log.2"]);
        for name in &names {
            let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(size <= 200, "{name}: {size} bytes");
        }
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.trim_end().ends_with("line 039"));
    }

    #[test]
    fn read_tail_and_timestamps_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = Rotation {
            max_bytes: 150,
            max_files: 10,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        for i in 0..10 {
            w.write_entry(Stream::Stdout, format!("line {i}").as_bytes(), false)
                .unwrap();
        }
        w.write_entry(Stream::Stderr, b"no newline", true).unwrap();
        assert!(files_of(&path).len() > 2, "rotated");
        let all = String::from_utf8(read(&path, None, false).unwrap()).unwrap();
        let expected: String = (0..10).map(|i| format!("line {i}\n")).collect();
        assert_eq!(all, format!("{expected}no newline"));
        let last = String::from_utf8(read(&path, Some(2), false).unwrap()).unwrap();
        assert_eq!(last, "line 9\nno newline");
        let stamped = String::from_utf8(read(&path, Some(1), true).unwrap()).unwrap();
        let (time, text) = stamped.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok());
        assert_eq!(text, "no newline");
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn since_leaves_out_the_lines_written_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let line = |time: &str, text: &str| format!("{time} stdout F {text}\n");
        let text = [
            line("2026-12-07T10:00:00.000000000Z", "old"),
            line("2026-12-07T10:00:05.000000000Z", "edge"),
            line("2026-12-07T10:00:09.999999999Z", "new"),
        ]
        .concat();
        std::fs::write(&path, text).unwrap();
        let since = |from: Option<&str>, tail: Option<usize>| {
            String::from_utf8(read_since(&path, tail, false, from).unwrap()).unwrap()
        };
        assert_eq!(since(None, None), "old\nedge\nnew\n");
        // From the cutoff on, inclusive; the tail counts within what is left.
        assert_eq!(
            since(Some("2026-12-07T10:00:05.000000000Z"), None),
            "edge\nnew\n"
        );
        assert_eq!(
            since(Some("2026-12-07T10:00:01.000000000Z"), Some(1)),
            "new\n"
        );
        assert_eq!(since(Some("2026-12-07T11:00:00.000000000Z"), None), "");
    }

    #[test]
    fn follow_sees_new_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let rotation = Rotation {
            max_bytes: 120,
            max_files: 2,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        w.write_entry(Stream::Stdout, b"before", false).unwrap();
        let mut f = Follower::from_end(&path);
        assert!(f.poll(false).unwrap().is_empty());
        w.write_entry(Stream::Stdout, b"one", false).unwrap();
        assert_eq!(f.poll(false).unwrap(), b"one\n");
        let mut seen = Vec::new();
        for i in 0..6 {
            w.write_entry(Stream::Stdout, format!("n{i}").as_bytes(), false)
                .unwrap();
            seen.extend(f.poll(false).unwrap());
        }
        assert_eq!(String::from_utf8(seen).unwrap(), "n0\nn1\nn2\nn3\nn4\nn5\n");
    }

    #[test]
    fn only_the_kept_attempts_logs_stay() {
        let dir = tempfile::tempdir().unwrap();
        let log = |name: &str| dir.path().join(name);
        for name in [
            "0.log", "0.log.1", "1.log", "2.log.1", "2.log", "3.log", "notes",
        ] {
            std::fs::write(log(name), "x").unwrap();
        }
        let removed = keep_only(&[log("2.log"), log("3.log")]).unwrap();
        assert_eq!(removed, [log("0.log"), log("0.log.1"), log("1.log")]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["2.log", "2.log.1", "3.log", "notes"]);
    }
}
