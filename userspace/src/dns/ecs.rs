//! EDNS Client Subnet (RFC 7871) in a query, read from the OPT RR's wire bytes and checked
//! as §7.1.1 asks: an unknown family, a source prefix longer than the family's address, an
//! address field of another length than the prefix needs, or address bits set past the
//! prefix make the query malformed (FORMERR).
//!
//! Read from the bytes, not from hickory's parsed option: that one accepts an address field
//! longer than the prefix needs (the extra bytes are dropped) and keeps no record of it.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use xgslb_common::{ECS_STATS_LEN, ecs_stat_index};

/// The EDNS option code of Client Subnet.
const CODE: u16 = 8;

/// A query's client subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSubnet {
    /// The address, with every bit past `source` zero.
    pub address: IpAddr,
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
    /// SCOPE PREFIX-LENGTH (0 in a well-behaved query).
    pub scope: u8,
}

/// Slow-path responses to queries with a client subnet, by the subnet's family and the
/// scope returned (`xgslb_common::ecs_stat_index`, as the XDP program counts its own).
/// Shared by every catalog a daemon builds, so that reloads keep the counts.
#[derive(Debug)]
pub struct EcsCounters {
    counts: [AtomicU64; ECS_STATS_LEN as usize],
}

impl Default for EcsCounters {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl EcsCounters {
    /// Counts one response to `subnet` with scope `scope`.
    pub fn count(&self, subnet: &ClientSubnet, scope: u8) {
        let i = ecs_stat_index(subnet.address.is_ipv6(), scope) as usize;
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts by `ecs_stat_index`.
    pub fn read(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

/// Why an ECS option is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EcsError {
    #[error("client subnet option shorter than its fixed part")]
    Short,
    #[error("client subnet family {0} is neither 1 (IPv4) nor 2 (IPv6)")]
    Family(u16),
    #[error("client subnet source prefix /{prefix} is longer than the address (/{max})")]
    SourceTooLong { prefix: u8, max: u8 },
    #[error("client subnet address is {got} bytes, its /{prefix} prefix needs {want}")]
    AddressLength { got: usize, want: usize, prefix: u8 },
    #[error("client subnet address has bits set past its /{0} prefix")]
    BitsPastSource(u8),
    #[error("OPT options run past the record")]
    Options,
}

/// The first client subnet option among an OPT RR's options (`rdata`), if any, checked.
pub fn find(rdata: &[u8]) -> Result<Option<ClientSubnet>, EcsError> {
    let mut rest = rdata;
    while !rest.is_empty() {
        let [c0, c1, l0, l1, tail @ ..] = rest else {
            return Err(EcsError::Options);
        };
        let (code, len) = (
            u16::from_be_bytes([*c0, *c1]),
            usize::from(u16::from_be_bytes([*l0, *l1])),
        );
        let data = tail.get(..len).ok_or(EcsError::Options)?;
        if code == CODE {
            return parse(data).map(Some);
        }
        rest = &tail[len..];
    }
    Ok(None)
}

/// One client subnet option's data: FAMILY, SOURCE PREFIX-LENGTH, SCOPE PREFIX-LENGTH,
/// ADDRESS (exactly as many bytes as the source prefix covers).
pub fn parse(data: &[u8]) -> Result<ClientSubnet, EcsError> {
    let [f0, f1, source, scope, address @ ..] = data else {
        return Err(EcsError::Short);
    };
    let (source, scope) = (*source, *scope);
    let family = u16::from_be_bytes([*f0, *f1]);
    let max: u8 = match family {
        1 => 32,
        2 => 128,
        other => return Err(EcsError::Family(other)),
    };
    if source > max {
        return Err(EcsError::SourceTooLong {
            prefix: source,
            max,
        });
    }
    let want = usize::from(source).div_ceil(8);
    if address.len() != want {
        return Err(EcsError::AddressLength {
            got: address.len(),
            want,
            prefix: source,
        });
    }
    let mut octets = [0u8; 16];
    octets[..want].copy_from_slice(address);
    // The last byte's bits past the prefix must be zero (the bytes past it are absent).
    if source % 8 != 0 && address[want - 1] & (0xff >> (source % 8)) != 0 {
        return Err(EcsError::BitsPastSource(source));
    }
    let address = if family == 1 {
        IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    Ok(ClientSubnet {
        address,
        source,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(family: u16, source: u8, scope: u8, address: &[u8]) -> Vec<u8> {
        let mut data = family.to_be_bytes().to_vec();
        data.extend([source, scope]);
        data.extend_from_slice(address);
        let mut o = CODE.to_be_bytes().to_vec();
        o.extend((data.len() as u16).to_be_bytes());
        o.extend(data);
        o
    }

    #[test]
    fn well_formed_subnets_of_both_families_and_every_source_length_are_read() {
        for source in 0..=32u8 {
            let want = usize::from(source).div_ceil(8);
            // 198.18.255.255 masked to the prefix.
            let full = u32::from(Ipv4Addr::new(198, 18, 255, 255));
            let masked = if source == 0 {
                0
            } else {
                full & (u32::MAX << (32 - u32::from(source)))
            };
            let bytes = masked.to_be_bytes();
            let got = find(&option(1, source, 0, &bytes[..want]))
                .unwrap()
                .unwrap();
            assert_eq!(got.address, IpAddr::V4(Ipv4Addr::from(masked)), "/{source}");
            assert_eq!(got.source, source);
        }
        let v6: Ipv6Addr = "2001:db8:ab00::".parse().unwrap();
        let got = find(&option(2, 40, 0, &v6.octets()[..5])).unwrap().unwrap();
        assert_eq!(got.address, IpAddr::V6(v6));
        let got = find(&option(2, 0, 0, &[])).unwrap().unwrap();
        assert_eq!(got.address, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    }

    #[test]
    fn each_malformation_of_rfc_7871_7_1_1_is_named() {
        assert_eq!(find(&option(3, 0, 0, &[])), Err(EcsError::Family(3)));
        assert_eq!(
            find(&option(1, 33, 0, &[1, 2, 3, 4, 5])),
            Err(EcsError::SourceTooLong {
                prefix: 33,
                max: 32
            })
        );
        assert_eq!(
            find(&option(2, 129, 0, &[0; 17])),
            Err(EcsError::SourceTooLong {
                prefix: 129,
                max: 128
            })
        );
        // A /24 with four address bytes, and with two.
        assert!(matches!(
            find(&option(1, 24, 0, &[198, 18, 1, 0])),
            Err(EcsError::AddressLength {
                got: 4,
                want: 3,
                ..
            })
        ));
        assert!(matches!(
            find(&option(1, 24, 0, &[198, 18])),
            Err(EcsError::AddressLength {
                got: 2,
                want: 3,
                ..
            })
        ));
        // 198.18.1.128/23: bit 24 is past the prefix.
        assert_eq!(
            find(&option(1, 23, 0, &[198, 18, 1])),
            Err(EcsError::BitsPastSource(23))
        );
        assert_eq!(find(&option(1, 0, 0, &[])).map(|s| s.is_some()), Ok(true));
        assert_eq!(find(&[0, 8, 0]), Err(EcsError::Options));
        assert_eq!(find(&[0, 8, 0, 9, 0, 1]), Err(EcsError::Options));
        assert_eq!(find(&[0, 8, 0, 2, 0, 1]), Err(EcsError::Short));
    }

    #[test]
    fn other_options_are_skipped_and_no_subnet_is_none() {
        let cookie = [0u8, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(find(&cookie), Ok(None));
        assert_eq!(find(&[]), Ok(None));
        let mut both = cookie.to_vec();
        both.extend(option(1, 16, 0, &[198, 18]));
        let got = find(&both).unwrap().unwrap();
        assert_eq!(got.address, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)));
    }
}
