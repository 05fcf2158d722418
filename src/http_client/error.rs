//! Errors of an HTTP call, named by the step that failed, and their text with causes.

use std::error::Error;
use std::fmt;
use std::io;

use http::Uri;

type BoxError = Box<dyn Error + Send + Sync>;

/// Failure to build a client.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot set up TLS certificate verification with the system's trust store: {0}")]
    Tls(#[source] rustls::Error),
    #[error(
        "the proxy named by HTTPS_PROXY, HTTP_PROXY or ALL_PROXY uses {scheme}://, but only \
         http:// proxies are supported; set an http:// proxy URL, or list the server's host in \
         NO_PROXY"
    )]
    ProxyScheme { scheme: String },
}

/// A call that failed before its response was complete: while connecting, while sending the
/// request and waiting for the response head, or while reading the response body. Boxed, so
/// the error types that contain it stay small.
#[derive(Debug)]
pub struct TransportError(Box<Failure>);

#[derive(Debug)]
struct Failure {
    step: Step,
    uri: Uri,
    cause: BoxError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connect,
    Request,
    Body,
}

impl TransportError {
    /// Wraps an error of [`hyper_util::client::legacy::Client::request`] for `uri`.
    pub fn request(uri: Uri, error: hyper_util::client::legacy::Error) -> Self {
        let step = if error.is_connect() {
            Step::Connect
        } else {
            Step::Request
        };
        TransportError(Box::new(Failure {
            step,
            uri,
            cause: Box::new(error),
        }))
    }

    /// Wraps an error that broke off the response body of `uri`.
    pub fn body(uri: Uri, error: hyper::Error) -> Self {
        TransportError(Box::new(Failure {
            step: Step::Body,
            uri,
            cause: Box::new(error),
        }))
    }

    /// True when no connection could be opened, also when the connect timeout ended it.
    pub fn is_connect(&self) -> bool {
        self.0.step == Step::Connect
    }

    /// True when a timeout caused the failure: the connect timeout, the operating system's
    /// TCP timeout, or a timeout inside hyper.
    pub fn is_timeout(&self) -> bool {
        let mut cause: Option<&(dyn Error + 'static)> = Some(&*self.0.cause);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<io::Error>()
                && io.kind() == io::ErrorKind::TimedOut
            {
                return true;
            }
            if error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
            {
                return true;
            }
            cause = error.source();
        }
        false
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = &self.0.uri;
        match self.0.step {
            Step::Connect => {
                let scheme = uri.scheme_str().unwrap_or("http");
                let authority = uri.authority().map_or("", |a| a.as_str());
                write!(f, "failed to connect to {scheme}://{authority}")
            }
            Step::Request => write!(f, "the request to {uri} got no response"),
            Step::Body => write!(f, "the response body of {uri} broke off"),
        }
    }
}

impl Error for TransportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        let cause: &(dyn Error + 'static) = &*self.0.cause;
        // hyper-util's own text ("client error (Connect)") repeats the step named above, so
        // the chain continues with its cause when it has one.
        match cause.downcast_ref::<hyper_util::client::legacy::Error>() {
            Some(client) => client.source().or(Some(cause)),
            None => Some(cause),
        }
    }
}

/// Joins an error and its causes with `: `, skipping a cause whose text the chain already
/// contains. The top error of a transport failure names the step, and its causes name the
/// reason, such as "Connection refused".
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}
