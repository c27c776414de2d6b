//! Integration tests of the I/O hardware model, driven through a mock platform.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

mod boot;
mod driver;
mod removal;
mod resources;
mod sapic;
