//! The kernel's ids of tasks and memory objects: the vocabulary every layer of the kernel
//! shares, below all of them.

use std::fmt;

use serde::Serialize;

/// A task (thread) id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TaskId(pub u32);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

/// A memory object whose contents the tasks use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemObj {
    /// The anonymous memory (and hugetlb pages) of an address space.
    Anon(u32),
    /// A file.
    File(u32),
}

impl MemObj {
    /// A word for the trace hash.
    pub const fn word(self) -> u64 {
        match self {
            MemObj::Anon(m) => m as u64,
            MemObj::File(f) => 1 << 32 | f as u64,
        }
    }
}

impl fmt::Display for MemObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemObj::Anon(m) => write!(f, "mm{m}"),
            MemObj::File(x) => write!(f, "file{x}"),
        }
    }
}

/// A memory block (`memoryN` in sysfs): the unit memory goes online and offline in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BlockId(pub u32);

impl BlockId {
    /// The block as an index into per-block arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for BlockId {
    /// The number alone (`memory{block}` spells the sysfs name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A NUMA node: a cell, by its `_PXM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The node as an index into per-node arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    /// The number alone (`node{n}` spells the sysfs name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
