//! A Git server speaking Git's smart HTTP protocol on 127.0.0.1: each request is handed to
//! `git http-backend` as a CGI program, and its answer relayed as an HTTP/1.0 response.
//!
//! A plain file server is enough for `git` (it falls back to the "dumb" protocol), not for
//! go-git, Flux's source-controller's Git client, which speaks only the smart one. The
//! protocol itself is `git http-backend`'s; this is only the CGI gateway (RFC 3875's
//! variables, the request body on stdin, the `Status:` header).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Serves the bare repositories under `root` (`<root>/<name>.git` is
/// `http://127.0.0.1:<port>/<name>.git`), every one exported, read-only (`git http-backend`
/// refuses pushes without authentication). Returns the port; the server lives as long as the
/// test process. Fails the test when `git` cannot run.
pub fn serve(root: PathBuf) -> u16 {
    let git = driftguard_test_support::program("git", &["--version"]);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Git HTTP server");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (git, root) = (git.clone(), root.clone());
            std::thread::spawn(move || {
                let _ = answer(conn, &git, &root);
            });
        }
    });
    port
}

/// One request on `conn`, answered by `git http-backend`; the connection is closed after it.
fn answer(conn: TcpStream, git: &Path, root: &Path) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut parts = request.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return out.write_all(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    };
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut reader)?
    } else {
        let len = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path.contains("..") {
        return out.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }

    let mut cgi = Command::new(git);
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.0")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or(""))
        .env("CONTENT_LENGTH", body.len().to_string());
    // the other headers as HTTP_*: Git-Protocol (protocol v2), Content-Encoding (gzip bodies)
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "content-type" | "content-length" | "transfer-encoding" | "authorization"
        ) {
            cgi.env(
                format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
                value,
            );
        }
    }
    let mut child = cgi
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // the body is written while the answer is read: neither pipe may fill up and block
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let cgi_out = child.wait_with_output()?;
    let _ = writer.join();
    if cgi_out.stdout.is_empty() {
        let msg = String::from_utf8_lossy(&cgi_out.stderr).into_owned();
        return out.write_all(
            format!(
                "HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{msg}",
                msg.len()
            )
            .as_bytes(),
        );
    }
    out.write_all(&relay(&cgi_out.stdout))
}

/// A CGI program's output (header lines, an empty line, the body) as an HTTP/1.0 response:
/// its `Status:` header is the status line (default `200 OK`), the other headers are kept,
/// and a `Content-Length` is added.
fn relay(cgi: &[u8]) -> Vec<u8> {
    let (head, body) = match find(cgi, b"\r\n\r\n") {
        Some(i) => (&cgi[..i], &cgi[i + 4..]),
        None => match find(cgi, b"\n\n") {
            Some(i) => (&cgi[..i], &cgi[i + 2..]),
            None => (&cgi[..0], cgi),
        },
    };
    let mut status = "200 OK".to_owned();
    let mut headers = String::new();
    for line in String::from_utf8_lossy(head).lines() {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_owned();
            }
            Some((name, _)) if name.eq_ignore_ascii_case("content-length") => {}
            Some(_) => {
                headers.push_str(line.trim_end());
                headers.push_str("\r\n");
            }
            None => {}
        }
    }
    let mut response = format!(
        "HTTP/1.0 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `Transfer-Encoding: chunked` body (git sends large requests so).
fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // trailers, up to the empty line
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}
