//! The sealed file a view snapshot is kept in: a clear header that says what the snapshot
//! reflects (so start-up can check it against the log before opening anything), then the
//! image in chunks of 1 MiB, each sealed with XChaCha20-Poly1305 under the snapshot key in
//! the STREAM construction (`aead::stream`, 32-bit big-endian counter): a chunk changed,
//! moved, dropped or added, a header edited, or a body cut after any chunk but the last, fails
//! to open. Written and read as a stream, so neither side holds the image whole.
//!
//! Layout: the magic line, the header as one JSON line (authenticated as every chunk's
//! associated data), then chunks of `[last: u8][length: u32 BE][ciphertext]`.

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::Payload;
use chacha20poly1305::XChaCha20Poly1305;
use std::io::{self, BufRead, Read, Write};

const MAGIC: &[u8] = b"ROSTER VIEW SNAPSHOT\n";
/// Plain bytes per chunk.
const CHUNK: usize = 1 << 20;
/// The STREAM nonce prefix: XChaCha's 24 bytes less the 5 of counter and last flag.
pub const PREFIX: usize = 19;
/// The longest header line read.
const MAX_HEADER: u64 = 64 << 10;
const TAG: usize = 16;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Writes a sealed file: [`SealedWriter::new`] writes the header, `write` the plain body,
/// [`SealedWriter::finish`] the last chunk.
pub struct SealedWriter<W: Write> {
    out: W,
    sealer: Option<EncryptorBE32<XChaCha20Poly1305>>,
    aad: Vec<u8>,
    plain: Vec<u8>,
}

impl<W: Write> SealedWriter<W> {
    /// Starts a file with `header` (one line of JSON, in the clear) sealed under `key`.
    ///
    /// Fails when `out` fails.
    pub fn new(mut out: W, key: XChaCha20Poly1305, header: &[u8]) -> io::Result<Self> {
        debug_assert!(!header.contains(&b'\n'));
        let mut prefix = [0u8; PREFIX];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut prefix);
        let mut aad = MAGIC.to_vec();
        aad.extend_from_slice(&prefix);
        aad.extend_from_slice(header);
        out.write_all(MAGIC)?;
        out.write_all(&prefix)?;
        out.write_all(header)?;
        out.write_all(b"\n")?;
        Ok(SealedWriter {
            out,
            sealer: Some(EncryptorBE32::from_aead(key, (&prefix).into())),
            aad,
            plain: Vec::with_capacity(CHUNK),
        })
    }

    fn put(&mut self, last: bool) -> io::Result<()> {
        let payload = Payload {
            msg: &self.plain,
            aad: &self.aad,
        };
        // Sealing fails only past 2^32 chunks (4 PiB).
        let sealed = if last {
            let sealer = self
                .sealer
                .take()
                .ok_or_else(|| invalid("already finished"))?;
            sealer.encrypt_last(payload)
        } else {
            let sealer = self
                .sealer
                .as_mut()
                .ok_or_else(|| invalid("already finished"))?;
            sealer.encrypt_next(payload)
        }
        .map_err(|_| invalid("the snapshot is too large to seal"))?;
        self.out.write_all(&[u8::from(last)])?;
        self.out.write_all(&(sealed.len() as u32).to_be_bytes())?;
        self.out.write_all(&sealed)?;
        self.plain.clear();
        Ok(())
    }

    /// Seals what is left as the last chunk and hands back the output (to be synced).
    ///
    /// Fails when `out` fails.
    pub fn finish(mut self) -> io::Result<W> {
        self.put(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for SealedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.plain.len());
        self.plain.extend_from_slice(&buf[..n]);
        if self.plain.len() == CHUNK {
            self.put(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks are sealed whole; `finish` writes the rest.
        Ok(())
    }
}

/// Reads the clear header of a sealed file (without the key).
///
/// Fails when the file does not start with the magic line or its header line is missing or
/// too long.
pub fn read_header(input: &mut impl BufRead) -> io::Result<(Vec<u8>, [u8; PREFIX])> {
    let mut magic = [0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| invalid("not a view snapshot (too short)"))?;
    if magic != MAGIC {
        return Err(invalid("not a view snapshot (no magic line)"));
    }
    let mut prefix = [0u8; PREFIX];
    input.read_exact(&mut prefix)?;
    let mut header = Vec::new();
    input.take(MAX_HEADER).read_until(b'\n', &mut header)?;
    if header.pop() != Some(b'\n') {
        return Err(invalid(
            "the snapshot's header line is cut short or too long",
        ));
    }
    Ok((header, prefix))
}

/// Reads the plain body of a sealed file whose header was read by [`read_header`].
pub struct SealedReader<R: Read> {
    input: R,
    opener: Option<DecryptorBE32<XChaCha20Poly1305>>,
    aad: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
}

impl<R: Read> SealedReader<R> {
    pub fn new(input: R, key: XChaCha20Poly1305, header: &[u8], prefix: [u8; PREFIX]) -> Self {
        let mut aad = MAGIC.to_vec();
        aad.extend_from_slice(&prefix);
        aad.extend_from_slice(header);
        SealedReader {
            input,
            opener: Some(DecryptorBE32::from_aead(key, (&prefix).into())),
            aad,
            plain: Vec::new(),
            at: 0,
        }
    }

    /// Opens the next chunk into `plain`; false after the last one (and nothing follows it).
    fn next_chunk(&mut self) -> io::Result<bool> {
        let mut head = [0u8; 5];
        if self.opener.is_none() {
            // After the last chunk: the file must end.
            return match self.input.read(&mut head[..1])? {
                0 => Ok(false),
                _ => Err(invalid("data after the snapshot's last chunk")),
            };
        }
        self.input
            .read_exact(&mut head)
            .map_err(|_| invalid("the snapshot is cut short"))?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if !(TAG..=CHUNK + TAG).contains(&len) {
            return Err(invalid("a snapshot chunk has an impossible length"));
        }
        let mut sealed = vec![0u8; len];
        self.input
            .read_exact(&mut sealed)
            .map_err(|_| invalid("the snapshot is cut short"))?;
        let payload = Payload {
            msg: &sealed,
            aad: &self.aad,
        };
        let opened = match head[0] {
            0 => self.opener.as_mut().map(|o| o.decrypt_next(payload)),
            1 => self.opener.take().map(|o| o.decrypt_last(payload)),
            _ => return Err(invalid("a snapshot chunk has a bad flag")),
        };
        self.plain = opened
            .ok_or_else(|| invalid("the snapshot is cut short"))?
            .map_err(|_| {
                invalid(
                    "a snapshot chunk does not open: the file was changed, or another secret \
                     key sealed it",
                )
            })?;
        self.at = 0;
        Ok(true)
    }
}

impl<R: Read> Read for SealedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::KeyInit;

    fn key(b: u8) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&[b; 32]).unwrap()
    }

    fn seal(body: &[u8]) -> Vec<u8> {
        let mut w = SealedWriter::new(Vec::new(), key(1), br#"{"h":1}"#).unwrap();
        w.write_all(body).unwrap();
        w.finish().unwrap()
    }

    fn open(file: &[u8], k: XChaCha20Poly1305) -> io::Result<Vec<u8>> {
        let mut input = file;
        let (header, prefix) = read_header(&mut input)?;
        assert_eq!(header, br#"{"h":1}"#);
        let mut out = Vec::new();
        SealedReader::new(input, k, &header, prefix).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn bodies_of_any_size_round_trip() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5] {
            let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            assert_eq!(open(&seal(&body), key(1)).unwrap(), body, "{n} bytes");
        }
    }

    #[test]
    fn a_changed_cut_or_extended_file_or_another_key_is_refused() {
        let body: Vec<u8> = (0..CHUNK + 100).map(|i| (i % 7) as u8).collect();
        let file = seal(&body);
        assert!(open(&file, key(2)).is_err(), "another key");
        let mut flipped = file.clone();
        let at = file.len() - 50;
        flipped[at] ^= 1;
        assert!(open(&flipped, key(1)).is_err(), "a flipped byte");
        // The file cut after its first (full) chunk: that chunk opens, then the end is missing.
        let first_end = MAGIC.len() + PREFIX + br#"{"h":1}"#.len() + 1 + 5 + CHUNK + TAG;
        assert!(
            open(&file[..first_end], key(1)).is_err(),
            "cut after a chunk"
        );
        // The first chunk claimed to be the last.
        let mut relabelled = file[..first_end].to_vec();
        relabelled[first_end - CHUNK - TAG - 5] = 1;
        assert!(
            open(&relabelled, key(1)).is_err(),
            "a chunk relabelled last"
        );
        let mut extended = file.clone();
        extended.push(0);
        assert!(open(&extended, key(1)).is_err(), "a byte after the end");
        // The clear header is authenticated.
        let mut header_edit = file.clone();
        header_edit[MAGIC.len() + PREFIX + 5] = b'2';
        let mut input = &header_edit[..];
        let (header, prefix) = read_header(&mut input).unwrap();
        let mut out = Vec::new();
        assert!(SealedReader::new(input, key(1), &header, prefix)
            .read_to_end(&mut out)
            .is_err());
        assert!(open(b"something else entirely", key(1)).is_err());
    }
}
