//! Poll planning: fields grouped by unit, table and interval, then coalesced
//! into as few requests as the protocol allows (125 registers or 2000 bits per
//! request, reading across gaps up to a configured size).

use crate::config::modbus::Table;
use std::time::Duration;

/// Protocol limits per read request.
pub const MAX_REGISTERS: u16 = 125;
pub const MAX_BITS: u16 = 2000;

/// A field's place on the wire (address already 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub table: Table,
    pub start: u16,
    pub len: u16,
    /// Index of the field in the unit's resolved field list.
    pub field: usize,
}

/// One read request and the fields it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    pub fields: Vec<usize>,
}

/// A set of requests polled together at one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PollGroup {
    pub every: Duration,
    pub requests: Vec<Request>,
}

/// Coalesces spans of one table into requests.
pub fn coalesce(mut spans: Vec<Span>, max_gap: u16) -> Vec<Request> {
    spans.sort_by_key(|s| (s.table, s.start, s.len));
    let mut out: Vec<Request> = Vec::new();
    for s in spans {
        let limit = if s.table.is_bits() { MAX_BITS } else { MAX_REGISTERS };
        if let Some(r) = out.last_mut() {
            let end = u32::from(r.start) + u32::from(r.count);
            let s_end = u32::from(s.start) + u32::from(s.len);
            let gap = i64::from(s.start) - end as i64;
            let merged_count = s_end.max(end) - u32::from(r.start);
            if r.table == s.table && gap <= i64::from(max_gap) && merged_count <= u32::from(limit) {
                r.count = merged_count as u16;
                r.fields.push(s.field);
                continue;
            }
        }
        out.push(Request { table: s.table, start: s.start, count: s.len, fields: vec![s.field] });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(table: Table, start: u16, len: u16, field: usize) -> Span {
        Span { table, start, len, field }
    }

    #[test]
    fn contiguous_and_small_gaps_merge_big_gaps_split() {
        let r = coalesce(
            vec![
                span(Table::Holding, 0, 2, 0),
                span(Table::Holding, 2, 2, 1),
                span(Table::Holding, 10, 1, 2), // gap 6 ≤ 8: merged
                span(Table::Holding, 40, 2, 3), // gap 29: new request
                span(Table::Input, 0, 1, 4),    // other table: new request
            ],
            8,
        );
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].start, r[0].count, r[0].fields.clone()), (0, 11, vec![0, 1, 2]));
        assert_eq!((r[1].start, r[1].count), (40, 2));
        assert_eq!(r[2].table, Table::Input);
    }

    #[test]
    fn requests_respect_the_protocol_limits() {
        let regs: Vec<Span> =
            (0..200).map(|i| span(Table::Holding, i * 2, 2, i as usize)).collect();
        let r = coalesce(regs, 0);
        assert!(r.iter().all(|r| r.count <= MAX_REGISTERS));
        assert_eq!(r.len(), 4, "400 registers need 4 requests of ≤125");
        let bits: Vec<Span> = (0..3000).map(|i| span(Table::Coil, i, 1, i as usize)).collect();
        let r = coalesce(bits, 0);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].count, MAX_BITS);
    }

    #[test]
    fn overlapping_bit_fields_share_a_register() {
        let r = coalesce(vec![span(Table::Holding, 5, 1, 0), span(Table::Holding, 5, 1, 1)], 0);
        assert_eq!(
            r,
            vec![Request { table: Table::Holding, start: 5, count: 1, fields: vec![0, 1] }]
        );
    }
}
