//! Turning a panic inside the simulation into a reportable message.
//!
//! Server code and harness assertions report violations by panicking; the runner must survive
//! them (a sweep goes on to the next seed, a shrinker tries the next candidate). A process-wide
//! panic hook remembers the message and location of the last panic on this thread, and can be
//! told to stay quiet so a sweep's progress bar is not buried under backtraces.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static QUIET: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Stops (or restarts) printing panics that the runner catches; the CLI turns this on, tests
/// leave it off so a failing test shows the panic where it happened.
pub fn quiet_panics(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let msg = payload_text(info.payload());
            LAST.with(|l| *l.borrow_mut() = Some(format!("{msg}{at}")));
            if !QUIET.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}

fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

/// Runs `f`; a panic becomes `Err` with its message and location.
pub(super) fn catching<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    LAST.with(|l| l.borrow_mut().take());
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        LAST.with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| payload_text(p.as_ref()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_location() {
        quiet_panics(true);
        let r: Result<(), String> = catching(|| panic!("boom {}", 7));
        quiet_panics(false);
        let msg = r.unwrap_err();
        assert!(msg.starts_with("boom 7 at "), "{msg}");
        assert!(msg.contains("panics.rs"), "{msg}");
        assert_eq!(catching(|| 5), Ok(5));
    }
}
