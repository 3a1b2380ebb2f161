//! The one error every command returns, and the exit code it stands for: 0 success, 1 a
//! runtime or verification failure, 2 a usage or configuration error. It must never decide
//! what a failure means for the library; it only says how the process ends.

use std::process::ExitCode;

use annals::config::ConfigError;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration could not be loaded (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command cannot work as given: arguments, files named, keys (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Something failed while running (exit 1).
    #[error("{0}")]
    Failed(String),
    /// A verification found the log or a checkpoint wrong (exit 1). The verdict goes on
    /// stdout, beside the `ok:` lines, because tools read it there.
    #[error("{0}")]
    Verdict(String),
}

impl CliError {
    /// A usage or configuration error.
    pub fn usage(message: impl std::fmt::Display) -> CliError {
        CliError::Usage(message.to_string())
    }

    /// A runtime failure.
    pub fn failed(message: impl std::fmt::Display) -> CliError {
        CliError::Failed(message.to_string())
    }

    /// The exit code this error ends the process with.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            CliError::Failed(_) | CliError::Verdict(_) => 1,
        }
    }

    /// Prints the error where it belongs and returns the exit code.
    pub fn report(self) -> ExitCode {
        match &self {
            CliError::Verdict(verdict) => println!("{verdict}"),
            other => eprintln!("annals: {other}"),
        }
        ExitCode::from(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::CliError;

    #[test]
    fn usage_and_configuration_errors_exit_2_failures_and_verdicts_exit_1() {
        assert_eq!(CliError::usage("bad flag").code(), 2);
        let config = annals::config::Config::load(Some(std::path::Path::new("/no/such.toml")))
            .expect_err("a missing config file is refused");
        assert_eq!(CliError::from(config).code(), 2);
        assert_eq!(CliError::failed("disk full").code(), 1);
        assert_eq!(
            CliError::Verdict("FAILED at seq 4: changed".into()).code(),
            1
        );
    }
}
