use thiserror::Error;

/// Why a JSON text is not a valid hermes event or value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The text is not JSON at all.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// The JSON is well formed but an attribute is missing or has the wrong shape.
    #[error("{attribute}: {problem}")]
    Attribute {
        /// The event attribute at fault, such as `evcategory`.
        attribute: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl CodecError {
    pub(crate) fn attribute(attribute: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Attribute {
            attribute: attribute.into(),
            problem: problem.into(),
        }
    }
}
