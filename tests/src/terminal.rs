//! A program run on a real terminal: the test holds the pty's master, as a user's terminal
//! emulator would, and reads what is shown, types, and changes the window.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::Winsize;

/// How long a terminal waits for text to show or the program to exit.
const WAIT: Duration = Duration::from_secs(60);

/// The user's side of the terminal a program runs on: what it has shown so far, typing,
/// and window changes. Dropping it kills the program.
pub struct Terminal {
    master: OwnedFd,
    shown: Arc<Mutex<Vec<u8>>>,
    child: Child,
}

impl Terminal {
    /// Runs `command` with a terminal of `size` (columns, rows) as its stdin, stdout and
    /// stderr.
    pub fn spawn(mut command: Command, size: (u16, u16)) -> Terminal {
        let winsize = Winsize {
            ws_col: size.0,
            ws_row: size.1,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&winsize), None).expect("openpty");
        let slave = pty.slave;
        let stdio = || Stdio::from(slave.try_clone().expect("dup the pty"));
        let child = command
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .unwrap_or_else(|e| panic!("run {:?}: {e}", command.get_program()));
        // Only the program holds the slave now: the master reads end of file when it is gone.
        drop(slave);
        drop(command);
        let shown = Arc::new(Mutex::new(Vec::new()));
        let mut reader = std::fs::File::from(pty.master.try_clone().expect("dup the master"));
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the program (the last holder of the slave) has exited.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            master: pty.master,
            shown,
            child,
        }
    }

    /// Everything shown so far.
    pub fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned()
    }

    /// Waits for `what` to show after byte `after` of [`Terminal::shown`]: where it ends.
    pub fn wait_for(&self, what: &str, after: usize) -> usize {
        self.wait_within(what, after, WAIT).unwrap_or_else(|| {
            panic!(
                "no {what:?} on the terminal within {WAIT:?}: {:?}",
                self.shown()
            )
        })
    }

    /// Like [`Terminal::wait_for`], giving up (`None`) after `timeout`.
    fn wait_within(&self, what: &str, after: usize, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let shown = self.shown();
            if let Some(at) = shown.get(after..).and_then(|rest| rest.find(what)) {
                return Some(after + at + what.len());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn type_in(&self, keys: &str) {
        let mut writer = std::fs::File::from(self.master.try_clone().unwrap());
        writer.write_all(keys.as_bytes()).unwrap();
    }

    /// The terminal's modes as the program left them.
    pub fn modes(&self) -> rustix::termios::Termios {
        rustix::termios::tcgetattr(self.master.as_fd()).unwrap()
    }

    /// The window changes as a terminal emulator's does: the size on the pty, SIGWINCH to
    /// the program (the kernel sends it only to a controlling terminal's foreground group,
    /// and the program's is not this one).
    pub fn resize(&self, width: u16, height: u16) {
        let size = rustix::termios::Winsize {
            ws_col: width,
            ws_row: height,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(self.master.as_fd(), size).unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH).unwrap();
    }

    /// Types `command` until `expected` shows after it (a resize reaches the remote shell
    /// after a moment), then waits for the next `prompt`: where that prompt ends. Only the
    /// output is matched, not the echo: a SIGWINCH arriving mid-line makes the shell
    /// redraw the line, so the typed command need not show in one piece.
    pub fn retype_until(&self, command: &str, prompt: &str, expected: &str, at: usize) -> usize {
        let deadline = Instant::now() + WAIT;
        let mut at = at;
        loop {
            self.type_in(&format!("{command}\n"));
            if let Some(found) = self.wait_within(expected, at, Duration::from_secs(2)) {
                return self.wait_for(prompt, found);
            }
            assert!(
                Instant::now() < deadline,
                "no {expected:?}: {:?}",
                self.shown()
            );
            at = self.shown().len();
        }
    }

    /// The program's exit code (killed after a minute).
    pub fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the program did not exit within {WAIT:?}: {:?}",
                    self.shown()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
