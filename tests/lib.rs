//! Helpers for Fenrir's integration tests: a whole server in-process (no socket) on a
//! temporary data directory.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A server built from YAML on a fresh temporary directory.
pub struct TestServer {
    /// The HTTP application.
    pub app: axum::Router,
    /// The wired components (the ingester, for flushes).
    pub built: fenrir_server::Built,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Builds a server; `extra_yaml` is appended to a config that points `path_prefix` at a
    /// temporary directory.
    pub async fn start(extra_yaml: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = format!(
            "common:\n  path_prefix: {}\n{extra_yaml}",
            dir.path().display()
        );
        let config = fenrir_config::from_yaml(&yaml).expect("config");
        let built = fenrir_server::build(&config).await.expect("build server");
        TestServer {
            app: built.app.clone(),
            built,
            _dir: dir,
        }
    }

    /// Sends one request and returns status and body.
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, body)
    }

    /// `GET path?params` with extra headers.
    pub async fn get(
        &self,
        path: &str,
        params: &[(String, String)],
        headers: &[(String, String)],
    ) -> (StatusCode, Vec<u8>) {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let mut req = Request::get(format!("{path}?{query}"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        self.send(req.body(Body::empty()).expect("request")).await
    }

    /// `GET` of an exact request target (path and raw query string, encoded as the
    /// client encodes it) with headers; returns status, content type and body.
    pub async fn get_raw(&self, target: &str, headers: &[(&str, &str)]) -> RawResponse {
        let mut req = Request::get(target);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        RawResponse {
            status,
            content_type,
            body,
        }
    }

    /// `POST path` with a body, content type and extra headers.
    pub async fn post_with(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::post(path).header("content-type", content_type);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(body)).expect("request"))
            .await
    }

    /// Serves the same application on `127.0.0.1` with an OS-assigned port (for clients
    /// that need a socket, such as WebSockets) until [`Listening::stop`].
    pub async fn listen(&self) -> Listening {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = self.app.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Listening {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// `POST path` with a body and content type.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let req = Request::post(path)
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }
}

/// A response of [`TestServer::get_raw`].
pub struct RawResponse {
    /// Status code.
    pub status: StatusCode,
    /// The `content-type` header (empty when absent).
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A server listening on a real socket, from [`TestServer::listen`].
pub struct Listening {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// Stops accepting, lets open connections finish and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}
