//! Form fields from a query string or a POSTed body, bounded: a body of at
//! most 64 KiB, sent as `application/x-www-form-urlencoded`, at most 200
//! fields of at most 4,000 characters. Anything else is refused before a
//! page sees it.

use std::future::poll_fn;
use std::pin::Pin;

use http::header::CONTENT_TYPE;
use http::{Request, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;

use super::errors::Problem;

const MAX_BODY: usize = 64 * 1024;
const MAX_FIELDS: usize = 200;
const MAX_VALUE: usize = 4000;

/// A form's fields, in the order sent.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// The fields of `text` (a query string or a form body).
    pub fn parse(text: &str) -> Result<Form, Problem> {
        let mut pairs = Vec::new();
        for (k, v) in form_urlencoded::parse(text.as_bytes()) {
            if pairs.len() == MAX_FIELDS {
                return Err(Problem::bad("too many fields"));
            }
            if v.chars().count() > MAX_VALUE || k.len() > 64 {
                return Err(Problem::bad(&format!(
                    "field `{}` is too long",
                    k.chars().take(64).collect::<String>()
                )));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Form { pairs })
    }

    /// The query string of `req`.
    pub fn of_query<B>(req: &Request<B>) -> Result<Form, Problem> {
        Form::parse(req.uri().query().unwrap_or(""))
    }

    /// The first value of `name`, trimmed; `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
            .collect()
    }
}

/// Reads a POSTed form from `req`.
pub async fn read(req: Request<Incoming>) -> Result<Form, Problem> {
    let form_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "forms are sent as application/x-www-form-urlencoded",
        ));
    }
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| Problem::bad("the form did not arrive whole"))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_BODY {
                return Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the form is larger than 64 KiB",
                ));
            }
            bytes.extend_from_slice(&data);
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| Problem::bad("the form is not UTF-8"))?;
    Form::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_bounded_and_trimmed() {
        let f = Form::parse("phone=+1+555&phone=&agent=%20a%20&x=1").unwrap();
        assert_eq!(f.get("phone"), "1 555");
        assert_eq!(f.get("agent"), "a");
        assert_eq!(f.get("missing"), "");
        assert_eq!(f.all("phone"), vec!["1 555"]);
        let long = format!("a={}", "x".repeat(MAX_VALUE + 1));
        assert!(Form::parse(&long).is_err());
        let many: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("k{i}=v")).collect();
        assert!(Form::parse(&many.join("&")).is_err());
    }
}
