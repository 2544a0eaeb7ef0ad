//! Why a benchmark could not run. IO failures during a run are not errors of this kind: they
//! are counted and reported, and the run goes on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("auth file {path}: {reason}")]
    AuthFile { path: PathBuf, reason: String },
    #[error("cannot log in to {target} at {portal}: {source}")]
    Login { target: String, portal: String, source: Box<lunlink_engine::EngineError> },
    #[error("LUN {lun} is not usable for a benchmark: {reason}")]
    Lun { lun: u16, reason: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}
