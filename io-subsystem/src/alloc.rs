//! The bridge-window allocator, which lives in [`sim_core::window`] so that firmware and the
//! OS model share it.

pub use sim_core::window::*;
