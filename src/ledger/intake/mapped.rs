//! A fixed-capacity array in an anonymous memory mapping of its own,
//! unmapped when dropped, for the megabytes a rescan holds for a moment.
//!
//! From the allocator, such a buffer stayed resident after it was freed: a
//! rescan runs on a worker thread, whose glibc arena keeps a freed block at
//! its top (`malloc_trim` gives back only what lies in its free lists), and
//! once the first big block was freed glibc raised its mmap threshold past
//! the next one. A daemon rescanning a million waiting files every few
//! minutes held 27–38 MB idle instead of 19. Pages are only resident once
//! written, so the capacity can be generous.

use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Up to `cap` values of `T`, the first `len` of them set.
pub(super) struct Mapped<T: Copy> {
    ptr: NonNull<T>,
    cap: usize,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: `Mapped` owns its mapping exclusively, like a `Vec<T>`.
unsafe impl<T: Copy + Send> Send for Mapped<T> {}

impl<T: Copy> Mapped<T> {
    /// An empty array with room for `cap` values (nothing mapped for 0).
    pub(super) fn with_capacity(cap: usize) -> io::Result<Self> {
        let bytes = cap
            .checked_mul(size_of::<T>())
            .ok_or_else(|| io::Error::other("mapping too big"))?;
        let ptr = if bytes == 0 {
            NonNull::dangling()
        } else {
            // SAFETY: a new private anonymous mapping, asked of no address;
            // the result is checked before use. It is page-aligned, so
            // aligned for any `T`, and zero-filled.
            let at = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if at == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            NonNull::new(at.cast::<T>()).ok_or_else(|| io::Error::other("mmap gave null"))?
        };
        Ok(Mapped {
            ptr,
            cap,
            len: 0,
            _owns: PhantomData,
        })
    }

    /// Appends `value`; false (and nothing changed) if the array is full.
    pub(super) fn push(&mut self, value: T) -> bool {
        if self.len == self.cap {
            return false;
        }
        // SAFETY: `len < cap`, inside the mapping; `T: Copy` needs no drop.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
        true
    }

    pub(super) fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` values were written by `push`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as `as_slice`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for Mapped<T> {
    fn drop(&mut self) {
        let bytes = self.cap * size_of::<T>();
        if bytes > 0 {
            // SAFETY: the mapping made in `with_capacity`, unmapped once.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), bytes) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_was_pushed_up_to_its_capacity() {
        let mut empty = Mapped::<u64>::with_capacity(0).unwrap();
        assert!(!empty.push(1));
        assert!(empty.as_slice().is_empty());
        let mut a = Mapped::<u64>::with_capacity(1_000).unwrap();
        for i in (0..1_000u64).rev() {
            assert!(a.push(i * 3));
        }
        assert!(!a.push(7), "full");
        a.as_mut_slice().sort_unstable();
        assert_eq!(a.as_slice().len(), 1_000);
        assert_eq!(a.as_slice()[0], 0);
        assert_eq!(a.as_slice()[999], 2_997);
    }
}
