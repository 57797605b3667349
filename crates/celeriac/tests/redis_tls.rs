//! `rediss://` to a Redis server whose certificate a private CA signed
//! (made here with openssl): the app connects with Celery's
//! `ssl_ca_certs`, refuses without it, and connects without verification
//! only when told `ssl_cert_reqs=none`.
//!
//! Needs `redis-server` built with TLS (Debian's is) and `openssl`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use celeriac::App;
use support::{free_port, wait_until};

struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> TlsRedis {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    support::private_ca_and_server_certificate(d);
    let port = free_port();
    let binary =
        std::env::var("CELERIAC_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let child = Command::new(binary)
        .args(["--port", "0", "--bind", "127.0.0.1", "--save", ""])
        .args(["--tls-port", &port.to_string()])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-server: {e}"));
    wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    TlsRedis {
        child,
        port,
        ca: d.join("ca.pem"),
        _dir: dir,
    }
}

async fn round_trip(url: &str) -> celeriac::Result<Option<String>> {
    let app = App::builder()
        .broker_url(url)
        .backend_url(url)
        .build()
        .await?;
    app.backend()
        .set_value("tls:probe", "over tls", None)
        .await?;
    app.backend().get_value("tls:probe").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_connects_only_when_the_ca_is_given() {
    let server = start();
    let base = format!("rediss://127.0.0.1:{}/0", server.port);
    let with_ca = format!(
        "{base}?ssl_cert_reqs=required&ssl_ca_certs={}",
        server.ca.display()
    );
    assert_eq!(
        round_trip(&with_ca).await.ok().flatten().as_deref(),
        Some("over tls")
    );
    let refused = round_trip(&base).await;
    assert!(
        refused.is_err(),
        "an unknown CA must be refused: {refused:?}"
    );
    let unverified = format!("{base}?ssl_cert_reqs=none");
    match round_trip(&unverified).await {
        Ok(value) => assert_eq!(value.as_deref(), Some("over tls")),
        Err(e) => panic!("ssl_cert_reqs=none: {e}"),
    }
    let plain = round_trip(&format!("redis://127.0.0.1:{}/0", server.port)).await;
    assert!(
        plain.is_err(),
        "plain TCP to a TLS port must fail: {plain:?}"
    );
}
