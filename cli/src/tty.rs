//! `skiff exec -it`'s local side of a remote terminal: the user's terminal in raw mode while
//! the session runs (every key goes to the remote one, which echoes and edits), restored on
//! every way out, and its window size.

use std::io::IsTerminal;
use std::sync::{Mutex, Once};

use rustix::termios::{OptionalActions, Termios};

/// kubectl's words when `-it` is asked for and stdin is not a terminal (it runs the command
/// without one).
pub const NOT_A_TERMINAL: &str =
    "Unable to use a TTY - input is not a terminal or the right kind of file";

/// Whether standard input is a terminal (kubectl asks only this of `-t`).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The terminal's window (columns, rows): stdout's, as kubectl measures it, else stdin's;
/// None when neither is a terminal or it reports no size.
pub fn window_size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// The settings raw mode replaced, for the panic hook to put back too.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);
static PANIC_HOOK: Once = Once::new();

fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &saved);
    }
}

/// Standard input in raw mode until dropped. A panic restores it too before its message is
/// printed (a message in raw mode would be staircased and the shell left unusable); a
/// signal is the caller's to turn into a return, which drops this.
pub struct RawMode(());

impl RawMode {
    pub fn enter() -> std::io::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        if let Err(e) = rustix::termios::tcsetattr(&stdin, OptionalActions::Now, &raw) {
            restore();
            return Err(e.into());
        }
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}
