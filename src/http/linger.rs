//! Lingering close, as web servers have long done it: when Roster closes a connection, it
//! shuts down its sending side first, then reads and discards what the client is still
//! sending, for a bounded time and number of bytes, and only then closes. Without it a
//! connection closed with unread bytes in it (a 413 answered before the body was read) is
//! reset by the kernel, and the client, still writing its body, loses the answer it was about
//! to read.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection is read from at most.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// The most bytes a closing connection is read and discarded.
const LINGER_BYTES: usize = 32 << 20;

/// A stream whose shutdown lingers (see the module comment).
pub struct Lingering<S> {
    inner: S,
    state: State,
}

enum State {
    Open,
    Draining {
        deadline: Pin<Box<Sleep>>,
        left: usize,
    },
    Closed,
}

impl<S> Lingering<S> {
    pub fn new(inner: S) -> Self {
        Lingering {
            inner,
            state: State::Open,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Shuts down the sending side, then drains the receiving side until the client closes
    /// its side, the time or byte bound is reached, or reading fails.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Open => {
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    this.state = State::Draining {
                        deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                        left: LINGER_BYTES,
                    };
                }
                State::Draining { deadline, left } => {
                    let mut scratch = [0u8; 16 * 1024];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if (1..*left).contains(&buf.filled().len()) => {
                            *left -= buf.filled().len();
                        }
                        Poll::Ready(_) => this.state = State::Closed,
                        Poll::Pending => {
                            ready!(deadline.as_mut().poll(cx));
                            this.state = State::Closed;
                        }
                    }
                }
                State::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}
