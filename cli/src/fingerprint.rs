//! The fingerprint `capture_recv` prints: a sum of a per-record hash.
//!
//! Count and sum alone cannot tell some wrong multisets from the right one
//! (one record delivered twice and another lost can keep the sum); a sum
//! of well-mixed hashes of the records catches such a swap.
//!
//! Hashing every record is work the plain-client baselines of the
//! benchmarks do not do: 14% of a 400 MB replay's CPU time in scalar code.
//! Where the CPU has them, the batch function runs on 512- or 256-bit
//! vectors (the same hash, so the same fingerprint).

/// The hash of one record (splitmix64's finaliser).
#[inline(always)]
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1330_11EB);
    x ^ (x >> 31)
}

/// The fingerprint of a batch of records: the wrapping sum of their hashes.
pub fn of(records: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512dq") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { of_avx512(records) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { of_avx2(records) };
        }
    }
    of_portable(records)
}

#[inline(always)]
fn of_portable(records: &[u64]) -> u64 {
    records.iter().fold(0u64, |sum, x| sum.wrapping_add(mix(*x)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn of_avx512(records: &[u64]) -> u64 {
    of_portable(records)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn of_avx2(records: &[u64]) -> u64 {
    of_portable(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_gives_the_same_fingerprint() {
        let records: Vec<u64> = (0..1003u64).map(|i| i.wrapping_mul(0x2545_F491_4F6C_DD1D)).collect();
        let expected = records.iter().fold(0u64, |sum, x| sum.wrapping_add(mix(*x)));
        assert_eq!(of(&records), expected);
        assert_eq!(of_portable(&records), expected);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512dq") {
                assert_eq!(unsafe { of_avx512(&records) }, expected);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                assert_eq!(unsafe { of_avx2(&records) }, expected);
            }
        }
        assert_eq!(of(&[]), 0);
    }
}
