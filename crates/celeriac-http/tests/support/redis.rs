//! A private `redis-server` on a free loopback port, stopped on drop (as
//! `crates/celeriac/tests/support` starts one): `CELERIAC_TEST_REDIS_SERVER`
//! names the binary (scripts/test.sh exports it), else `redis-server`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server and its scratch directory.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Start one and wait until it answers `PING`; panics with a clear
    /// message when the binary is missing.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("a scratch directory for redis-server");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let binary = std::env::var("CELERIAC_TEST_REDIS_SERVER")
            .unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary}: {e}; install it with `apt-get install -y redis-server` (scripts/test.sh does)")
            });
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while !server.answers_ping() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
