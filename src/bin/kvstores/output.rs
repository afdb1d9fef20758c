//! How the command shows things to people: colour only on a terminal and
//! never with `NO_COLOR`, progress bars only when stderr is a terminal, and
//! sizes and durations people read at a glance.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub const RED: &str = "1;31";
pub const BOLD: &str = "1";

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// Whether to colour what goes to `stream`: a terminal, and `NO_COLOR`
/// unset or empty (<https://no-color.org>).
fn colour(stream: Stream) -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && stream.is_terminal()
}

/// `text` in the ANSI style `code` when colour is on for `stream`.
pub fn paint(text: &str, code: &str, stream: Stream) -> String {
    if colour(stream) {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// A progress counter on stderr for `what` (e.g. "exported"), or a hidden
/// one when stderr is not a terminal, so logs and pipes stay clean.
pub fn progress(what: &'static str, total: Option<u64>) -> ProgressBar {
    if !Stream::Stderr.is_terminal() {
        return ProgressBar::hidden();
    }
    // Templates without colour tags: nothing to turn off for NO_COLOR.
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta})",
            )
            .expect("a valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {{human_pos}} {what}"
            ))
            .expect("a valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Parses a duration as humantime does (`500ms`, `30s`, `1.5h`, `7d`,
/// `1h30m`), or a bare number of seconds (`90`, `0.5`); zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<f64>() {
        Ok(seconds) => {
            Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))?
        }
        Err(_) => humantime::parse_duration(text).map_err(|e| {
            format!("{text:?} is not a duration (e.g. 500ms, 30s, 10m, 2h, 7d): {e}")
        })?,
    };
    if duration.is_zero() {
        return Err("a duration must be greater than zero".to_owned());
    }
    Ok(duration)
}

/// `1.5s`, `12m 5s`, `3d 4h`: the two largest units, for people.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 60_000 {
        let s = ms as f64 / 1000.0;
        return format!("{}s", trim_zeros(&format!("{s:.3}")));
    }
    let s = ms / 1000;
    let units = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];
    let first = units.iter().position(|&(_, n)| s >= n).unwrap_or(3);
    let (u1, n1) = units[first];
    let (u2, n2) = units[(first + 1).min(3)];
    let rest = (s % n1) / n2;
    if rest == 0 || u1 == u2 {
        format!("{}{u1}", s / n1)
    } else {
        format!("{}{u1} {rest}{u2}", s / n1)
    }
}

fn trim_zeros(number: &str) -> String {
    number
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_owned()
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1,234,567`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A key or namespace name as a table shows it: control characters escaped
/// so that one entry stays on one line.
pub fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().collect()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("0").is_err());
        assert!(
            parse_duration("5q")
                .unwrap_err()
                .contains("unknown time unit")
        );
        assert!(parse_duration("x").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
        assert_eq!(format_duration(Duration::from_secs(725)), "12m 5s");
        assert_eq!(
            format_duration(Duration::from_secs(3 * 86_400 + 4 * 3600 + 9)),
            "3d 4h"
        );
    }

    #[test]
    fn sizes_and_counts_print_for_people() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(format_count(12), "12");
        assert_eq!(printable("a\nb"), "a\\nb");
    }
}
