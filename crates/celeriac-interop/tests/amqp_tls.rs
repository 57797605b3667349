//! `amqps://` to a RabbitMQ node whose certificate a private CA signed (made
//! here with openssl; a node of its own with only a TLS listener, started
//! from `CELERIAC_TEST_RABBITMQ_SERVER`, which `scripts/test.sh` sets with
//! `CELERIAC_TEST_AMQP_URL`): the app connects and publishes with Celery's
//! `ssl_ca_certs`, is refused without it, and says clearly what it cannot do
//! (`ssl_cert_reqs=none`, `ssl_*` on a plain `amqp://` URL).

#[path = "../../celeriac/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use celeriac::{App, SendOptions};
use serde_json::Map;
use support::{free_port, wait_until};

/// A private RabbitMQ node listening only for TLS; stopped on drop.
struct TlsRabbit {
    wrapper: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl TlsRabbit {
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for TlsRabbit {
    fn drop(&mut self) {
        // The node is beam.smp, whose pid is in the pid file, not the wrapper.
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pid")) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
        let _ = self.wrapper.kill();
        let _ = self.wrapper.wait();
    }
}

fn start() -> TlsRabbit {
    let server = std::env::var("CELERIAC_TEST_RABBITMQ_SERVER").expect(
        "CELERIAC_TEST_RABBITMQ_SERVER is not set: run through scripts/test.sh --env-only -- …",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    support::private_ca_and_server_certificate(d);
    let port = free_port();
    let dist_port = free_port();
    let conf = format!(
        "listeners.tcp = none\n\
         listeners.ssl.default = {port}\n\
         ssl_options.cacertfile = {d}/ca.pem\n\
         ssl_options.certfile = {d}/server.pem\n\
         ssl_options.keyfile = {d}/server.key\n\
         ssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false\n",
        d = d.display()
    );
    std::fs::write(d.join("rabbitmq.conf"), conf).expect("write rabbitmq.conf");
    std::fs::create_dir_all(d.join("mnesia")).expect("mnesia dir");
    std::fs::create_dir_all(d.join("log")).expect("log dir");
    // The node runs as the user rabbitmq (see the shared notes): it must
    // reach and read everything here.
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(d).status();
    let _ = Command::new("chown")
        .args(["-R", "rabbitmq:"])
        .arg(d)
        .stderr(Stdio::null())
        .status();
    let wrapper = Command::new(server)
        .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_DIST_PORT", dist_port.to_string())
        .env("RABBITMQ_NODENAME", format!("celeriactls{port}@localhost"))
        .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
        .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
        .env("RABBITMQ_LOG_BASE", d.join("log"))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
        .env("RABBITMQ_PID_FILE", d.join("pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rabbitmq-server");
    let node = TlsRabbit { wrapper, dir, port };
    wait_until(Duration::from_secs(90), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    node
}

async fn send_one(url: &str) -> celeriac::Result<()> {
    let app = App::builder()
        .broker_url(url)
        .backend_url("memory://amqps")
        .build()
        .await?;
    app.send_task(
        "tasks.add",
        vec![2.into(), 2.into()],
        Map::new(),
        SendOptions::new().queue("amqps-test"),
    )
    .await
    .map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn amqps_with_a_private_ca_connects_only_when_the_ca_is_given() {
    let node = start();
    let base = format!("amqps://guest:guest@127.0.0.1:{}//", node.port);

    let with_ca = format!("{base}?ssl_ca_certs={}", node.ca().display());
    send_one(&with_ca)
        .await
        .expect("with the private CA: connected and the message confirmed");

    let without = send_one(&base)
        .await
        .expect_err("without the CA the server's certificate must be refused");
    assert!(
        without.to_string().contains("invalid peer certificate"),
        "{without}"
    );

    let unverified = send_one(&format!("{base}?ssl_cert_reqs=none"))
        .await
        .expect_err("verification cannot be turned off");
    assert!(
        unverified.to_string().contains("ssl_ca_certs"),
        "{unverified}"
    );

    let plain = send_one(&format!(
        "amqp://guest:guest@127.0.0.1:{}//?ssl_ca_certs=/x.pem",
        node.port
    ))
    .await
    .expect_err("ssl_* on amqp://");
    assert!(plain.to_string().contains("amqps://"), "{plain}");

    let missing = send_one(&format!("{base}?ssl_ca_certs=/no/such/ca.pem"))
        .await
        .expect_err("a CA file that does not exist");
    assert!(missing.to_string().contains("/no/such/ca.pem"), "{missing}");
}
