//! The API a TCP and a Unix stream (and their halves and listeners) have in common, written
//! once: each macro expands to the methods and trait impls over a `StreamInner` (or a listener's
//! slot and socket) for one kind. The kind's own calls (connecting, TCP options, `peek`) stay
//! in its module.

/// Implements the common API of stream `$stream` (holding `inner: Arc<StreamInner<$mio>>`)
/// and of its halves `$read` and `$write`; `$addr` is the kind's address type and `$std` the
/// std stream its descriptor is made into when cloned.
macro_rules! stream_api {
    ($stream:ident, $read:ident, $write:ident, $mio:ty, $std:ty, $addr:ty) => {
        impl $stream {
            fn from_mio(io: $mio) -> $stream {
                $stream {
                    inner: StreamInner::new(io),
                    _not_sync: PhantomData,
                }
            }

            /// The local address.
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.inner.io.local_addr()
            }

            /// The peer's address.
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.inner.io.peer_addr()
            }

            /// Shuts down the read side, the write side, or both.
            pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                self.inner.io.shutdown(how)
            }

            /// A handle that shuts this connection down from any coroutine or thread; see
            /// [`Closer`].
            pub fn closer(&self) -> Closer {
                Closer::of(&self.inner)
            }

            /// Makes blocking reads give up with `TimedOut` after `d` (`None`: wait forever).
            pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
                self.inner.read_timeout.set(d)
            }

            /// Makes blocking writes give up with `TimedOut` after `d` (`None`: wait forever).
            pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
                self.inner.write_timeout.set(d)
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
                Ok(self.inner.read_timeout.get())
            }

            /// The write timeout.
            pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
                Ok(self.inner.write_timeout.get())
            }

            /// Reads what is there now; `WouldBlock` if nothing is. Never parks.
            pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.try_read(buf)
            }

            /// Writes what fits now; `WouldBlock` if nothing does. Never parks.
            pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                self.inner.try_write(buf)
            }

            /// Takes the socket's pending error (`SO_ERROR`).
            pub fn take_error(&self) -> io::Result<Option<io::Error>> {
                self.inner.io.take_error()
            }

            /// Splits the stream into a read half and a write half, each movable to its own
            /// coroutine. The connection closes when both halves are dropped.
            pub fn split(self) -> ($read, $write) {
                (
                    $read {
                        inner: self.inner.clone(),
                        _not_sync: PhantomData,
                    },
                    $write {
                        inner: self.inner,
                        _not_sync: PhantomData,
                    },
                )
            }

            /// A real clone: a duplicated descriptor with its own registration, independent
            /// of this stream's lifetime. Both see the same connection.
            pub fn try_clone(&self) -> io::Result<$stream> {
                let fd = self.inner.io.as_fd().try_clone_to_owned()?;
                let s = $stream::from_mio(<$mio>::from_std(<$std>::from(fd)));
                s.set_read_timeout(self.inner.read_timeout.get())?;
                s.set_write_timeout(self.inner.write_timeout.get())?;
                Ok(s)
            }

            pub(crate) fn read_direction(&self) -> &Direction {
                self.inner.slot.select_direction(false)
            }

            pub(crate) fn write_direction(&self) -> &Direction {
                self.inner.slot.select_direction(true)
            }
        }

        impl Read for $stream {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.read(buf)
            }
        }

        impl Write for $stream {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.inner.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl fmt::Debug for $stream {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($stream))
                    .field("local", &self.local_addr().ok())
                    .field("peer", &self.peer_addr().ok())
                    .finish()
            }
        }

        impl $read {
            /// Reads what is there now; `WouldBlock` if nothing is. Never parks.
            pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.try_read(buf)
            }

            /// The peer's address.
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.inner.io.peer_addr()
            }

            /// Shuts down the read side of the connection.
            pub fn shutdown(&self) -> io::Result<()> {
                self.inner.io.shutdown(Shutdown::Read)
            }

            /// A handle that shuts the whole connection down from anywhere; see [`Closer`].
            pub fn closer(&self) -> Closer {
                Closer::of(&self.inner)
            }

            pub(crate) fn read_direction(&self) -> &Direction {
                self.inner.slot.select_direction(false)
            }
        }

        impl Read for $read {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.read(buf)
            }
        }

        impl fmt::Debug for $read {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($read))
                    .field("peer", &self.peer_addr().ok())
                    .finish()
            }
        }

        impl $write {
            /// Writes what fits now; `WouldBlock` if nothing does. Never parks.
            pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                self.inner.try_write(buf)
            }

            /// Shuts down the write side: the peer reads end of stream after what was sent.
            pub fn shutdown(&self) -> io::Result<()> {
                self.inner.io.shutdown(Shutdown::Write)
            }

            /// A handle that shuts the whole connection down from anywhere; see [`Closer`].
            pub fn closer(&self) -> Closer {
                Closer::of(&self.inner)
            }

            /// The peer's address.
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.inner.io.peer_addr()
            }

            pub(crate) fn write_direction(&self) -> &Direction {
                self.inner.slot.select_direction(true)
            }
        }

        impl Write for $write {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.inner.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl fmt::Debug for $write {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($write))
                    .field("peer", &self.peer_addr().ok())
                    .finish()
            }
        }

        impl Shut for StreamInner<$mio> {
            fn shut(&self, how: Shutdown) -> io::Result<()> {
                self.io.shutdown(how)
            }
        }
    };
}

/// Implements the common API of listener `$listener` (holding `slot: IoSlot` and `io`) that
/// accepts `$stream`s, and the iterator `$incoming` over its connections.
macro_rules! listener_api {
    ($listener:ident, $stream:ident, $incoming:ident, $addr:ty) => {
        impl $listener {
            /// Waits for a connection.
            pub fn accept(&self) -> io::Result<($stream, $addr)> {
                let (io, addr) = self.slot.blocking(false, None, || self.io.accept())?;
                Ok(($stream::from_mio(io), addr))
            }

            /// Accepts a connection if one is waiting now; `WouldBlock` otherwise. Never parks.
            pub fn try_accept(&self) -> io::Result<($stream, $addr)> {
                let (io, addr) = self.slot.nonblocking(false, || self.io.accept())?;
                Ok(($stream::from_mio(io), addr))
            }

            /// An endless iterator of accepted connections.
            pub fn incoming(&self) -> $incoming<'_> {
                $incoming { listener: self }
            }

            /// The local address.
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.io.local_addr()
            }

            /// Takes the socket's pending error.
            pub fn take_error(&self) -> io::Result<Option<io::Error>> {
                self.io.take_error()
            }

            pub(crate) fn read_direction(&self) -> &Direction {
                self.slot.select_direction(false)
            }
        }

        impl fmt::Debug for $listener {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($listener))
                    .field("local", &self.local_addr().ok())
                    .finish()
            }
        }

        impl Iterator for $incoming<'_> {
            type Item = io::Result<$stream>;
            fn next(&mut self) -> Option<io::Result<$stream>> {
                Some(self.listener.accept().map(|(s, _)| s))
            }
        }
    };
}
