//! The `shm` transport's shared memory, worker side (docs/protocol.md, section 10): the two
//! arenas the engine hands over after `Hello` (memfds passed with `SCM_RIGHTS`), input batches
//! read in place from the input arena, results written into regions of the output arena that
//! stay the engine's until a `ShmRelease` gives them back. Built on `libc` (`recvmsg`, `mmap`),
//! which the SDK already uses, rather than a new crate.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_buffer::Buffer;
use prost::Message;

use crate::frame::{self, FrameKind, Limits, HEADER_SIZE};
use crate::proto::{self, engine_message::Kind as In};

/// Every region starts at a multiple of this (the engine's rule too), so Arrow reads in place.
const ALIGNMENT: u64 = 64;
/// A result shorter than this goes inline, on the socket: for small batches the socket is the
/// faster way (the engine's rule too; measured: docs/decisions.md, "shm by default").
const INLINE_BELOW_BYTES: usize = 64 << 10;
/// Descriptors one message may carry; the setup has two.
const MAX_DESCRIPTORS: usize = 8;

/// `size` bytes of a memfd mapped into this process, unmapped when the last user drops it.
struct Mapping {
    data: NonNull<u8>,
    size: usize,
}

// SAFETY: the mapping is plain shared memory; who writes where is the protocol's rule.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}
impl std::panic::RefUnwindSafe for Mapping {}

impl Mapping {
    /// Map `size` bytes of `fd`, after checking that the memfd has them (else a read past its
    /// end would be a SIGBUS).
    fn map(fd: &OwnedFd, size: u64, writable: bool) -> io::Result<Mapping> {
        let actual = std::fs::File::from(fd.try_clone()?).metadata()?.len();
        if size == 0 || actual < size {
            return Err(io::Error::other(format!(
                "an arena of {size} bytes is announced, but its memfd has {actual}"
            )));
        }
        let size = usize::try_from(size).map_err(io::Error::other)?;
        let protection = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a fresh shared mapping of a descriptor we hold, of a size the file has.
        let data = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                protection,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if data == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            data: NonNull::new(data.cast()).expect("mmap returned null"),
            size,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what map mapped, once.
        unsafe { libc::munmap(self.data.as_ptr().cast(), self.size) };
    }
}

/// First-fit allocation of aligned ranges of the output arena, neighbouring free ranges merged.
struct RegionAllocator {
    free: BTreeMap<u64, u64>, // offset -> length
    used: BTreeMap<u64, u64>,
}

impl RegionAllocator {
    fn new(size: u64) -> Self {
        let usable = size / ALIGNMENT * ALIGNMENT;
        let free = if usable > 0 {
            BTreeMap::from([(0, usable)])
        } else {
            BTreeMap::new()
        };
        RegionAllocator {
            free,
            used: BTreeMap::new(),
        }
    }

    fn allocate(&mut self, length: u64) -> Option<u64> {
        let wanted = length.max(1).div_ceil(ALIGNMENT) * ALIGNMENT;
        let (&offset, &size) = self.free.iter().find(|(_, &size)| size >= wanted)?;
        self.free.remove(&offset);
        if size > wanted {
            self.free.insert(offset + wanted, size - wanted);
        }
        self.used.insert(offset, wanted);
        Some(offset)
    }

    fn release(&mut self, offset: u64) -> bool {
        let Some(mut length) = self.used.remove(&offset) else {
            return false;
        };
        let mut start = offset;
        if let Some(next) = self.free.remove(&(start + length)) {
            length += next;
        }
        if let Some((&before, &size)) = self.free.range(..start).next_back() {
            if before + size == start {
                self.free.remove(&before);
                start = before;
                length += size;
            }
        }
        self.free.insert(start, length);
        true
    }
}

/// The mapped arenas of one connection.
pub struct ShmChannel {
    input: Arc<Mapping>,
    output: Mapping,
    allocator: RegionAllocator,
}

impl ShmChannel {
    /// Read the engine's first frame after `Hello`: `ShmSetup` with the two memfds (input,
    /// output) attached; map both (input read-only, output read-write). The caller answers
    /// `ShmReady`.
    pub fn open(stream: &mut UnixStream) -> io::Result<ShmChannel> {
        let mut descriptors = Vec::new();
        let mut header = [0u8; HEADER_SIZE];
        let got = receive_with_descriptors(stream, &mut header, &mut descriptors)?;
        if got < HEADER_SIZE {
            return Err(io::Error::other(
                "the engine closed the connection instead of sending ShmSetup",
            ));
        }
        let header = frame::parse_header(&header, &Limits::default())
            .map_err(|bad| io::Error::other(bad.0))?;
        if header.kind != FrameKind::Control || header.body_length != 0 {
            return Err(io::Error::other(
                "the engine sent a data frame instead of ShmSetup",
            ));
        }
        let mut metadata = vec![0u8; header.metadata_length as usize];
        stream.read_exact(&mut metadata)?;
        let setup = match proto::EngineMessage::decode(metadata.as_slice()) {
            Ok(proto::EngineMessage {
                kind: Some(In::ShmSetup(setup)),
            }) if descriptors.len() == 2 => setup,
            _ => {
                return Err(io::Error::other(format!(
                    "expected ShmSetup with 2 descriptors after Hello, got another message with {}",
                    descriptors.len()
                )))
            }
        };
        let input = Mapping::map(&descriptors[0], setup.input_bytes, false)?;
        let output = Mapping::map(&descriptors[1], setup.output_bytes, true)?;
        // The descriptors close here: the mappings are all the worker keeps.
        Ok(ShmChannel {
            allocator: RegionAllocator::new(output.size as u64),
            input: Arc::new(input),
            output,
        })
    }

    /// The input batch `data` names, read in place: the engine keeps the region until the
    /// worker answered the batch. Refused when empty or outside the input arena.
    pub fn input(&self, data: &proto::ShmData) -> Result<Buffer, String> {
        let region = data.region.unwrap_or_default();
        let size = self.input.size as u64;
        if region.length == 0 || region.offset > size || region.length > size - region.offset {
            return Err(format!(
                "ShmData for batch {} names {} bytes at offset {}, outside the input arena of {size} bytes",
                data.sequence, region.length, region.offset
            ));
        }
        // SAFETY: the range lies inside the mapping, which the Buffer keeps alive.
        unsafe {
            let start =
                NonNull::new_unchecked(self.input.data.as_ptr().add(region.offset as usize));
            Ok(Buffer::from_custom_allocation(
                start,
                region.length as usize,
                self.input.clone(),
            ))
        }
    }

    /// Copy `body` into a free region of the output arena and return it; `None` when it is
    /// small or no free region is large enough (the result then goes inline).
    pub fn write(&mut self, body: &[u8]) -> Option<proto::ShmRegion> {
        if body.len() < INLINE_BELOW_BYTES {
            return None;
        }
        let offset = self.allocator.allocate(body.len() as u64)?;
        // SAFETY: the allocator hands out ranges inside the arena, each to one result at a time.
        unsafe {
            std::ptr::copy_nonoverlapping(
                body.as_ptr(),
                self.output.data.as_ptr().add(offset as usize),
                body.len(),
            );
        }
        Some(proto::ShmRegion {
            offset,
            length: body.len() as u64,
        })
    }

    /// Give back the regions the engine released; one the worker did not hand over is the
    /// engine's mistake: logged and ignored.
    pub fn release(&mut self, release: &proto::ShmRelease) {
        for region in &release.regions {
            if !self.allocator.release(region.offset) {
                eprintln!(
                    "quiver-worker: ShmRelease of offset {}, which is not in use: ignored",
                    region.offset
                );
            }
        }
    }
}

/// Fill `out` from `stream` (blocking), keeping the descriptors that come with the bytes.
fn receive_with_descriptors(
    stream: &mut UnixStream,
    out: &mut [u8],
    descriptors: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut received = 0;
    while received < out.len() {
        // u64s keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 64];
        let rest = &mut out[received..];
        let mut vector = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the call.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = &mut vector;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure size computation.
        message.msg_controllen =
            unsafe { libc::CMSG_SPACE((MAX_DESCRIPTORS * size_of::<i32>()) as u32) } as _;
        // SAFETY: recvmsg into the buffers described above.
        let got =
            unsafe { libc::recvmsg(stream.as_raw_fd(), &mut message, libc::MSG_CMSG_CLOEXEC) };
        if got < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // SAFETY: walking the control messages recvmsg filled in.
        unsafe {
            let mut header = libc::CMSG_FIRSTHDR(&message);
            while !header.is_null() {
                if (*header).cmsg_level == libc::SOL_SOCKET
                    && (*header).cmsg_type == libc::SCM_RIGHTS
                {
                    let count = ((*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                        / size_of::<i32>();
                    let data = libc::CMSG_DATA(header).cast::<i32>();
                    for i in 0..count {
                        descriptors.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                    }
                }
                header = libc::CMSG_NXTHDR(&message, header);
            }
        }
        if got == 0 {
            break; // the engine closed the connection
        }
        received += got as usize;
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_aligned_and_freed_ones_merge() {
        let mut allocator = RegionAllocator::new(1024);
        let a = allocator.allocate(100).unwrap(); // rounded up to 128
        let b = allocator.allocate(64).unwrap();
        assert_eq!((a, b), (0, 128));
        assert_eq!(allocator.allocate(1024 - 192 + 1), None, "no room");
        assert!(allocator.release(a));
        assert!(!allocator.release(a), "not allocated any more");
        assert!(allocator.release(b));
        assert_eq!(allocator.allocate(1024), Some(0), "all merged again");
    }
}
