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
