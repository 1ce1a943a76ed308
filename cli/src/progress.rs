//! Following a transaction: an indicatif bar on a terminal, a plain line per phase and per
//! tenth otherwise (logs, pipes).

use berth_l10n::fl;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

pub struct Bar {
    bar: Option<ProgressBar>,
    quiet: bool,
    last_phase: String,
    last_tenth: i64,
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("[{bar:30}] {percent:>3}%  {msg}")
                    .expect("a valid template")
                    .progress_chars("#> "),
            );
            bar
        });
        Bar {
            bar,
            quiet,
            last_phase: String::new(),
            last_tenth: -1,
        }
    }

    pub fn update(&mut self, phase: &str, fraction: f64, done: u64, total: u64, message: &str) {
        if self.quiet {
            return;
        }
        let bytes = if total > 0 {
            format!(
                "  {}",
                fl!(
                    "progress-bytes",
                    done = berth_l10n::size(done),
                    total = berth_l10n::size(total)
                )
            )
        } else {
            String::new()
        };
        let words = berth_l10n::phase(phase);
        let percent = (fraction.clamp(0.0, 1.0) * 100.0).round() as i64;
        if let Some(bar) = &self.bar {
            bar.set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
            bar.set_message(format!("{words}{bytes}  {message}"));
        } else if phase != self.last_phase || percent / 10 != self.last_tenth {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{percent:>3}%  {words}{bytes}  {message}");
        }
        self.last_phase = phase.to_string();
        self.last_tenth = percent / 10;
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}
