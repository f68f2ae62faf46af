//! The fingerprint `capture_recv` prints: a sum of a per-record hash.
//!
//! Count and sum alone cannot tell some wrong multisets from the right one
//! (one record delivered twice and another lost can keep the sum); a sum
//! of well-mixed hashes of the records catches such a swap.

/// The hash of one record (splitmix64's finaliser).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1330_11EB);
    x ^ (x >> 31)
}

/// The fingerprint of a batch of records: the wrapping sum of their hashes.
pub fn of(records: &[u64]) -> u64 {
    records.iter().fold(0u64, |sum, x| sum.wrapping_add(mix(*x)))
}
