//! Why a command could not do its job, sorted by exit code (docs/design.md: 1 a
//! criterion failed, 2 bad usage or configuration, 3 a required service
//! unreachable; 130 when interrupted by SIGINT, 143 by SIGTERM), and how each
//! layer's errors map onto them. The mapping lives here and nowhere else.

use crate::backend::StartupError;
use crate::configuration::ConfigError;
use crate::control::ControlError;
use crate::db::private::PrivateClusterError;
use crate::db::DbError;
use crate::immutable_log::ProofError;
use crate::scenario::ScenarioError;
use crate::verify::VerifyError;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
}

impl CommandError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Failed(_) => ExitCode::from(1),
            Self::Usage(_) => ExitCode::from(2),
            Self::Unreachable(_) => ExitCode::from(3),
            Self::Interrupted => ExitCode::from(crate::shutdown::interrupted_exit_code()),
        }
    }
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> Self {
        Self::Usage(e.to_string())
    }
}

impl From<PrivateClusterError> for CommandError {
    fn from(e: PrivateClusterError) -> Self {
        match e {
            PrivateClusterError::NotInstalled { .. } | PrivateClusterError::NoPostgresUser => {
                Self::Usage(e.to_string())
            }
            PrivateClusterError::Start(_) => Self::Unreachable(e.to_string()),
        }
    }
}

impl From<ControlError> for CommandError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Database(e) => e.into(),
            ControlError::BackendUnreachable { .. }
            | ControlError::TooFewWorkers { .. }
            | ControlError::ControlPlaneLost { .. }
            | ControlError::ServiceDatabase(_) => Self::Unreachable(e.to_string()),
            ControlError::TooLittleCapacity { .. }
            | ControlError::Configuration(_)
            | ControlError::RunConfiguration(_) => Self::Usage(e.to_string()),
            ControlError::BackendRefused { .. } | ControlError::Goose(_) | ControlError::Upload(_) => {
                Self::Failed(e.to_string())
            }
            ControlError::Interrupted => Self::Interrupted,
        }
    }
}

impl From<VerifyError> for CommandError {
    /// The cause's exit code, with the condition it stopped named.
    fn from(e: VerifyError) -> Self {
        let said = e.to_string();
        match Self::from(e.cause) {
            Self::Unreachable(_) => Self::Unreachable(said),
            Self::Usage(_) => Self::Usage(said),
            Self::Interrupted => Self::Interrupted,
            _ => Self::Failed(said),
        }
    }
}

impl From<DbError> for CommandError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unreachable { .. } => Self::Unreachable(e.to_string()),
            DbError::NotBootstrapped { .. } => Self::Usage(e.to_string()),
            DbError::Migration(_) | DbError::Query { .. } => Self::Failed(e.to_string()),
        }
    }
}

impl From<ProofError> for CommandError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::Database(e) => e.into(),
            ProofError::Anchors(e) => Self::Usage(e.to_string()),
        }
    }
}

impl From<StartupError> for CommandError {
    fn from(e: StartupError) -> Self {
        match e {
            StartupError::Database(e) => e.into(),
            StartupError::Bind { .. } => Self::Usage(e.to_string()),
            StartupError::Unready(_) | StartupError::Serve(_) => Self::Failed(e.to_string()),
        }
    }
}

impl From<ScenarioError> for CommandError {
    fn from(e: ScenarioError) -> Self {
        match e {
            ScenarioError::Database(e) => e.into(),
            ScenarioError::PrivateCluster(e) => e.into(),
            ScenarioError::Backend(e) => e.into(),
            ScenarioError::BackendUnreachable { .. } => Self::Unreachable(e.to_string()),
            ScenarioError::Configuration(_) => Self::Usage(e.to_string()),
            ScenarioError::Reports { .. } => Self::Failed(e.to_string()),
            ScenarioError::Interrupted => Self::Interrupted,
        }
    }
}

/// Runs `work` unless `shutdown` fires first; then `work` is dropped (cleaning
/// up what it holds) and the command ends as interrupted.
pub async fn interruptible<T>(
    shutdown: &CancellationToken,
    work: impl std::future::Future<Output = Result<T, CommandError>>,
) -> Result<T, CommandError> {
    tokio::select! {
        outcome = work => outcome,
        () = shutdown.cancelled() => Err(CommandError::Interrupted),
    }
}

/// Success when nothing is named in `failed`; else a failure (exit 1) naming
/// each, after `what`.
pub fn none_failed(failed: Vec<&str>, what: &str) -> Result<ExitCode, CommandError> {
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CommandError::Failed(format!("{what}: {}", failed.join(", "))))
    }
}
