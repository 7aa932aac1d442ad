//! Run risky extraction in a child process with hard limits.
//!
//! This is the one kind of I/O the signals crate does: it spawns a program
//! path it is *handed* (normally the `echotrace` binary itself with its
//! hidden `__extract-pdf` subcommand; the crate never looks a program up on
//! its own), writes the input to the child's stdin and reads its stdout.
//!
//! Limits on the child (Unix):
//! * `RLIMIT_AS` (address space) = [`IsolationLimits::memory_bytes`], so a
//!   decompression bomb fails to allocate instead of exhausting the host;
//! * `RLIMIT_CPU` = the timeout rounded up plus one second, as a backstop;
//! * `RLIMIT_CORE` = 0 (no core dumps of hostile input);
//! * a wall-clock timeout enforced by the parent, which kills the child
//!   (SIGKILL) and reaps it;
//! * stdout and stderr are read on their own threads and capped;
//! * an empty environment: nothing of the parent's (`RUST_BACKTRACE`,
//!   credentials) reaches the child, so its stderr carries no backtrace.
//!
//! The child's stderr is kept (the last 4 KiB) in the error for logs; it is
//! never meant for clients (the engine maps these errors to fixed
//! messages).
//!
//! The limits are set with `setrlimit` in `pre_exec`, between fork and exec,
//! where only async-signal-safe calls are allowed: setrlimit is one. Every
//! failure mode — timeout, killed by a signal, non-zero exit, oversized or
//! unparsable output — is an [`IsolateError`]; nothing here panics the
//! parent.

use crate::pdf::{ChildReply, PdfError, PdfExtract};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Limits for one child run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolationLimits {
    /// Wall-clock limit. Default 20 s.
    pub timeout: Duration,
    /// Address-space limit. Default 1 GiB.
    pub memory_bytes: u64,
    /// Largest stdout accepted. Default 64 MiB.
    pub max_output_bytes: usize,
}

impl Default for IsolationLimits {
    fn default() -> Self {
        IsolationLimits {
            timeout: Duration::from_secs(20),
            memory_bytes: 1 << 30,
            max_output_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why an isolated run failed.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("child exceeded the {0:?} time limit and was killed")]
    Timeout(Duration),
    #[error("child was killed by signal {signal} (memory or CPU limit, or a crash){stderr}")]
    Signaled { signal: i32, stderr: String },
    #[error("child exited with status {code}{stderr}")]
    Failed { code: i32, stderr: String },
    #[error("child output over {0} bytes")]
    OutputTooLarge(usize),
    #[error("child output unreadable: {0}")]
    BadOutput(String),
    #[error("I/O with child: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Pdf(#[from] PdfError),
}

/// Output of a finished child.
#[derive(Debug)]
pub struct ChildOutput {
    /// Exit code (the child exited normally).
    pub code: i32,
    pub stdout: Vec<u8>,
    /// Up to the last 4 KiB of stderr.
    pub stderr: Vec<u8>,
}

const STDERR_KEEP: usize = 4096;

fn read_capped(mut r: impl Read, cap: usize, keep_tail: bool) -> std::io::Result<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut over = false;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or(&[]);
        if keep_tail {
            out.extend_from_slice(chunk);
            if out.len() > cap {
                let cut = out.len() - cap;
                out.drain(..cut);
            }
        } else if out.len() + n > cap {
            over = true;
            // Keep draining so the child never blocks on a full pipe.
        } else {
            out.extend_from_slice(chunk);
        }
    }
    Ok((out, over))
}

/// Runs `program args…` with `input` on stdin under `limits`. Returns the
/// output when the child exits by itself (any exit code).
pub fn run_isolated(
    program: &Path,
    args: &[&str],
    input: &[u8],
    limits: &IsolationLimits,
) -> Result<ChildOutput, IsolateError> {
    run_child(program, args, None, input, limits)
}

/// [`run_isolated`] for a third-party program (Tesseract): the child gets
/// an **empty environment** except `env`, and `RLIMIT_FSIZE = 0` on top of
/// the other limits, so it cannot write a file.
pub fn run_isolated_env(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &[u8],
    limits: &IsolationLimits,
) -> Result<ChildOutput, IsolateError> {
    run_child(program, args, Some(env), input, limits)
}

fn run_child(
    program: &Path,
    args: &[&str],
    env: Option<&[(&str, &str)]>,
    input: &[u8],
    limits: &IsolationLimits,
) -> Result<ChildOutput, IsolateError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let no_files = env.is_some();
    if let Some(env) = env {
        cmd.env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let mem = limits.memory_bytes;
        let cpu = limits.timeout.as_secs() + 2;
        // SAFETY: the closure only calls setrlimit, which is
        // async-signal-safe, on values computed before the fork.
        unsafe {
            cmd.pre_exec(move || {
                set_limit(libc::RLIMIT_AS, mem)?;
                set_limit(libc::RLIMIT_CPU, cpu)?;
                set_limit(libc::RLIMIT_CORE, 0)?;
                if no_files {
                    set_limit(libc::RLIMIT_FSIZE, 0)?;
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|source| IsolateError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(mut s) = stdin {
            // A child that stops reading early closes the pipe: not an error here.
            let _ = s.write_all(&data);
        }
    });
    let cap = limits.max_output_bytes;
    let out_reader = std::thread::spawn(move || match stdout {
        Some(s) => read_capped(s, cap, false),
        None => Ok((Vec::new(), false)),
    });
    let err_reader = std::thread::spawn(move || match stderr {
        Some(s) => read_capped(s, STDERR_KEEP, true),
        None => Ok((Vec::new(), false)),
    });

    let deadline = Instant::now() + limits.timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let stdout = out_reader
        .join()
        .map_err(|_| IsolateError::BadOutput("reader thread panicked".into()))?;
    let stderr = err_reader
        .join()
        .map_err(|_| IsolateError::BadOutput("reader thread panicked".into()))?;
    let Some(status) = status else {
        return Err(IsolateError::Timeout(limits.timeout));
    };
    let (stdout, over) = stdout?;
    let (stderr, _) = stderr.unwrap_or_default();
    let stderr_note = || {
        let s = String::from_utf8_lossy(&stderr);
        let s = s.trim();
        if s.is_empty() {
            String::new()
        } else {
            format!(": {s}")
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Err(IsolateError::Signaled {
                signal,
                stderr: stderr_note(),
            });
        }
    }
    if over {
        return Err(IsolateError::OutputTooLarge(cap));
    }
    let code = status.code().unwrap_or(-1);
    Ok(ChildOutput {
        code,
        stdout,
        stderr,
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(all(unix, not(all(target_os = "linux", target_env = "gnu"))))]
type Resource = libc::c_int;

#[cfg(unix)]
fn set_limit(resource: Resource, value: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: plain syscall on a stack value.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Extracts a PDF in a child: runs `program __extract-pdf` (the CLI's
/// hidden subcommand, which calls [`crate::pdf::run_child`]) and parses its
/// JSON reply.
pub fn extract_pdf_isolated(
    program: &Path,
    pdf: &[u8],
    limits: &IsolationLimits,
) -> Result<PdfExtract, IsolateError> {
    extract_pdf_with_args(program, &["__extract-pdf"], pdf, limits)
}

/// As [`extract_pdf_isolated`], with explicit arguments for the child.
pub fn extract_pdf_with_args(
    program: &Path,
    args: &[&str],
    pdf: &[u8],
    limits: &IsolationLimits,
) -> Result<PdfExtract, IsolateError> {
    let out = run_isolated(program, args, pdf, limits)?;
    match serde_json::from_slice::<ChildReply>(&out.stdout) {
        Ok(ChildReply::Ok(e)) => Ok(e),
        Ok(ChildReply::Err(e)) => Err(IsolateError::Pdf(e)),
        Err(e) => {
            if out.code != 0 {
                let s = String::from_utf8_lossy(&out.stderr);
                let s = s.trim();
                return Err(IsolateError::Failed {
                    code: out.code,
                    stderr: if s.is_empty() {
                        String::new()
                    } else {
                        format!(": {s}")
                    },
                });
            }
            Err(IsolateError::BadOutput(e.to_string()))
        }
    }
}
