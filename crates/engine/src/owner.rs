//! Who drives a run: an identity per engine instance, `host:pid:nonce`, stored as the holder of
//! run and deliverable leases. From it another process on the same host can tell that the holder
//! died (its pid is gone) and take over at once instead of waiting for the lease to expire.

use std::fmt;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    host: String,
    pid: u32,
    nonce: String,
}

impl Owner {
    /// A fresh identity for this process.
    pub fn current() -> Self {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_owned());
        Self {
            host: host.replace(':', "_"),
            pid: std::process::id(),
            nonce: ulid::Ulid::generate().to_string()[16..].to_lowercase(),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.rsplitn(3, ':');
        let nonce = parts.next()?.to_owned();
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_owned();
        Some(Self { host, pid, nonce })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the holder is certainly gone: it ran on this host and its process no longer
    /// exists. `false` means "maybe alive": wait for its lease to expire.
    pub fn is_certainly_dead(&self, here: &Owner) -> bool {
        if self.host != here.host {
            return false;
        }
        if self.pid == here.pid {
            // This process: dead only if it is an earlier engine of ours that is gone, which we
            // cannot tell from here; the lease expiry decides.
            return false;
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return false;
        };
        matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.pid, self.nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let me = Owner::current();
        assert_eq!(Owner::parse(&me.to_string()), Some(me));
        assert_eq!(Owner::parse("nonsense"), None);
    }

    #[test]
    fn a_vanished_local_process_is_dead_a_remote_one_is_not_known() {
        let me = Owner::current();
        let mut gone = me.clone();
        // Reap a real child to get a pid that certainly no longer exists.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        gone.pid = child.id();
        assert!(gone.is_certainly_dead(&me));
        let mut remote = gone;
        remote.host = "elsewhere".into();
        assert!(!remote.is_certainly_dead(&me));
        assert!(!me.is_certainly_dead(&me));
    }
}
