//! Helpers shared by the integration tests: a private `redis-server`, and
//! polling with a deadline instead of sleeping.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private `redis-server` on a free loopback port, stopped on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start one; panics with a clear message when `redis-server` is missing
    /// (the README's test command installs it).
    pub fn start() -> RedisServer {
        Self::start_inner(false)
    }

    /// Start one with the append-only file on (fsync always), so a kill -9
    /// and restart keeps every acknowledged write.
    pub fn start_with_aof() -> RedisServer {
        Self::start_inner(true)
    }

    fn start_inner(aof: bool) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Self::spawn(port, dir.path(), aof);
        let server = RedisServer { child, port, dir };
        server.wait_ready();
        server
    }

    fn spawn(port: u16, dir: &std::path::Path, aof: bool) -> Child {
        let binary = std::env::var("CELERIAC_TEST_REDIS_SERVER")
            .unwrap_or_else(|_| "redis-server".to_owned());
        Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary}: {e}; install it with `apt-get install -y redis-server` (scripts/test.sh does)")
            })
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// Kill -9 the server and start it again on the same port (with AOF on
    /// when `aof`, so writes acknowledged before the kill survive).
    pub fn restart_after(&mut self, pause: Duration, aof: bool) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(pause);
        self.child = Self::spawn(self.port, self.dir.path(), aof);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let url = self.url(0);
        wait_until(Duration::from_secs(10), || {
            redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
    }

    /// A blocking connection for assertions.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url(0))
            .and_then(|c| c.get_connection())
            .expect("redis connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free right now on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Poll `ready` every 10 ms until it holds; panic after `limit`.
pub fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run `openssl ARGS` in `dir`; panics when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(status.success(), "openssl {args:?} failed");
}

/// A private CA (`ca.pem`, `ca.key`) and a server certificate for
/// 127.0.0.1/localhost that it signed (`server.pem`, `server.key`), made
/// in `dir` with openssl, valid for a day: for the TLS tests (`rediss://`,
/// `amqps://`).
pub fn private_ca_and_server_certificate(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=celeriac-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext",
        ],
    );
}
