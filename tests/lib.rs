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
