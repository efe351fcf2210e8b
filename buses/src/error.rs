use std::io;

/// Errors of every bus, shaped by what the caller does next: retry later (`503`) or give up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot take more right now (queue full, disk full, overloaded).
    #[error("bus overloaded: {reason}")]
    Overloaded { reason: String },
    /// The bus is unreachable or stopped.
    #[error("bus unavailable: {reason}")]
    Unavailable { reason: String },
    /// A record that the bus can never store (too large, invalid name).
    #[error("rejected by bus: {reason}")]
    Rejected { reason: String },
    /// A record larger than the bus can ever store (ingress answers `413`).
    #[error("record of {size} bytes exceeds the bus limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("bus i/o error: {0}")]
    Io(#[from] io::Error),
    /// The subscription ended for good (its consumer task died, its inbox closed): drop it and
    /// subscribe again. Its unacknowledged deliveries come back to the new subscription.
    #[error("subscription closed: {reason}")]
    Closed { reason: String },
    /// A stored record that cannot be decoded. A subscription returns it from `next` after it
    /// skipped and acknowledged the record, so the caller counts and logs it and reads on.
    #[error("corrupt record at position {position}: {reason}")]
    Corrupt { position: u64, reason: String },
}

impl BusError {
    /// True when the same request may succeed later (the ingress answers `503`).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            BusError::Rejected { .. }
                | BusError::TooLarge { .. }
                | BusError::Closed { .. }
                | BusError::Corrupt { .. }
        )
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        BusError::Unavailable {
            reason: reason.into(),
        }
    }
}
