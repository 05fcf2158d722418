//! Fault injection: make the fake fail, stall or lose its response for chosen requests.

use std::time::Duration;

/// A failure to act out for matching requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Respond with this HTTP status and a Blnk-shaped error body. Nothing is written.
    Status(u16),
    /// Wait this long, then respond 500 `GEN_INTERNAL`. Nothing is written.
    Hang(Duration),
    /// Apply the request, then respond with this status instead of the real response.
    ApplyThenFail(u16),
    /// Apply the request, wait this long, then send the real response.
    ApplyThenHang(Duration),
    /// Respond 503 to every request until `FakeBlnk::clear_faults`. Nothing is written.
    Down,
}

/// A fault with the requests it applies to: a method (any when `None`), a path prefix and a
/// number of matching requests. `Down` ignores the method, prefix and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub fault: Fault,
    pub method: Option<String>,
    pub path_prefix: String,
    pub times: usize,
}

impl Fault {
    /// Limits the fault to requests with `method` (for example `"POST"`) whose path starts
    /// with `path_prefix`. It applies once unless `Injection::times` sets a count.
    pub fn on(self, method: &str, path_prefix: &str) -> Injection {
        Injection {
            fault: self,
            method: Some(method.to_ascii_uppercase()),
            path_prefix: path_prefix.to_owned(),
            times: 1,
        }
    }
}

impl Injection {
    /// Applies the fault to the next `times` matching requests.
    pub fn times(mut self, times: usize) -> Injection {
        self.times = times;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let method_matches = self.method.as_deref().is_none_or(|wanted| wanted == method);
        method_matches && path.starts_with(&self.path_prefix)
    }
}

/// A bare fault applies to the next request of any kind.
impl From<Fault> for Injection {
    fn from(fault: Fault) -> Injection {
        Injection {
            fault,
            method: None,
            path_prefix: "/".to_owned(),
            times: 1,
        }
    }
}

/// The faults waiting to fire, in the order they were injected.
#[derive(Debug, Default)]
pub struct FaultBook {
    pending: Vec<Injection>,
    down: bool,
}

impl FaultBook {
    pub fn add(&mut self, injection: Injection) {
        if injection.fault == Fault::Down {
            self.down = true;
        } else if injection.times > 0 {
            self.pending.push(injection);
        }
    }

    pub fn clear(&mut self) {
        self.pending.clear();
        self.down = false;
    }

    /// Takes the fault for this request, if any, and counts it against its remaining uses.
    pub fn take(&mut self, method: &str, path: &str) -> Option<Fault> {
        if self.down {
            return Some(Fault::Down);
        }
        let index = self
            .pending
            .iter()
            .position(|injection| injection.matches(method, path))?;
        let injection = &mut self.pending[index];
        let fault = injection.fault;
        injection.times -= 1;
        if injection.times == 0 {
            self.pending.remove(index);
        }
        Some(fault)
    }
}
