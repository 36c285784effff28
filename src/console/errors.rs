//! What goes wrong, as a page: a status and a sentence for the person at
//! the browser, never a stack trace or an internal error's text (a failed
//! catalog call is logged, and the page says what to do).

use http::StatusCode;

use crate::catalog::CatalogError;

/// A refusal or failure, shown as a page with `status`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, message: &str) -> Problem {
        Problem {
            status,
            message: message.to_string(),
        }
    }

    /// 400: the request as sent cannot be answered.
    pub fn bad(message: &str) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403: not for this user (role, two-person rule, a forged form).
    pub fn forbidden(message: &str) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: &str) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<CatalogError> for Problem {
    fn from(e: CatalogError) -> Problem {
        match e {
            CatalogError::Unavailable(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, &format!("{e}"))
            }
            CatalogError::NotFound(m) => Problem::not_found(&m),
            CatalogError::Refused(e) => Problem::new(StatusCode::CONFLICT, &e.to_string()),
            CatalogError::Failed(e) => {
                tracing::error!("console: {e}");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "recvault could not answer this; the daemon's log says why",
                )
            }
        }
    }
}
