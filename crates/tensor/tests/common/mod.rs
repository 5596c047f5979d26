//! Helpers shared by the candle lending tests.

use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on another thread and fails the test if it does not finish in 20 s (a
/// deadlock), instead of hanging the test run.
pub fn within_time<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (send, recv) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(f());
    });
    recv.recv_timeout(Duration::from_secs(20))
        .expect("the lending deadlocked (no answer within 20 s)")
}
