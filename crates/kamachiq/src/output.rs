//! Writing to the terminal. Output that goes to a pipe which closes early (`kamachiq runs |
//! head`) ends the program quietly instead of failing, and never in the middle of a run.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets};
use tokio_util::sync::CancellationToken;

/// Set once stdout is gone (the reader closed the pipe); later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// While a run is driven: how to stop it if its output has nowhere to go.
static ON_CLOSE: Mutex<Option<CancellationToken>> = Mutex::new(None);

/// While `stop` is registered, a closed stdout stops the run cleanly (as Ctrl-C would)
/// instead of ending the program in the middle of it. `None` unregisters.
pub fn stop_on_closed_stdout(stop: Option<CancellationToken>) {
    *ON_CLOSE.lock().unwrap_or_else(PoisonError::into_inner) = stop;
}

/// Writes a line to stdout. When the reader has gone (`kamachiq runs | head`), the program ends
/// quietly, or, while a run is driven, the run is stopped cleanly and later output dropped.
pub fn line(text: impl Display) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        CLOSED.store(true, Ordering::Relaxed);
        match ON_CLOSE
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(stop) => stop.cancel(),
            None => std::process::exit(0),
        }
    }
}

/// Writes a line to stderr (messages about what is happening, not results).
pub fn note(text: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Writes `value` as one line of JSON.
pub fn json(value: &impl serde::Serialize) {
    match serde_json::to_string(value) {
        Ok(text) => line(text),
        Err(e) => note(format!("error: cannot encode JSON output: {e}")),
    }
}

/// Writes `value` as indented JSON.
pub fn json_pretty(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => line(text),
        Err(e) => note(format!("error: cannot encode JSON output: {e}")),
    }
}

/// A table in the style of the other listings: no borders, headers in capitals.
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_ascii_uppercase()));
    table
}

/// `850ms`, `4.2s`, `3m05s`, `2h10m`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let secs = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(4_250)), "4.2s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(7_800)), "2h10m");
    }
}
