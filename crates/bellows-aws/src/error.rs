//! An AWS error: the HTTP status, the code clients match on, and a message.

/// What a failed call answers, in any protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    pub status: u16,
    /// The Query protocol's code (`ValidationError`, `LoadBalancerNotFound`, ...).
    pub code: String,
    pub message: String,
    /// DynamoDB's `CancellationReasons` of a cancelled transaction: each item's code
    /// (`None` when it was not the cause) and message, in the request's order.
    pub cancellation_reasons: Vec<(String, Option<String>)>,
}

impl AwsError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> AwsError {
        AwsError {
            status,
            code: code.to_owned(),
            message: message.into(),
            cancellation_reasons: Vec::new(),
        }
    }

    /// An action the endpoint does not serve: 400, never a 5xx (SDKs and Terraform
    /// retry those for minutes).
    pub fn invalid_action(action: &str, service: &str) -> AwsError {
        AwsError::new(
            400,
            "InvalidAction",
            format!(
                "The action {action} is not valid for this web service ({service}), or bellows does not implement it."
            ),
        )
    }

    /// Whether the caller is at fault (`Sender`) rather than the service (`Receiver`).
    pub fn sender_fault(&self) -> bool {
        self.status < 500
    }
}
