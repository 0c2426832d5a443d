//! The allocator's own account of the process's memory (jemalloc's `stats.*`), on `/metrics` as
//! `cairn_allocator_bytes{state}`, read at every scrape:
//! - `allocated`: bytes the program holds (the live heap);
//! - `active`: the pages those allocations occupy (fragmentation is `active - allocated`);
//! - `resident`: the allocator's pages in RAM, including freed pages not yet given back;
//! - `mapped` and `retained`: address space in use, and kept without being resident;
//! - `metadata`: the allocator's own bookkeeping.
//!
//! Beside the process's `RssAnon` these tell a heap that grows (something holds memory) from an
//! allocator that keeps what was freed (bench/README.md, "scale").
//!
//! In a process whose global allocator is not jemalloc (unit tests) the figures are jemalloc's
//! own, near zero.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tikv_jemalloc_ctl::{epoch, stats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// jemalloc's statistics, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    pub allocated: u64,
    pub active: u64,
    pub resident: u64,
    pub mapped: u64,
    pub retained: u64,
    pub metadata: u64,
}

impl AllocatorStats {
    /// The current statistics (jemalloc caches them until its epoch is advanced).
    pub fn read() -> Result<AllocatorStats, tikv_jemalloc_ctl::Error> {
        epoch::advance()?;
        Ok(AllocatorStats {
            allocated: stats::allocated::read()? as u64,
            active: stats::active::read()? as u64,
            resident: stats::resident::read()? as u64,
            mapped: stats::mapped::read()? as u64,
            retained: stats::retained::read()? as u64,
            metadata: stats::metadata::read()? as u64,
        })
    }

    fn by_state(&self) -> [(&'static str, u64); 6] {
        [
            ("allocated", self.allocated),
            ("active", self.active),
            ("resident", self.resident),
            ("mapped", self.mapped),
            ("retained", self.retained),
            ("metadata", self.metadata),
        ]
    }
}

/// Reads [`AllocatorStats`] at every scrape.
#[derive(Debug, Default)]
pub struct AllocatorCollector;

impl Collector for AllocatorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = match AllocatorStats::read() {
            Ok(stats) => stats,
            Err(err) => {
                tracing::debug!(error = %err, "jemalloc statistics unreadable; no allocator metrics");
                return Ok(());
            }
        };
        let family = Family::<StateLabel, Gauge>::default();
        for (state, bytes) in stats.by_state() {
            family
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let metric = encoder.encode_descriptor(
            "allocator_bytes",
            "Memory as the allocator (jemalloc) accounts it, by state: allocated (live heap), \
             active, resident, mapped, retained, metadata",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocated_bytes_follow_an_allocation() {
        // Under the test harness the global allocator is the system's; jemalloc's own
        // allocator is used here directly so that its statistics move.
        let before = AllocatorStats::read().expect("jemalloc statistics");
        let size = 64 << 20;
        let layout = std::alloc::Layout::from_size_align(size, 64).expect("layout");
        let block = unsafe {
            <tikv_jemallocator::Jemalloc as std::alloc::GlobalAlloc>::alloc(
                &tikv_jemallocator::Jemalloc,
                layout,
            )
        };
        assert!(!block.is_null());
        let during = AllocatorStats::read().expect("jemalloc statistics");
        unsafe {
            <tikv_jemallocator::Jemalloc as std::alloc::GlobalAlloc>::dealloc(
                &tikv_jemallocator::Jemalloc,
                block,
                layout,
            )
        };
        let after = AllocatorStats::read().expect("jemalloc statistics");
        assert!(
            during.allocated >= before.allocated + size as u64,
            "{before:?} → {during:?}"
        );
        assert!(
            after.allocated + (size as u64) <= during.allocated,
            "{during:?} → {after:?}"
        );
        assert!(during.active >= during.allocated && during.mapped >= during.active);
    }
}
