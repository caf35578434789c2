//! The server's listener: every connection's first request line is checked before hyper reads
//! it, so that a request whose URI is too long gets the one error shape (hyper itself answers
//! such a request with an empty 414 or 431). Later requests on a kept-alive connection are
//! checked by the router's middleware (see [`router`](mod@crate::router)), up to hyper's own limit.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The longest request URI served (bytes).
pub const MAX_URI: usize = 8 * 1024;

/// The longest request line looked at before refusing it (`METHOD URI HTTP/1.1`).
const MAX_LINE: usize = MAX_URI + 64;

/// Bytes of a refused request read and dropped before answering (so that the client reads the
/// answer instead of a connection reset).
const DRAIN_LIMIT: usize = 1024 * 1024;

/// A TCP listener whose connections refuse an overlong first request line.
#[derive(Debug)]
pub struct GuardedListener(pub TcpListener);

impl axum::serve::Listener for GuardedListener {
    type Io = UriGuard;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((s, a)) => return (UriGuard::new(s), a),
                Err(e) => {
                    // e.g. too many open files: wait a moment instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the end of the first request line.
    FirstLine { seen: usize },
    /// The first line was short enough: everything passes.
    Passed,
    /// Reading and dropping the refused request's head.
    Draining { seen: usize, tail: [u8; 3] },
    /// The answer was written: the connection ends.
    Refused,
}

/// A connection whose first request line is checked for length.
#[derive(Debug)]
pub struct UriGuard {
    inner: TcpStream,
    state: State,
}

impl UriGuard {
    fn new(inner: TcpStream) -> Self {
        UriGuard {
            inner,
            state: State::FirstLine { seen: 0 },
        }
    }
}

/// The answer to an overlong URI, in the API's one error shape.
fn refusal() -> Vec<u8> {
    let body = format!(
        r#"{{"error":{{"code":"uri_too_long","message":"the request URI is longer than {MAX_URI} bytes"}}}}"#
    );
    format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl AsyncRead for UriGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Passed => return Pin::new(&mut this.inner).poll_read(cx, buf),
                State::Refused => return Poll::Ready(Ok(())),
                State::FirstLine { seen } => {
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    let new = &buf.filled()[before..];
                    if new.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    match new.iter().position(|b| *b == b'\n') {
                        Some(_) => this.state = State::Passed,
                        None if seen + new.len() > MAX_LINE => {
                            // hyper never sees this request: it gets an answer from here
                            buf.set_filled(before);
                            this.state = State::Draining {
                                seen: 0,
                                tail: [0; 3],
                            };
                            continue;
                        }
                        None => {
                            this.state = State::FirstLine {
                                seen: seen + new.len(),
                            }
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                State::Draining { seen, mut tail } => {
                    let mut scratch = [0u8; 8192];
                    let mut rb = ReadBuf::new(&mut scratch);
                    let done = match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(_)) => true,
                        Poll::Ready(Ok(())) => {
                            let got = rb.filled();
                            // the head ends with an empty line
                            let mut window: Vec<u8> = tail.to_vec();
                            window.extend_from_slice(got);
                            let ended = got.is_empty()
                                || window.windows(4).any(|w| w == b"\r\n\r\n")
                                || seen + got.len() > DRAIN_LIMIT;
                            let n = window.len();
                            tail.copy_from_slice(&window[n - 3..]);
                            this.state = State::Draining {
                                seen: seen + got.len(),
                                tail,
                            };
                            ended
                        }
                    };
                    if done {
                        // small enough to go out in one write on a fresh connection
                        let _ = this.inner.try_write(&refusal());
                        tracing::info!(
                            "refused a request whose URI is longer than {MAX_URI} bytes"
                        );
                        this.state = State::Refused;
                        return Poll::Ready(Ok(()));
                    }
                }
            }
        }
    }
}

impl AsyncWrite for UriGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
