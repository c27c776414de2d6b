//! Early memory management: the node ranges the ACPI scan found (`PNP0C80` `_CRS` with
//! `_PXM`), handed out by a bump allocator per node with a free list for small kernel objects.
//!
//! This is the kernel's boot-time allocator ("bootmem"), and after boot its small-object
//! allocator: driver rings, RCU-published objects and the like are carved from slab pages the
//! buddy allocator (`crate::mm`) gives the kernel.

use std::collections::BTreeMap;

/// One node's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeMemory {
    /// NUMA node (`_PXM`).
    pub node: u32,
    /// First byte.
    pub base: u64,
    /// Bytes.
    pub len: u64,
    /// Next free byte (bump pointer).
    next: u64,
}

/// Why an allocation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("out of memory: {bytes} bytes wanted, no node has them left")]
pub struct OutOfMemory {
    /// Bytes asked for.
    pub bytes: u64,
}

/// The allocator.
#[derive(Clone, Debug, Default)]
pub struct BootMem {
    nodes: Vec<NodeMemory>,
    /// Freed small objects by size, reused first (addresses kept in order).
    free: BTreeMap<u64, Vec<u64>>,
    allocated: u64,
}

/// Bytes of the start of each node kept back (firmware, the kernel image).
pub const RESERVED_PER_NODE: u64 = 1 << 20;

impl BootMem {
    /// An allocator over `ranges` `(node, base, len)`.
    pub fn new(ranges: impl IntoIterator<Item = (u32, u64, u64)>) -> Self {
        let mut nodes: Vec<NodeMemory> = ranges
            .into_iter()
            .filter(|&(_, _, len)| len > RESERVED_PER_NODE)
            .map(|(node, base, len)| NodeMemory {
                node,
                base,
                len,
                next: base + RESERVED_PER_NODE,
            })
            .collect();
        nodes.sort_by_key(|n| (n.node, n.base));
        BootMem {
            nodes,
            free: BTreeMap::new(),
            allocated: 0,
        }
    }

    /// Adds `len` bytes at `base` on `node` to hand out (slab pages the buddy allocator
    /// gave the kernel).
    pub fn add_arena(&mut self, node: u32, base: u64, len: u64) {
        self.nodes.push(NodeMemory {
            node,
            base,
            len,
            next: base,
        });
        self.nodes.sort_by_key(|n| (n.node, n.base));
    }

    /// The nodes.
    pub fn nodes(&self) -> &[NodeMemory] {
        &self.nodes
    }

    /// Bytes handed out and not freed.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// `bytes` aligned to `align` (a power of two), on `node` if it has room, else on the
    /// next node that has (in node order, wrapping).
    pub fn alloc(&mut self, node: u32, bytes: u64, align: u64) -> Result<u64, OutOfMemory> {
        let bytes = bytes.max(1);
        if let Some(list) = self.free.get_mut(&bytes) {
            if let Some(pos) = list.iter().position(|a| a % align == 0) {
                let a = list.remove(pos);
                self.allocated += bytes;
                return Ok(a);
            }
        }
        let n = self.nodes.len();
        let start = self.nodes.iter().position(|x| x.node >= node).unwrap_or(0);
        for i in 0..n {
            let m = &mut self.nodes[(start + i) % n];
            let a = m.next.next_multiple_of(align.max(1));
            if a + bytes <= m.base + m.len {
                m.next = a + bytes;
                self.allocated += bytes;
                return Ok(a);
            }
        }
        Err(OutOfMemory { bytes })
    }

    /// Returns an object of `bytes` at `addr` for reuse.
    pub fn free(&mut self, addr: u64, bytes: u64) {
        let bytes = bytes.max(1);
        self.free.entry(bytes).or_default().push(addr);
        self.allocated = self.allocated.saturating_sub(bytes);
    }

    /// The node holding `addr`.
    pub fn node_of(&self, addr: u64) -> Option<u32> {
        self.nodes
            .iter()
            .find(|m| (m.base..m.base + m.len).contains(&addr))
            .map(|m| m.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_on_the_node_then_falls_back_and_reuses() {
        let mb = 1u64 << 20;
        let mut m = BootMem::new([(0, 0, 4 * mb), (1, 4 * mb, 2 * mb)]);
        let a = m.alloc(1, mb / 2, 4096).unwrap();
        assert_eq!(m.node_of(a), Some(1));
        assert_eq!(a, 5 * mb, "the first MiB of a node is reserved");
        let b = m.alloc(1, mb, 4096).unwrap();
        assert_eq!(m.node_of(b), Some(0), "node 1 is full: falls back");
        m.free(a, mb / 2);
        assert_eq!(
            m.alloc(0, mb / 2, 4096).unwrap(),
            a,
            "freed objects are reused"
        );
        assert!(m.alloc(0, 64 * mb, 4096).is_err());
    }
}
