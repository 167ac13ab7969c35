//! [`CliError`]: why a command could not do its work, and the exit status that says so.

use std::path::PathBuf;

/// Why a command could not do its work. Findings (an invalid configuration, a failed replay
/// gate) exit with 1, usage and I/O errors with 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("{}", config_message(at.as_deref(), source))]
    Config {
        /// Where: `file:line:column`, `file`, or `environment`.
        at: Option<String>,
        /// What is wrong, with the path, the value and what is expected.
        source: limiter_core::Error,
    },
    /// The request to explain cannot be decided (an unknown plan, a missing client IP).
    #[error("{0}")]
    Request(limiter_core::Error),
    /// A store could not be opened or failed.
    #[error("{at}: {source}")]
    Store {
        /// The store: its file or URL.
        at: String,
        /// What happened.
        source: limiter_core::Error,
    },
    /// A command-line value that clap cannot check alone (a time in the log's time zone).
    #[error("{0}")]
    Usage(String),
    /// A malformed line of a request log, with `--strict`.
    #[error("{at}: {message} (--strict stops at the first malformed line)")]
    MalformedLine {
        /// `file:line:column`.
        at: String,
        /// What is wrong.
        message: String,
    },
}

impl CliError {
    /// The process exit status: 1 for a finding about the input, 2 for usage or I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config { .. } | CliError::Request(_) => 1,
            CliError::Io { .. }
            | CliError::Store { .. }
            | CliError::Usage(_)
            | CliError::MalformedLine { .. } => 2,
        }
    }
}

/// `at: error`, where a syntax error's position (its "path", `line L, column C`) is already
/// in `at`, so it reads `file:L:C: invalid syntax: ...`.
fn config_message(at: Option<&str>, error: &limiter_core::Error) -> String {
    let at = at.map(|a| format!("{a}: ")).unwrap_or_default();
    match error {
        limiter_core::Error::InvalidConfig { path, message } if path.starts_with("line ") => {
            format!("{at}invalid syntax: {message}")
        }
        error => format!("{at}{error}"),
    }
}
