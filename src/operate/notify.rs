//! The service manager's side: `READY=1` once the sources are spawned,
//! `WATCHDOG=1` from the evaluation loop (so a stalled loop gets hums
//! restarted under `WatchdogSec`), `RELOADING=1` around a reload (systemd's
//! `Type=notify-reload` protocol), `STOPPING=1` at shutdown and a one-line
//! `STATUS=`. Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use sd_notify::NotifyState;
use std::time::Duration;

/// The service manager connection, if there is one.
#[derive(Debug, Clone, Copy)]
pub struct ServiceManager {
    present: bool,
    /// Half the watchdog period, when the unit has `WatchdogSec`.
    pub watchdog_every: Option<Duration>,
}

impl ServiceManager {
    /// Finds out from the environment whether systemd is listening.
    pub fn from_env() -> Self {
        let present = std::env::var_os("NOTIFY_SOCKET").is_some();
        let mut usec = 0;
        let watchdog_every = (present && sd_notify::watchdog_enabled(false, &mut usec))
            .then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(100)));
        Self { present, watchdog_every }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.present {
            if let Err(e) = sd_notify::notify(false, states) {
                tracing::debug!(error = %e, "cannot notify the service manager");
            }
        }
    }

    /// Started: sources spawned, state restored.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// The evaluation loop is turning.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// A reload begins.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// A one-line status for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// Shutting down.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }
}
