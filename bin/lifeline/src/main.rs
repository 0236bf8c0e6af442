//! `lifeline`: the Lifeline command. Thin: argument parsing and logging setup live here; each
//! subcommand (one file under `cmd/`) dispatches to a library: `lifeline-keeper`,
//! `lifeline-gateway`, `lifeline-bindings`, and (for `lifeline devnet` only) the devnet harness.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_tracing(cli.log_format, cli.command.default_log_filter());
    match cli.command.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", render(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error for the user: every cause of the chain once, outermost first, joined by ": ". No
/// Debug output, backtrace or source location. A cause whose text an outer message already
/// contains is left out: many errors print their source in their own message as well (`{0}`).
fn render(err: &eyre::Report) -> String {
    let mut shown: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || shown.iter().any(|outer| outer.contains(text)) {
            continue;
        }
        shown.push(text.to_string());
    }
    shown.join(": ")
}

#[cfg(test)]
mod tests {
    use super::render;

    /// An error that prints `text` and has an optional source.
    #[derive(Debug)]
    struct Layer {
        text: &'static str,
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    }

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.text)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source.as_deref().map(|s| s as _)
        }
    }

    #[test]
    fn each_cause_is_printed_once() {
        // An outer layer that repeats its source's text (`{0}`), over an IO error.
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let inner = Layer { text: "tcp connect error", source: Some(Box::new(io)) };
        let outer = Layer {
            text: "error sending request: tcp connect error",
            source: Some(Box::new(inner)),
        };
        let report = eyre::Report::new(outer).wrap_err("reading service `x`");
        assert_eq!(
            render(&report),
            "reading service `x`: error sending request: tcp connect error: Connection refused"
        );
    }

    #[test]
    fn no_location_or_debug_output() {
        let text = render(&eyre::eyre!("plain message"));
        assert_eq!(text, "plain message");
    }
}
