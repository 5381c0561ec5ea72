//! The supervisor of a throwaway server: a small shell process that owns the server and
//! removes it when the test process exits, however it exits.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use super::server::{find_binaries, user_exists};
use super::{free_port, io_error, lock, running_as_root};
use crate::{Error, Result};

/// A throwaway server under its shell supervisor.
#[derive(Debug)]
pub(crate) struct Supervisor {
    pub(crate) url: String,
    /// The server's log file, quoted in start-up errors.
    pub(crate) log: PathBuf,
    /// The supervisor's pipes. Its standard input is the lifeline: closing it (at process exit)
    /// stops the server. A `restart` line sent on it is acknowledged on its standard output.
    pub(crate) pipes: Mutex<SupervisorPipes>,
    _child: Child,
}

#[derive(Debug)]
pub(crate) struct SupervisorPipes {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Starts initdb and postgres, then reads commands on stdin until this process's end (EOF) to
/// stop the server and remove the directory. The one command is `restart`: stop postgres (fast
/// shutdown, which ends with a checkpoint) and start it again on the same port and data
/// directory, then print `restarted PID`. Arguments: $1 directory, $2 bin dir, $3 port, $4
/// "root" if the server must run as the postgres OS user, $5 more server options (`-c name=value`
/// words, none holding a space).
///
/// SIGPIPE is ignored so that an acknowledgement written after this process died cannot kill
/// the supervisor before it has cleaned up.
const SUPERVISOR_SCRIPT: &str = r#"
dir=$1; bin=$2; port=$3; extra=$5; as=
trap '' PIPE
if [ "$4" = root ]; then
  chown -R postgres: "$dir"
  # HOME stays root's otherwise: libpq inside the server (Citus's connections between nodes)
  # would look for client certificates in a directory it may not read.
  as="setpriv --reuid=postgres --regid=postgres --init-groups -- env HOME=$dir"
fi
if ! $as "$bin/initdb" -D "$dir/data" -U postgres -A trust -N -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
  echo "failed: initdb: $(tail -n 20 "$dir/initdb.log" | tr '\n' ' ')"
  rm -rf "$dir"
  exit 1
fi
start() {
  $as "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
    $extra >>"$dir/server.log" 2>&1 &
  pid=$!
}
start
echo "started $pid"
while read -r command; do
  case "$command" in
    restart)
      kill -INT "$pid" 2>/dev/null
      wait "$pid"
      start
      echo "restarted $pid"
      ;;
    *)
      echo "unknown command: $command"
      ;;
  esac
done
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir"
"#;

impl Supervisor {
    pub(crate) fn start() -> Result<Supervisor> {
        Self::start_with(&[])
    }

    /// [`Supervisor::start`] with more server settings (`name=value`, no spaces).
    pub(crate) fn start_with(settings: &[&str]) -> Result<Supervisor> {
        let extra: Vec<String> = settings.iter().map(|s| format!("-c {s}")).collect();
        let bin = find_binaries()?;
        let root = running_as_root();
        if root && !user_exists("postgres") {
            return Err(Error::TestServer {
                message: "running as root, and there is no `postgres` OS user to run the server \
                          as; create one (`useradd postgres`) or set DATABASE_URL"
                    .to_owned(),
                source: None,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("flakeguard-pg-")
            .tempdir()
            .map_err(|e| io_error("cannot create a temporary directory", e))?
            // The supervisor removes it, after the server has stopped.
            .keep();
        let port = free_port()?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("flakeguard-pg")
            .arg(&dir)
            .arg(&bin)
            .arg(port.to_string())
            .arg(if root { "root" } else { "user" })
            .arg(extra.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io_error("cannot run sh to supervise the server", e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::TestServer {
                message: "supervisor has no pipes".to_owned(),
                source: None,
            });
        };
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| io_error("cannot read from the supervisor", e))?;
        if !line.starts_with("started") {
            let _ = child.wait();
            return Err(Error::TestServer {
                message: format!(
                    "could not initialize a cluster with {}: {}",
                    bin.display(),
                    line.trim()
                ),
                source: None,
            });
        }
        let mut stdin = stdin;
        // A flush proves the pipe is open.
        stdin
            .flush()
            .map_err(|e| io_error("supervisor pipe closed", e))?;
        Ok(Supervisor {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            log: dir.join("server.log"),
            pipes: Mutex::new(SupervisorPipes { stdin, stdout }),
            _child: child,
        })
    }

    /// Asks the supervisor to restart the server and waits for its acknowledgement (not for
    /// the server to accept connections). Blocking: call it off the async runtime.
    pub(crate) fn restart(&self) -> Result<()> {
        // One exchange at a time: concurrent restarts run one after the other.
        let mut pipes = lock(&self.pipes);
        pipes
            .stdin
            .write_all(b"restart\n")
            .and_then(|()| pipes.stdin.flush())
            .map_err(|e| io_error("cannot send restart to the supervisor", e))?;
        let mut line = String::new();
        let read = pipes
            .stdout
            .read_line(&mut line)
            .map_err(|e| io_error("cannot read the supervisor's reply", e))?;
        if read == 0 || !line.starts_with("restarted") {
            return Err(Error::TestServer {
                message: format!(
                    "the supervisor did not restart the server (it answered {:?})",
                    line.trim()
                ),
                source: None,
            });
        }
        Ok(())
    }
}
