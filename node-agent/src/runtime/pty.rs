//! Pseudo-terminals for `exec -t`: the agent keeps the master, the command (or the runtime
//! relaying for it) gets the slave as its stdin, stdout and stderr.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::OFlags;
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::unix::AsyncFd;

/// A terminal's window in character cells. Zero in either means "unknown" (a terminal
/// starts at 0×0 until someone sets it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

impl TerminalSize {
    fn winsize(self) -> Winsize {
        Winsize {
            ws_row: self.height,
            ws_col: self.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }
    }
}

/// The master side of a pty, read and written without blocking a thread: a command that
/// never writes (or a background process holding the slave) ties up nothing.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
}

impl Pty {
    /// A new pty of `size`, and its slave: opened close-on-exec and without becoming
    /// anyone's controlling terminal (the agent must never get one), so only the child
    /// given it as stdio holds it.
    pub fn open(size: TerminalSize) -> io::Result<(Pty, OwnedFd)> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        rustix::termios::tcsetwinsize(&slave, size.winsize())?;
        rustix::io::ioctl_fionbio(&master, true)?;
        // `new` is deprecated for types whose fd may change under it; an OwnedFd's cannot,
        // which is what the unsafe `register` would have us promise.
        #[allow(deprecated)]
        let master = AsyncFd::new(master)?;
        Ok((Pty { master }, slave))
    }

    /// Sets the window size. The kernel signals SIGWINCH to the terminal's foreground
    /// process group, if it has one.
    pub fn resize(&self, size: TerminalSize) -> io::Result<()> {
        rustix::termios::tcsetwinsize(self.master.get_ref(), size.winsize())?;
        Ok(())
    }

    /// The next output; 0 once every slave is closed (Linux says EIO then).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.master.readable().await?;
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *buf)?)) {
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Ok(0);
                }
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` (the terminal's input).
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut ready = self.master.writable().await?;
            match ready.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), data)?)) {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// The window size the slave side sees.
    pub fn size(&self) -> io::Result<TerminalSize> {
        let size = rustix::termios::tcgetwinsize(self.master.get_ref())?;
        Ok(TerminalSize {
            width: size.ws_col,
            height: size.ws_row,
        })
    }
}

/// Makes `slave` a raw terminal: for a relay (runc) that runs the command on a pty of its
/// own, so that this one passes bytes through without echoing or translating them twice.
pub fn make_raw(slave: impl AsFd) -> io::Result<()> {
    let mut termios = rustix::termios::tcgetattr(&slave)?;
    termios.make_raw();
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &termios)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pty_carries_bytes_both_ways_reports_its_size_and_ends_when_the_slave_closes() {
        let size = TerminalSize {
            width: 91,
            height: 17,
        };
        let (pty, slave) = Pty::open(size).unwrap();
        assert_eq!(pty.size().unwrap(), size);
        make_raw(&slave).unwrap();
        pty.write_all(b"to the slave").await.unwrap();
        let mut buf = [0u8; 64];
        let n = rustix::io::read(&slave, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"to the slave");
        rustix::io::write(&slave, b"to the master").unwrap();
        let n = pty.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"to the master");
        let bigger = TerminalSize {
            width: 120,
            height: 40,
        };
        pty.resize(bigger).unwrap();
        let seen = rustix::termios::tcgetwinsize(&slave).unwrap();
        assert_eq!((seen.ws_col, seen.ws_row), (120, 40));
        drop(slave);
        assert_eq!(pty.read(&mut buf).await.unwrap(), 0);
    }
}
