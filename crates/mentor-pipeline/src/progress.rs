//! Logging and progress bars, both on stderr. On a terminal the bars draw; when stderr is a
//! file (a run in the background, `> log 2>&1`) they cannot, so every bar prints a plain line at
//! a steady interval instead (`MENTOR_PROGRESS_SECS`, default 30): done / total, rate (over the
//! last ten lines), ETA and the bar's message (training puts the loss and learning rate there).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

pub fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("MENTOR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// A byte-counting bar for downloads (hidden automatically when stderr is not a terminal).
pub fn bytes_bar(total: u64, label: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    pb.set_message(label.to_string());
    plain_lines(&pb, label);
    pb
}

/// A counting bar for items (examples, calls, steps).
pub fn items_bar(total: u64, label: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{prefix:10!} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    plain_lines(&pb, label);
    pb
}

/// Prints `line` above `pb` on a terminal, or as a plain line when stderr is not one (a log
/// file: the bar is hidden there, and so is whatever it is asked to print).
pub fn println_above(pb: &ProgressBar, line: impl AsRef<str>) {
    if std::io::stderr().is_terminal() {
        pb.println(line.as_ref());
    } else {
        eprintln!("{}", line.as_ref());
    }
}

/// Seconds between plain progress lines (`MENTOR_PROGRESS_SECS`, default 30).
fn plain_interval() -> Duration {
    let secs = std::env::var("MENTOR_PROGRESS_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(30.0);
    Duration::from_secs_f64(secs)
}

/// When stderr is not a terminal, a thread prints `bar`'s state every interval until the bar
/// is finished or dropped (it holds only a weak reference).
fn plain_lines(pb: &ProgressBar, label: &str) {
    if std::io::stderr().is_terminal() {
        return;
    }
    let weak = pb.downgrade();
    let label = label.to_string();
    let every = plain_interval();
    std::thread::spawn(move || {
        let mut window = RateWindow::default();
        loop {
            std::thread::sleep(every);
            let Some(pb) = weak.upgrade() else { return };
            if pb.is_finished() {
                return;
            }
            eprintln!("{}", plain_line_since(&label, &pb, window.since()));
            window.push((pb.elapsed(), pb.position()));
        }
    });
}

/// Where a plain line's rate is measured from: the bar's (elapsed, position) at the oldest of
/// the last [`RateWindow::LINES`] lines. Not from the bar's start: a resumed bar starts at its
/// checkpoint's position, which took none of this process's time. Not from the first line for
/// ever: a process paused for a while (SIGSTOP while a benchmark runs, a suspended laptop)
/// would then report a rate far too low, and hours of ETA, long after it resumed.
#[derive(Default)]
struct RateWindow {
    points: std::collections::VecDeque<(Duration, u64)>,
}

impl RateWindow {
    const LINES: usize = 10;

    fn since(&self) -> Option<(Duration, u64)> {
        self.points.front().copied()
    }

    fn push(&mut self, point: (Duration, u64)) {
        if self.points.len() == Self::LINES {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }
}

/// `train stage 0: 120/450 (26.7%) 0.41/s eta 13m 25s · loss 1.2345 lr 4.1e-5 2.4s/step`
pub fn plain_line(label: &str, pb: &ProgressBar) -> String {
    plain_line_since(label, pb, Some((Duration::ZERO, 0)))
}

/// [`plain_line`] with the rate taken from `since` (the bar's elapsed time and position at an
/// earlier line) on; None: no rate yet.
fn plain_line_since(label: &str, pb: &ProgressBar, since: Option<(Duration, u64)>) -> String {
    let pos = pb.position();
    let mut line = format!("{label}: {pos}");
    if let Some(len) = pb.length().filter(|&l| l > 0) {
        line += &format!("/{len} ({:.1}%)", 100.0 * pos as f64 / len as f64);
        // the mean rate since then: steady where positions arrive in jumps
        let rate = since.map_or(0.0, |(t0, p0)| {
            let secs = pb.elapsed().saturating_sub(t0).as_secs_f64();
            if secs > 0.0 {
                pos.saturating_sub(p0) as f64 / secs
            } else {
                0.0
            }
        });
        if rate > 0.0 {
            let left = (len.saturating_sub(pos)) as f64 / rate;
            // slow work (a sweep's cells, an eval's batches) reads better as time per item
            let speed = if rate >= 0.5 {
                format!("{rate:.2}/s")
            } else {
                format!("{}/item", human_secs(1.0 / rate))
            };
            line += &format!(" {speed} eta {}", human_secs(left));
        }
    }
    let msg = pb.message();
    if !msg.is_empty() && msg != label {
        line += &format!(" · {msg}");
    }
    line
}

/// `59s`, `13m 25s`, `2h 01m`.
pub fn human_secs(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_says_done_total_and_the_message() {
        let pb = ProgressBar::hidden();
        pb.set_length(450);
        pb.set_position(120);
        pb.set_message("loss 1.2345 lr 4.10e-5");
        let line = plain_line("train stage 0", &pb);
        assert!(line.starts_with("train stage 0: 120/450 (26.7%)"), "{line}");
        assert!(line.ends_with("· loss 1.2345 lr 4.10e-5"), "{line}");
        assert_eq!(human_secs(59.4), "59s");
        // a slow bar says the time per item instead of a rate that rounds to 0.00/s
        let slow = ProgressBar::hidden();
        slow.set_length(12);
        slow.set_position(0);
        assert!(
            !plain_line("sweep", &slow).contains("eta"),
            "no ETA before the first item"
        );
        assert_eq!(human_secs(805.0), "13m 25s");
        // a resumed bar: the positions it started at took none of this run's time
        let resumed = ProgressBar::hidden();
        resumed.set_length(100);
        resumed.set_position(90);
        assert!(!plain_line_since("train", &resumed, None).contains("eta"));
        let since = Some((resumed.elapsed(), 90));
        std::thread::sleep(Duration::from_millis(200));
        resumed.set_position(91);
        let line = plain_line_since("train", &resumed, since);
        // one step in ≥ 200 ms: the 9 left take ≥ 1.8 s, not the ~0 s that 91 steps since the
        // bar's creation would claim
        assert!(
            line.contains("eta ") && !line.contains("eta 0s") && !line.contains("eta 1s"),
            "{line}"
        );
        assert!(line.contains("/item") || line.contains("/s"), "{line}");
        assert_eq!(human_secs(7300.0), "2h 01m");
    }

    /// The rate comes from the last lines only: a pause ages out of the window.
    #[test]
    fn a_pause_leaves_the_rate_window() {
        let s = Duration::from_secs;
        let mut w = RateWindow::default();
        assert_eq!(w.since(), None, "no rate before a first line");
        // one item a second, then a 10-minute pause, then one a second again
        w.push((s(0), 0));
        w.push((s(10), 10));
        w.push((s(610), 10));
        assert_eq!(w.since(), Some((s(0), 0)));
        for i in 1..=RateWindow::LINES as u64 {
            w.push((s(610 + 10 * i), 10 + 10 * i));
        }
        assert_eq!(
            w.since(),
            Some((s(620), 20)),
            "the pause is out of the window"
        );
        assert_eq!(w.points.len(), RateWindow::LINES);
    }
}
