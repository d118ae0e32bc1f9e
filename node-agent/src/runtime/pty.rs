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

/// How an exec's command is given its terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slave {
    /// The command itself runs on the slave, as it is.
    Direct,
    /// A relay (runc) runs the command on a pty of its own: the slave is made raw at once,
    /// so input written before the relay sets up its own is not echoed or cooked by this
    /// outer terminal too.
    Raw,
}

/// Sets `command`'s stdin, stdout and stderr: the slave of a new pty of `tty`'s size
/// (returning its master), or pipes without one. `command` holds the slave: once it has
/// spawned and is dropped, only the child has it, and the master reads end of file when
/// the child is gone.
pub fn exec_stdio(
    command: &mut tokio::process::Command,
    tty: Option<TerminalSize>,
    slave_as: Slave,
) -> io::Result<Option<Pty>> {
    let Some(size) = tty else {
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        return Ok(None);
    };
    let (pty, slave) = Pty::open(size)?;
    if slave_as == Slave::Raw {
        make_raw(&slave)?;
    }
    command
        .stdin(slave.try_clone()?)
        .stdout(slave.try_clone()?)
        .stderr(slave);
    Ok(Some(pty))
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

    #[tokio::test]
    async fn an_exec_on_a_pty_has_a_terminal_of_its_size_and_ends_the_master_when_it_exits() {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "stty size; test -t 0 && test -t 2 && echo on-a-tty"]);
        let size = TerminalSize {
            width: 77,
            height: 11,
        };
        let pty = exec_stdio(&mut command, Some(size), Slave::Direct)
            .unwrap()
            .expect("a tty exec has a pty");
        let mut child = command.spawn().unwrap();
        drop(command);
        assert!(child.wait().await.unwrap().success());
        let mut shown = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match pty.read(&mut buf).await.unwrap() {
                0 => break,
                n => shown.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(String::from_utf8_lossy(&shown), "11 77\r\non-a-tty\r\n");

        let mut piped = tokio::process::Command::new("true");
        assert!(exec_stdio(&mut piped, None, Slave::Raw).unwrap().is_none());
        let child = piped.spawn().unwrap();
        assert!(child.stdin.is_some() && child.stdout.is_some() && child.stderr.is_some());
    }
}
