//! A real S3-compatible server for the tests: moto's server mode (PyPI `moto[server]`), started
//! on a free port and killed when dropped. Found at `ANNOMASK_MOTO_SERVER`, else in the venvs
//! `.ci/run` and `reference/setup.sh` make (`/tmp/annomask-ref`, `/tmp/annomask-py`), else on
//! `PATH`. Without it the tests print why and pass as skipped, unless `REQUIRE_S3=1` (CI).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on localhost.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn moto_server() -> Result<String, String> {
    let candidates: Vec<String> = std::env::var("ANNOMASK_MOTO_SERVER")
        .into_iter()
        .chain([
            "/tmp/annomask-ref/bin/moto_server".to_string(),
            "/tmp/annomask-py/bin/moto_server".to_string(),
            "moto_server".to_string(),
        ])
        .collect();
    for c in &candidates {
        let ok = Command::new(c)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "no moto_server (tried {candidates:?}; pip install 'moto[server]')"
    ))
}

/// Whether `REQUIRE_S3=1`.
pub fn required() -> bool {
    std::env::var("REQUIRE_S3").is_ok_and(|v| v == "1")
}

impl S3Server {
    /// A fresh server, or `None` (skip, with the reason printed) where moto is not installed;
    /// panics under `REQUIRE_S3=1`. `extra_env`: settings of the server (e.g. auth on).
    pub fn start_with(extra_env: &[(&str, &str)]) -> Option<S3Server> {
        let exe = match moto_server() {
            Ok(exe) => exe,
            Err(why) if required() => panic!("REQUIRE_S3=1 but {why}"),
            Err(why) => {
                eprintln!("skipping S3 tests: {why} (set REQUIRE_S3=1 to fail instead)");
                return None;
            }
        };
        let port = free_port();
        let mut command = Command::new(exe);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        // The server dies with the thread that started it (a test binary killed or ended never
        // leaves one running).
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("moto_server starts");
        let server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    pub fn start() -> Option<S3Server> {
        Self::start_with(&[])
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a client of this server gets (moto accepts any credentials).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// Sets [`S3Server::env`] in this process (call before any other thread reads the
    /// environment: the first statement of a test binary's server set-up).
    pub fn export_env(&self) {
        for (k, v) in self.env() {
            // SAFETY: called once, from the set-up every test of the binary goes through
            // before it starts threads of its own.
            unsafe { std::env::set_var(k, v) };
        }
    }

    /// Creates `bucket` (an unsigned `PUT /bucket`, which moto accepts).
    pub fn create_bucket(&self, bucket: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
            "{reply}"
        );
    }
}
