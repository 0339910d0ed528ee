//! Engine errors as gRPC statuses: the one table (docs/NODE.md repeats it).

use converge::sync::SyncError;
use converge::Error;
use tonic::{Code, Status};

/// The gRPC code of an engine error.
pub fn code_of(e: &Error) -> Code {
    match e {
        Error::WrongType { .. } | Error::WrongReadType { .. } => Code::FailedPrecondition,
        Error::KeyTooLarge { .. }
        | Error::ValueTooLarge { .. }
        | Error::Codec(_)
        | Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::StateTooLarge { .. } | Error::PendingFull { .. } | Error::NoSpace(_) => {
            Code::ResourceExhausted
        }
        Error::CursorTooOld { .. } | Error::Overflow => Code::OutOfRange,
        Error::NotYetVisible { .. } => Code::DeadlineExceeded,
        Error::Busy(_) | Error::Closed => Code::Unavailable,
        Error::MergeFunction(_)
        | Error::ReplicaMismatch { .. }
        | Error::UnsupportedFormat { .. } => Code::FailedPrecondition,
        Error::Corruption(_) => Code::DataLoss,
        _ => Code::Internal,
    }
}

/// An engine error as a status (its message is the error's text).
pub fn engine(e: Error) -> Status {
    Status::new(code_of(&e), e.to_string())
}

/// A sync session error as a status.
pub fn sync(e: SyncError) -> Status {
    match e {
        SyncError::Engine(e) => engine(e),
        SyncError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        SyncError::Codec(_) | SyncError::Malformed(_) => Status::invalid_argument(e.to_string()),
        // The peer must be rebuilt: retrying cannot help.
        SyncError::BehindHorizon { .. } => Status::failed_precondition(e.to_string()),
        other => Status::aborted(other.to_string()),
    }
}

/// A request that does not decode.
pub fn wire(e: crate::wire::WireError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A blocking task that panicked or was cancelled.
pub fn join(e: tokio::task::JoinError) -> Status {
    Status::internal(format!("engine task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_keeps_client_errors_apart_from_server_errors() {
        let wrong = Error::WrongType {
            stored: converge::CrdtType::GCounter,
            requested: converge::CrdtType::ORSet,
        };
        assert_eq!(code_of(&wrong), Code::FailedPrecondition);
        assert_eq!(
            code_of(&Error::KeyTooLarge { len: 1, max: 0 }),
            Code::InvalidArgument
        );
        assert_eq!(
            code_of(&Error::NotYetVisible { missing: 1 }),
            Code::DeadlineExceeded
        );
        assert_eq!(code_of(&Error::Corruption("x".into())), Code::DataLoss);
        assert_eq!(code_of(&Error::Poisoned), Code::Internal);
        assert_eq!(engine(Error::Closed).code(), Code::Unavailable);
    }
}
