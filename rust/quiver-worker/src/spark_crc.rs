//! CRC-32 as zlib computes it (IEEE 802.3 polynomial, reflected, initial and final XOR
//! `0xFFFFFFFF`): what Spark's `UdfPayload.payload_crc32` carries.
//!
//! Written out here rather than taken from a crate: the payloads it checks are the names of
//! registered functions (a few bytes, once per execution), for which a byte-wise table is plenty,
//! and the SDK keeps one dependency fewer.

/// The reflected IEEE 802.3 polynomial.
const POLYNOMIAL: u32 = 0xEDB8_8320;

/// The CRC of every byte value, computed at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// A CRC-32 computed over bytes fed in pieces (an inline payload, then its chunks).
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Crc32(0xFFFF_FFFF)
    }
}

impl Crc32 {
    /// Add `bytes` to the checksum.
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = TABLE[((self.0 ^ u32::from(byte)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    /// The checksum of everything added so far (zlib's `crc32()` of the concatenation).
    pub fn value(self) -> u32 {
        !self.0
    }
}

/// zlib's `crc32(0, bytes)`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::default();
    crc.update(bytes);
    crc.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_zlib_on_known_values() {
        // zlib.crc32(b"") == 0, zlib.crc32(b"123456789") == 0xCBF43926 (the standard check value),
        // zlib.crc32(b"identity") == 0x6A95E9C4.
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"identity"), 0x6A95_E9C4);
    }

    #[test]
    fn pieces_add_up_to_the_whole() {
        let mut crc = Crc32::default();
        for piece in [&b"iden"[..], b"", b"tity"] {
            crc.update(piece);
        }
        assert_eq!(crc.value(), crc32(b"identity"));
    }
}
