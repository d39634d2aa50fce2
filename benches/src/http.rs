//! A minimal HTTP/1.1 client over one keep-alive connection (plain `http://` only), enough
//! for the push and query APIs of Loki and Fenrir.

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{BenchError, Result};

/// Where the server listens: `http://host:port[/prefix]`.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    authority: String,
    prefix: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            BenchError::Usage(format!("{url}: only plain http:// URLs are supported"))
        })?;
        let (authority, prefix) = match rest.find('/') {
            Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(BenchError::Usage(format!("{url}: no host")));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Target {
            authority,
            prefix: prefix.to_string(),
        })
    }

    /// The full URL of a path, for error messages.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}{path}", self.authority, self.prefix)
    }
}

/// An answer: status and the whole body.
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// One keep-alive connection; requests on it go one at a time.
pub(crate) struct Connection {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    pub(crate) async fn open(target: &Target) -> Result<Self> {
        let fail = |message: String| BenchError::Http {
            url: target.url("/"),
            message,
        };
        let stream = TcpStream::connect(&target.authority)
            .await
            .map_err(|e| fail(format!("cannot connect: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| fail(format!("cannot set TCP_NODELAY: {e}")))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(format!("handshake: {e}")))?;
        // The connection is driven by its own task; it ends when `sender` is dropped.
        tokio::spawn(connection);
        Ok(Connection {
            target: target.clone(),
            sender,
        })
    }

    /// Sends one request and reads the whole answer. `path` includes the query string.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        body: Bytes,
    ) -> Result<Response> {
        let fail = |message: String| BenchError::Http {
            url: self.target.url(path),
            message,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.target.prefix))
            .header(header::HOST, &self.target.authority);
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| fail(format!("bad request: {e}")))?;
        self.sender
            .ready()
            .await
            .map_err(|e| fail(format!("connection lost: {e}")))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(format!("reading the body: {e}")))?
            .to_bytes();
        Ok(Response { status, body })
    }
}

/// `application/x-www-form-urlencoded` encoding of query parameters.
pub(crate) fn query_string(params: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(name, &mut out);
        out.push('=');
        encode_component(value, &mut out);
    }
    out
}

fn encode_component(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 15)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("http://127.0.0.1:3100").unwrap();
        assert_eq!(t.url("/ready"), "http://127.0.0.1:3100/ready");
        let t = Target::parse("http://loki/prefix/").unwrap();
        assert_eq!(t.url("/ready"), "http://loki:80/prefix/ready");
        assert!(Target::parse("https://loki:3100").is_err());
        assert!(Target::parse("http:///x").is_err());
    }

    #[test]
    fn encodes_query_parameters_like_a_form() {
        let q = query_string(&[
            ("query", r#"{app="bench"} |= "x" [1m]"#.to_string()),
            ("limit", "100".to_string()),
        ]);
        assert_eq!(
            q,
            "query=%7Bapp%3D%22bench%22%7D+%7C%3D+%22x%22+%5B1m%5D&limit=100"
        );
    }

    #[tokio::test]
    async fn talks_to_a_server() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.ends_with(b"hello") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed early");
                seen.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(seen).unwrap()
        });
        let target = Target::parse(&format!("http://{addr}/p")).unwrap();
        let mut conn = Connection::open(&target).await.unwrap();
        let answer = conn
            .send(
                Method::POST,
                "/push?x=1",
                &[(header::CONTENT_TYPE, "text/plain")],
                Bytes::from_static(b"hello"),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body.as_ref(), b"ok");
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /p/push?x=1 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.to_lowercase().contains("content-type: text/plain"));
    }
}
