//! An append-only vector kept in fixed chunks, for the audit index's per-event columns. A
//! `Vec` of millions of entries doubles by copying all of them into fresh memory: at five
//! million entries that is 440 MB copied (seconds on a machine slow to fault memory in) while
//! the index's lock is held. Growing a `Chunked` never moves what it holds.

use std::ops::{Index, IndexMut};

/// Elements per chunk.
const CHUNK: usize = 1 << 16;

/// An append-only vector in chunks of [`CHUNK`] elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn last(&self) -> Option<&T> {
        self.chunks.last().and_then(|c| c.last())
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }

    /// The elements `from..to` as the slices they are stored in, in order.
    pub fn slices(&self, from: usize, to: usize) -> impl Iterator<Item = &[T]> + '_ {
        let to = to.min(self.len);
        let from = from.min(to);
        (from / CHUNK..to.div_ceil(CHUNK)).map(move |c| {
            let start = if c == from / CHUNK { from % CHUNK } else { 0 };
            let end = if c == (to - 1) / CHUNK {
                (to - 1) % CHUNK + 1
            } else {
                CHUNK
            };
            &self.chunks[c][start..end]
        })
    }

    /// The number of leading elements for which `pred` holds, when it holds for a prefix (as
    /// [`slice::partition_point`]).
    pub fn partition_point(&self, pred: impl Fn(&T) -> bool) -> usize {
        // The first chunk whose last element fails the predicate holds the point.
        let full = self.chunks.partition_point(|c| c.last().is_some_and(&pred));
        match self.chunks.get(full) {
            Some(chunk) => full * CHUNK + chunk.partition_point(&pred),
            None => self.len,
        }
    }
}

impl<T> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut out = Chunked::default();
        for item in items {
            out.push(item);
        }
        out
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Pushes, indexing, slices and the partition point agree with a `Vec`'s.
        #[test]
        fn a_chunked_vector_behaves_as_a_vec(
            n in 0usize..(3 * CHUNK + 5),
            from in 0usize..(3 * CHUNK + 10),
            len in 0usize..(2 * CHUNK),
            at in 0usize..(3 * CHUNK + 10),
        ) {
            let plain: Vec<usize> = (0..n).collect();
            let chunked: Chunked<usize> = (0..n).collect();
            prop_assert_eq!(chunked.len(), n);
            prop_assert_eq!(chunked.last(), plain.last());
            prop_assert_eq!(chunked.get(at), plain.get(at));
            if at < n {
                prop_assert_eq!(chunked[at], plain[at]);
            }
            let to = (from + len).min(n);
            let joined: Vec<usize> = chunked.slices(from, to).flatten().copied().collect();
            prop_assert_eq!(&joined[..], &plain[from.min(to)..to]);
            prop_assert_eq!(chunked.partition_point(|&x| x < at), plain.partition_point(|&x| x < at));
            prop_assert!(chunked.iter().copied().eq(plain.iter().copied()));
        }
    }
}
