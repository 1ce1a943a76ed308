//! Following a transaction: a progress bar on a terminal, plain lines otherwise.

use std::io::{IsTerminal, Write};

pub struct Bar {
    tty: bool,
    quiet: bool,
    last_phase: String,
    last_tenth: i64,
    drawn: bool,
}

fn size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl Bar {
    pub fn new(quiet: bool) -> Self {
        Bar {
            tty: std::io::stderr().is_terminal(),
            quiet,
            last_phase: String::new(),
            last_tenth: -1,
            drawn: false,
        }
    }

    pub fn update(&mut self, phase: &str, fraction: f64, done: u64, total: u64, message: &str) {
        if self.quiet {
            return;
        }
        let percent = (fraction * 100.0).round() as i64;
        let bytes = if total > 0 {
            format!("  {} / {}", size(done), size(total))
        } else {
            String::new()
        };
        let mut err = std::io::stderr().lock();
        if self.tty {
            let width = 30;
            let filled = ((fraction * width as f64).round() as usize).min(width);
            let _ = write!(
                err,
                "\r\x1b[K[{}{}] {percent:>3}%  {phase}{bytes}  {message}",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            let _ = err.flush();
            self.drawn = true;
        } else if phase != self.last_phase || percent / 10 != self.last_tenth {
            let _ = writeln!(err, "{percent:>3}%  {phase}{bytes}  {message}");
        }
        self.last_phase = phase.to_string();
        self.last_tenth = percent / 10;
    }

    pub fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
